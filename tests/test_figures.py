"""drift/report/collect.py and drift/report/figures.py on the smoke runs of every experiment
(see tests/test_experiments.py), and the results notebook executed end to end."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import time
from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from test_experiments import EXPERIMENTS, smoke_root, smoke_run  # noqa: F401 (a fixture)

import drift.report.collect as collect_results
import drift.report.figures as make_figures
from drift.cli import compare_designs as compare_designs_cli
from drift.cli import figures as figures_cli
from drift.cli import plot_strategies as plot_strategies_cli
from drift.cli import tables as tables_cli
from drift.core.provenance import REPO_ROOT
from drift.core.records import ResultRecord, config_hash, result_path, write_json_atomic


@pytest.fixture(scope="module")
def results_dir(smoke_root: Path) -> Path:  # noqa: F811 (the imported fixture)
    for experiment in EXPERIMENTS:
        smoke_run(smoke_root, experiment)
    return smoke_root / "results"


def test_collect_writes_a_tidy_table_and_a_summary(results_dir: Path, tmp_path: Path) -> None:
    assert tables_cli.main([str(results_dir), "--out", str(tmp_path)]) == 0
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert set(frame["experiment"]) == set(EXPERIMENTS)
    assert frame["debug"].all()
    assert len(pd.read_csv(tmp_path / "results.csv.gz")) == len(frame)
    r10 = frame[(frame.protocol == "knn") & (frame.metric == "recall@10")]
    assert r10["value"].between(0, 1).all() and r10["strategy"].str.startswith("adapter/").any()
    la = frame[(frame.experiment == "la_rank") & (frame.method == "low_rank_affine")]
    assert set(la["la_rank"]) == {8}  # the first point of the rank sweep
    summary = pd.read_parquet(tmp_path / "summary.parquet")
    assert {"mean", "std", "ci_low", "ci_high", "n_seeds", "seeds"} <= set(summary.columns)
    assert len(summary) == len(frame)  # one seed per design here
    assert (summary["n_seeds"] == 1).all()


def test_summary_statistics_over_seeds() -> None:
    """Planted values: mean, s.d. and the 95% t-interval over three seeds; a repeated seed
    (e.g. Np capped to the same count) counts once."""
    rows = [
        {"group": "g", "strategy": "s", "seed": seed, "value": value}
        for seed, value in [(0, 0.5), (1, 0.6), (2, 0.7), (2, 0.7)]
    ]
    (row,) = collect_results.summarize(pd.DataFrame(rows), by=["group", "strategy"]).to_dict(
        "records"
    )
    assert row["n_seeds"] == 3 and row["seeds"] == "0,1,2"
    assert math.isclose(row["mean"], 0.6) and math.isclose(row["std"], 0.1)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, df=2)
    assert math.isclose(row["ci_high"] - row["mean"], half, rel_tol=1e-9)


def test_collect_fails_clearly_without_results(tmp_path: Path, capsys) -> None:
    assert tables_cli.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"not": "a result"}')
    assert tables_cli.main([str(tmp_path)]) == 2
    assert "no result files" in capsys.readouterr().err


def test_make_figures_writes_table_and_every_figure(results_dir: Path, tmp_path: Path) -> None:
    assert figures_cli.main([str(results_dir), "--out", str(tmp_path)]) == 0
    table = (tmp_path / "main_table.md").read_text()
    assert table.startswith("# SMOKE RUNS, NOT RESULTS")
    for strategy in ("Status quo (old model)", "OP", "LA+DSM", "MLP", "Full re-index (oracle)"):
        assert f"| {strategy} |" in table
    tex = (tmp_path / "main_table.tex").read_text()
    assert "\\toprule" in tex and "Status quo (old model) &" in tex
    wide = pd.read_csv(tmp_path / "main_table.csv")
    assert "Status quo (old model)" in set(wide["Strategy"])
    assert any(column.endswith(": R@10 (kNN ARR)") for column in wide.columns)
    # The smoke runs also answer with the strategies beyond the paper; the paper's table and
    # figures leave those to drift/report/migration_figures.py.
    assert "rerank" not in table and "backfill" not in table
    for name in make_figures.FIGURES:
        image = matplotlib.image.imread(tmp_path / f"{name}.png")
        assert image.shape[0] > 300 and image.shape[1] > 500, name
        assert image[..., :3].std() > 0.01, f"{name} is blank"
        assert (tmp_path / f"{name}.pdf").read_bytes().startswith(b"%PDF")
        plotted = pd.read_csv(tmp_path / f"{name}.csv")
        assert not plotted.empty
        assert not plotted["strategy"].str.contains("rerank|fusion|backfill").any(), name


def test_absent_runs_skip_their_figure_with_the_command(results_dir: Path, tmp_path: Path) -> None:
    only = tmp_path / "runs"
    only.mkdir()
    for path in results_dir.rglob("*.json"):
        if json.loads(path.read_text())["config"]["tags"] == ["la_rank"]:
            shutil.copy(path, only / path.name)
    written, skipped = make_figures.write_all(collect_results.collect(only), tmp_path / "out")
    assert {p.name for p in written} == {"la_rank.png", "la_rank.pdf", "la_rank.csv"}
    assert set(skipped) == {"main_table", *make_figures.FIGURES} - {"la_rank"}
    assert "python -m drift.run -m experiment=mlp_width" in skipped["mlp_width"]


def test_main_table_says_per_block_what_its_blocks_do_not_share() -> None:
    """Blocks of different pairs and seed counts: each block's heading names its pair and its
    caption its seeds; the LaTeX groups the columns by block under \\multicolumn."""
    blocks = [
        make_figures.Block(dataset, pair, (), [("R@10 kNN", "R@10 (kNN ARR)")], seeds, "facts.")
        for dataset, pair, seeds in (("faq", "a -> b", 5), ("tuxpaint", "c -> d", 3))
    ]
    table = make_figures.Table("T", blocks, [("OP", ["0.5 ± 0.1", "0.7 ± 0.2"])], ["note"])
    assert table.pair is None and table.n_seeds is None
    markdown = table.markdown()
    assert "## faq, a -> b\n\n5 seeds; facts.\n" in markdown
    assert "## tuxpaint, c -> d\n\n3 seeds; facts.\n" in markdown
    assert "| OP | 0.5 ± 0.1 |" in markdown and "| OP | 0.7 ± 0.2 |" in markdown
    assert "Model pair" not in markdown
    latex = table.latex()
    assert r"\multicolumn{1}{c}{faq, a $\to$ b} & \multicolumn{1}{c}{tuxpaint, c $\to$ d}" in latex
    assert list(table.wide().columns) == [
        "Strategy", "faq, a -> b: R@10 (kNN ARR)", "tuxpaint, c -> d: R@10 (kNN ARR)",
    ]  # fmt: skip


def test_latex_escaping() -> None:
    assert make_figures.tex("offline_mix, a -> b 5%") == r"offline\_mix, a $\to$ b 5\%"
    assert make_figures.tex_cell("0.974 ± 0.004") == r"$0.974 \pm 0.004$"
    assert make_figures.tex_cell("n/a") == "n/a"


def test_log_axis_ticks_name_the_swept_values() -> None:
    """Exact labels ("1024", not "1.02k"); a value too close to the one before moves to a
    second row of labels instead of sharing one."""
    values = (0.5, 8.59, 64, 1000, 1024, 2500, 5818, 20_000, 25_000, 1_000_000, 2_500_000)
    labels = [make_figures.tick_label(v) for v in values]
    assert labels == ["0.5", "8.6", "64", "1k", "1024", "2.5k", "5818", "20k", "25k", "1M", "2.5M"]
    fig, ax = plt.subplots()
    make_figures.log_ticks_at(ax, pd.Series([500, 5000, 5818, 6000, 20_000]))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["500", "5k", "\n5818", "", "20k"]
    plt.close(fig)


@pytest.mark.slow  # about 40 s of kernel start and plotting; the figure code is tested above
def test_notebook_executes_on_collected_results(
    results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = REPO_ROOT / "notebooks" / "results.ipynb"
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    monkeypatch.setenv("DRIFT_RESULTS", str(results_dir))
    started = time.time()
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    assert not [out for out in outputs if out.output_type == "error"]

    def images(cells: list) -> int:
        return sum(
            "image/png" in out.get("data", {}) for c in cells for out in c.get("outputs", [])
        )

    beyond = next(i for i, c in enumerate(notebook.cells) if "Beyond the paper" in c.source)
    assert images(notebook.cells[:beyond]) == len(make_figures.FIGURES)
    # The committed beyond-the-paper runs: the Pareto figure and the two migration timelines.
    assert images(notebook.cells[beyond:]) == 3
    print(f"notebook ran in {time.time() - started:.1f} s")


def test_strategy_bars_keep_the_designs_of_a_sweep_apart(tmp_path: Path) -> None:
    """The committed asymmetric_pairs sweep (2 pair roles x 2 Procrustes centrings x 5 seeds):
    one bar and one table row per strategy and design, never the designs pooled."""
    import drift.report.strategy_bars as plot_strategy_bars

    runs = REPO_ROOT / "results" / "asymmetric_pairs" / "runs"
    assert plot_strategies_cli.main([str(runs), "--out", str(tmp_path)]) == 0
    assert matplotlib.image.imread(tmp_path / "strategies_r10.png").shape[0] > 300
    table = (tmp_path / "strategies.md").read_text()
    frame, _ = plot_strategy_bars.load_runs(runs)
    assert set(frame["variant"]) == {
        f"pair_role={role}, op_center={center}"
        for role in ("document", "query")
        for center in (False, True)
    }
    summary = collect_results.summarize(frame, by=["strategy", "variant", "protocol", "metric"])
    op = summary[
        (summary["strategy"] == "adapter/procrustes")
        & (summary["protocol"] == "knn")
        & (summary["metric"] == "recall@10")
    ].set_index("variant")
    assert op["n_seeds"].eq(5).all()
    centred = op.loc["pair_role=document, op_center=True", "mean"]
    assert centred > 2 * op.loc["pair_role=document, op_center=False", "mean"]
    assert f"({'pair_role=document, op_center=True'})" in table
    assert f"{centred:.3f}" in table


def test_query_log_pairs_are_no_share_of_the_corpus() -> None:
    """The committed query_log_pairs runs: Np held-out queries are not Np / corpus of it."""
    runs = REPO_ROOT / "results" / "query_log_pairs" / "runs"
    infos = [record.run_columns() for record in ResultRecord.iter(runs)]
    by_role = {info["pair_role"]: info for info in infos}
    assert set(by_role) == {"document", "query", "query_log"}
    assert by_role["query_log"]["np_fraction"] is None
    document = by_role["document"]
    assert document["np_fraction"] == document["np"] / document["n_corpus"] > 0.9


def test_compare_designs_pairs_each_design_with_its_baseline_seed_by_seed(tmp_path: Path) -> None:
    """The committed query_log_pairs sweep: each design against document pairs at Np = 1,200 with
    the same Procrustes centring; one paired difference recomputed from the result files."""

    runs = REPO_ROOT / "results" / "query_log_pairs" / "runs"
    out = tmp_path / "paired.md"
    args = [str(runs), "--baseline", "pair_role=document", "np=1200", "--out", str(out)]
    assert compare_designs_cli.main([*args, "--within", "op_center"]) == 0
    text = out.read_text()
    assert text.count("(baseline)") == 2 * 5  # per metric: OP uncentred and centred, LA, MLP, ridge

    by_design: dict[tuple[str, int], dict[int, float]] = {}  # ridge's kNN R@10 by seed
    for path in runs.rglob("*.json"):
        record = json.loads(path.read_text())
        design = (record["pairs"]["role"], record["pairs"]["n_train"] + record["pairs"]["n_val"])
        ridge = record["metrics"]["protocols"]["knn"]["strategies"]["adapter/ridge"]
        by_design.setdefault(design, {})[record["seed"]] = ridge["metrics"]["recall@10"]["mean"]
    logged, documents = by_design[("query_log", 1200)], by_design[("document", 1200)]
    diff = sum(logged[s] - documents[s] for s in documents) / len(documents)
    row = next(
        line for line in text.split("## qrels")[0].splitlines()
        if line.startswith("| Ridge (np_requested=1200, np=1200, pair_role=query_log)")
    )  # fmt: skip
    assert f"| {diff:+.3f} [" in row
    with pytest.raises(SystemExit, match="name the settings to hold fixed with --within"):
        compare_designs_cli.main(args)  # OP uncentred and centred both match the baseline
    with pytest.raises(SystemExit, match="nope: not a setting the runs differ in"):
        compare_designs_cli.main([*args, "--within", "nope"])
    with pytest.raises(SystemExit, match="no design matches --baseline.*document, query, "):
        compare_designs_cli.main([str(runs), "--baseline", "pair_role=documents"])
    # Hydra's spelling of a boolean and a float spelling of a count select the same design.
    spelled = [str(runs), "--baseline", "pair_role=document", "op_center=true", "np=1200.0"]
    assert compare_designs_cli.main([*spelled, "--out", str(tmp_path / "b.md")]) == 0
    assert (tmp_path / "b.md").read_text().count("(baseline)") == 2 * 4  # per metric: 4 strategies


def test_gate_calibration_sets_both_estimators_beside_the_measured_arr(tmp_path: Path) -> None:
    """A planted rotation: one run's saved adapter and held-out pairs, a measured ARR; the rows
    carry drift gate's two estimates, and an adapter overwritten by another run is skipped."""
    from collections import Counter

    import numpy as np

    import drift.report.gate_calibration as gate_calibration
    from drift.adapters import build_adapter
    from drift.core.vectors import l2_normalize
    from drift.migration.gate import evaluate_gate, pool_estimates

    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    x_new = l2_normalize(rng.standard_normal((1200, 16)).astype(np.float32))
    x_old = l2_normalize((x_new @ rotation + 0.2 * rng.standard_normal((1200, 16))).astype("f4"))
    adapter = build_adapter("procrustes").fit(x_new[:800], x_old[:800])
    adapter.save(tmp_path / "hash" / "procrustes")
    np.savez(tmp_path / "hash" / "val_pairs.npz", new=x_new[800:1000], old=x_old[800:1000])
    knn = {"status_quo": 0.5, "adapter/procrustes": 0.4}
    record = {
        "artifacts": {
            "procrustes": "/elsewhere/hash/procrustes",  # moved: found through adapters_dir
            "val_pairs": "/elsewhere/hash/val_pairs.npz",
        },
        "adapters": {"procrustes": {"fit_seconds": adapter.fit_seconds}},
        "metrics": {
            "protocols": {
                "knn": {
                    "strategies": {
                        name: {"metrics": {"recall@10": {"mean": value}}}
                        for name, value in knn.items()
                    }
                }
            }
        },
        "config": {"tags": ["main_table"]},
        "task_name": "main_table",
        "dataset": {"name": "toy", "n_corpus": 1000},
        "models": {"old": {"name": "old"}, "new": {"name": "new"}},
        "seed": 0,
        "pairs": {"role": "document"},
    }
    skipped: Counter[str] = Counter()
    (row,) = gate_calibration.rows_of(record, tmp_path, 50, skipped)
    expected = evaluate_gate(adapter, x_new[800:1000], x_old[800:1000], corpus_size=1000, n_boot=50)
    assert row["pool_k"] == 2 and row["measured"] == 0.4 and not skipped
    assert row["depth_scaled"] == expected.arr["mean"]
    assert row["pool_at_k"] == expected.arr_at_k["mean"] > row["depth_scaled"]
    shifted = ("measured", "depth_scaled", "pool_at_k")
    rows = [
        {**row, "file": f"run{i}", **{key: row[key] + d for key in shifted}}
        for i, d in enumerate((-0.1, 0.0, 0.1))
    ]
    summary = gate_calibration.summary_of(pd.DataFrame(rows))
    assert summary["n_runs"] == 3
    scaled = summary["estimators"]["depth_scaled"]
    assert scaled["bias_mean"] == pytest.approx(row["depth_scaled"] - 0.4)
    assert scaled["spearman"] == pytest.approx(1.0)

    # A result file that records the gate needs no saved artifacts.
    record["gate"] = pool_estimates(
        {"procrustes": adapter}, x_new[800:1000], x_old[800:1000], corpus_size=1000, n_boot=50
    )
    gone = {**record, "artifacts": {}}
    assert list(gate_calibration.rows_of(gone, None, 50, skipped)) == [row]
    del record["gate"]
    record["adapters"]["procrustes"]["fit_seconds"] += 1.0  # the folder holds another run's fit
    assert list(gate_calibration.rows_of(record, tmp_path, 50, skipped)) == []
    assert skipped == {"adapter saved by another run of the same config": 1}


def test_design_key_ignores_seed_paths_and_batch_sizes_and_fills_added_settings() -> None:
    from drift.core.records import design_key, design_settings

    base = {
        "seed": 0,
        "paths": {"results_dir": "a"},
        "new_encoder": {"model_id": "m", "batch_size": 32},
        "adapter": {"n_pairs": 10},
    }
    same = {
        "seed": 3,
        "paths": {"results_dir": "b"},
        "new_encoder": {"model_id": "m", "batch_size": {"cpu": 4, "cuda": 32}},
        "adapter": {"n_pairs": 10, "pair_role": "document"},  # the value older runs had
    }
    assert design_key(base) == design_key(same)
    assert design_settings(base) == design_settings(same)
    assert design_settings(base)["adapter.pair_role"] == '"document"'
    other = {**same, "adapter": {"n_pairs": 10, "pair_role": "query"}}
    assert design_key(other) != design_key(base)
    assert design_key({**base, "new_encoder": {"model_id": "n"}}) != design_key(base)


# -- designs kept apart, reruns counted once ---------------------------------------------------
PAPER_RUNS = REPO_ROOT / "results" / "paper_cpu" / "runs"


def committed(experiment: str, **where: object) -> list[dict]:
    """The committed paper_cpu runs of `experiment` whose adapter config has the given values."""
    records = [json.loads(p.read_text()) for p in PAPER_RUNS.rglob(f"{experiment}-seed*.json")]
    return sorted(
        (r for r in records if all(find(r["config"], k) == v for k, v in where.items())),
        key=lambda r: (r["seed"], r["created"]),
    )


def find(config: dict, dotted: str) -> object:
    for key in dotted.split("."):
        config = config[key]
    return config


def planted(record: dict, *, minutes: int, shift: float, **settings: object) -> dict:
    """A copy of `record` with config settings changed (a new design unless none are given),
    written `minutes` later, its low-rank affine and Procrustes kNN R@10 shifted by `shift`."""
    copy = json.loads(json.dumps(record))
    for dotted, value in settings.items():
        *path, last = dotted.split(".")
        find(copy["config"], ".".join(path))[last] = value
    copy["config_hash"] = config_hash(copy["config"])
    created = dt.datetime.fromisoformat(copy["created"]) + dt.timedelta(minutes=minutes)
    copy["created"] = created.isoformat(timespec="seconds")
    for strategy in ("adapter/low_rank_affine", "adapter/procrustes"):
        knn = copy["metrics"]["protocols"]["knn"]["strategies"].get(strategy)
        if knn:
            knn["metrics"]["recall@10"]["mean"] += shift
    return copy


def write(root: Path, records: list[dict], name: str = "") -> Path:
    for record in records:
        path = result_path(root, record)
        write_json_atomic(path.with_stem(path.stem + name), record)
    return root


def r10(record: dict, strategy: str) -> float:
    return record["metrics"]["protocols"]["knn"]["strategies"][strategy]["metrics"]["recall@10"][
        "mean"
    ]


def test_sweeps_at_different_np_are_two_figures_not_one_pooled_line(tmp_path: Path) -> None:
    """Two la_rank sweeps that differ only in Np (the auditor's case): one figure each, named
    and subtitled by Np, each point the mean of its own design's seeds; summarizing them by rank
    alone is an error that names the setting."""
    runs = committed("la_rank", **{"adapter.methods.low_rank_affine.rank": 8})[:2]
    runs += committed("la_rank", **{"adapter.methods.low_rank_affine.rank": 16})[:2]
    small = []
    for record in runs:
        copy = planted(record, minutes=60, shift=-0.1, **{"adapter.n_pairs": 500})
        copy["pairs"].update(n_requested=500, n_train=400, n_val=100)
        small.append(copy)
    frame = collect_results.collect(write(tmp_path, runs + small))
    made, _ = make_figures.build_figures(frame)
    assert set(made) == {
        "la_rank--np_requested-500--np-500",
        "la_rank--np_requested-20000--np-5818",
    }
    for name, records in (("500--np-500", small), ("20000--np-5818", runs)):
        figure, points = made[f"la_rank--np_requested-{name}"]
        assert f"np_requested={name.split('--')[0]}" in figure._suptitle.get_text()
        la = points[(points.protocol == "knn") & (points.strategy == "adapter/low_rank_affine")]
        for rank, mean in zip(la["la_rank"], la["mean"], strict=True):
            mine = [r10(r, "adapter/low_rank_affine") for r in records if find(
                r["config"], "adapter.methods.low_rank_affine.rank") == rank]  # fmt: skip
            assert len(mine) == 2 and mean == pytest.approx(sum(mine) / 2, rel=1e-12)
        plt.close(figure)
    rows = frame[(frame.protocol == "knn") & (frame.metric == "recall@10")]
    with pytest.raises(collect_results.PooledDesignsError, match="np_requested: 20000, 500"):
        collect_results.summarize(rows, by=["la_rank", "strategy"])


def test_main_table_gives_each_index_its_own_block(tmp_path: Path) -> None:
    """main_table runs on HNSW and on Flat: two column blocks headed by the index, not one mean."""
    hnsw = committed("main_table", **{"dataset.name": "offline_mix"})[:2]
    flat = [
        planted(r, minutes=60, shift=0.01, **{"index.kind": "flat", "index.ef_search": None})
        for r in hnsw
    ]
    for record in flat:
        record["index"]["spec"]["kind"] = "flat"
    table = make_figures.main_table(collect_results.collect(write(tmp_path, hnsw + flat)))
    titles = [block.title(with_pair=False) for block in table.blocks]
    assert titles == ["offline_mix, index_kind=flat, ef_search=none",
                      "offline_mix, index_kind=hnsw, ef_search=50"]  # fmt: skip
    # The pair is said once, in the caption; each block is a table of its own in Markdown.
    assert table.pair == "all-MiniLM-L6-v2 -> all-mpnet-base-v2" and table.n_seeds == 2
    markdown = table.markdown()
    assert "Model pair (old -> new): all-MiniLM-L6-v2 -> all-mpnet-base-v2." in markdown
    assert markdown.count("-> all-mpnet-base-v2") == 1
    assert [line for line in markdown.splitlines() if line.startswith("## ")] == [
        f"## {title}" for title in titles
    ]
    assert markdown.count("| Strategy | R@10 kNN | MRR@10 kNN | nDCG@10 qrels |") == 2
    op = dict(table.rows)["OP"]
    width = len(table.blocks[0].columns)
    for block, records in ((0, flat), (1, hnsw)):
        mean = sum(r10(r, "adapter/procrustes") for r in records) / 2
        assert op[block * width].startswith(f"{mean:.3f} ± ")
    # The wide CSV keeps a column per block and metric, named in full.
    wide = table.wide()
    assert list(wide["Strategy"]) == [label for label, _ in table.rows]
    column = "offline_mix, all-MiniLM-L6-v2 -> all-mpnet-base-v2, index_kind=hnsw, ef_search=50"
    assert wide[f"{column}: R@10 (kNN ARR)"].tolist() == [cells[width] for _, cells in table.rows]
    assert wide.shape[1] == 1 + 2 * width


def test_main_table_divides_knn_recall_by_the_full_reindex(tmp_path: Path) -> None:
    """R@10 / re-index: each run's kNN R@10 over its own full re-index's (below 1 under HNSW),
    then mean and s.d. over the seeds; the R@10 column stays the ARR, undivided."""
    records = committed("main_table", **{"dataset.name": "offline_mix"})[:2]
    table = make_figures.main_table(collect_results.collect(write(tmp_path, records)))
    headers = [short for short, _ in table.blocks[0].columns]
    ratios = [r10(r, "adapter/procrustes") / r10(r, "full_reindex") for r in records]
    op = dict(table.rows)["OP"]
    mean, std = sum(ratios) / 2, abs(ratios[0] - ratios[1]) / math.sqrt(2)
    assert op[headers.index("R@10 / re-index")] == f"{mean:.3f} ± {std:.3f}"
    plain = sum(r10(r, "adapter/procrustes") for r in records) / 2
    assert op[headers.index("R@10 kNN")].startswith(f"{plain:.3f} ± ")


def test_synthetic_level_axis_says_what_level_0_is(tmp_path: Path) -> None:
    """Level 0 plants no drift, yet the old and new models project the latent differently: the
    axis says so, with the drift the committed runs measured there (1 - 0.829 of 10-NN)."""
    runs = collect_results.collect(write(tmp_path, committed("drift_synthetic")))
    rows, note = make_figures.runs_of(runs, ["drift_synthetic"])
    figure, _ = make_figures.fig_drift_synthetic(make_figures.Context("", rows, note))
    label = figure.axes[0].get_xlabel().replace("\n", " ")
    plt.close(figure)
    assert "0: none planted, but the 384-d and 768-d projections of one latent differ" in label
    assert "1 - 10-NN overlap 0.17 at level 0" in label


def test_designs_differing_in_a_setting_without_a_column_stop_the_figure(tmp_path: Path) -> None:
    """la_rank runs that differ only in the low-rank affine's alpha (no column of the tidy
    table): an error naming both designs' settings, never a silent pooled line."""
    runs = committed("la_rank", **{"adapter.methods.low_rank_affine.rank": 8})[:2]
    other = [
        planted(r, minutes=60, shift=0.0, **{"adapter.methods.low_rank_affine.alpha": 0.5})
        for r in runs
    ]
    frame = collect_results.collect(write(tmp_path, runs + other))
    with pytest.raises(collect_results.PooledDesignsError, match=r"figure la_rank: .*alpha=0\.5"):
        make_figures.build_figures(frame)


def test_a_rerun_of_one_design_and_seed_counts_once_the_newest(tmp_path: Path) -> None:
    """Seed 0 run twice with the same config: the summary and the figure use the newer file's
    value, the seed counts once, and the older file is reported as set aside."""
    runs = committed("la_rank", **{"adapter.methods.low_rank_affine.rank": 8})[:2]
    rerun = planted(runs[0], minutes=60, shift=0.05)
    assert rerun["config_hash"] == runs[0]["config_hash"]
    frame = collect_results.collect(write(write(tmp_path, runs), [rerun], "-rerun"))
    rows = frame[(frame.protocol == "knn") & (frame.metric == "recall@10")]
    (la,) = collect_results.summarize(
        rows[rows.strategy == "adapter/low_rank_affine"], by=["la_rank", "strategy"]
    ).to_dict("records")
    expected = (r10(rerun, "adapter/low_rank_affine") + r10(runs[1], "adapter/low_rank_affine")) / 2
    assert la["n_seeds"] == 2 and la["mean"] == pytest.approx(expected, rel=1e-12)
    old = collect_results.superseded_runs(frame)
    assert len(old) == 1 and old["seed"].iloc[0] == 0 and "-rerun" not in old["file"].iloc[0]
    ((figure, points),) = make_figures.build_figures(frame)[0].values()
    plotted = points[(points.protocol == "knn") & (points.strategy == "adapter/low_rank_affine")]
    assert plotted["mean"].tolist() == [la["mean"]]
    plt.close(figure)

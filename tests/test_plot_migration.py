"""drift/report/migration_figures.py on hand-made records (tests/test_recommend.py) and on a
smoke run."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from test_recommend import POINTS, make_record, make_stream, make_timeline, write_records

import drift.report.migration_figures as plot_migration
from drift.cli import plot_migration as plot_migration_cli
from drift.cli.config import compose
from drift.report.figures import PAPER_STYLE
from drift.run import run


def assert_drawn(path: Path) -> None:
    """A non-empty PNG with something on it (not a blank canvas)."""
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 600
    assert np.asarray(image[..., :3]).std() > 0.05


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seeds of one design (two with a stream section, all with a timeline)."""
    records = []
    for seed in range(3):
        points = {k: (v[0] + 0.01 * seed, v[1] - 0.01 * seed, v[2]) for k, v in POINTS.items()}
        stream = make_stream() if seed < 2 else None
        records.append(make_record(points, seed=seed, stream=stream, timeline=make_timeline()))
    return write_records(tmp_path_factory.mktemp("hand_made"), records)


def test_every_output_from_hand_made_records(hand_made: Path, tmp_path: Path, capsys) -> None:
    assert plot_migration_cli.main([str(hand_made), "--out", str(tmp_path)]) == 0
    assert "skipped" not in capsys.readouterr().out
    # one design of one experiment: the figure and the experiment (its first tag), no more
    stems = {"pareto--beyond_paper", "stream--beyond_paper", "timeline--beyond_paper"}
    assert {p.stem for p in tmp_path.glob("*.png")} == stems
    for stem in stems:
        assert_drawn(tmp_path / f"{stem}.png")
        assert (tmp_path / f"{stem}.pdf").stat().st_size > 1000
    pareto = pd.read_csv(tmp_path / "pareto--beyond_paper.csv")
    ndcg = pareto[pareto["metric"] == "qrels/ndcg@10"].set_index("strategy")
    assert ndcg.loc["rerank/status_quo@50", "n_seeds"] == 3
    assert np.isclose(ndcg.loc["rerank/status_quo@50", "mean"], 0.495)  # mean of 3 seeds
    assert np.isclose(ndcg.loc["status_quo", "std"], 0.01)  # 0.40, 0.41, 0.42
    frontier = set(ndcg.index[ndcg["frontier"]])
    assert frontier == {"status_quo", "fusion/zscore@0.5", "rerank/status_quo@50", "full_reindex"}
    # key numbers: the frontier points of either panel, by cost; none for dominated points
    keys = [ndcg.loc[name, "key"] for name in ("status_quo", "fusion/zscore@0.5")]
    keys += [ndcg.loc[name, "key"] for name in ("rerank/status_quo@50", "full_reindex")]
    assert keys == [1, 2, 3, 4]
    assert pd.isna(ndcg.loc["backfill/status_quo/random/rrf@0.25", "key"])
    stream = pd.read_csv(tmp_path / "stream--beyond_paper.csv")
    rerank = stream[
        (stream.strategy == "rerank/status_quo@50") & (stream.quantity == "share_encoded")
    ]
    assert rerank["value"].tolist() == [0.05, 0.1, 0.2, 0.3] and set(rerank["n_runs"]) == {2}
    timeline = pd.read_csv(tmp_path / "timeline--beyond_paper.csv")
    status_quo = timeline[(timeline.name == "status_quo") & (timeline.metric == "knn/recall@10")]
    assert len(status_quo) == 21 and np.allclose(status_quo["mean"], 0.5)  # a scalar reference
    table = (tmp_path / "strategy_costs.md").read_text()
    assert "| Strategy | nDCG@10 | R@10 | Share encoded | Encodes | us/query |" in table
    assert "| full_reindex | 0.510 ± 0.010 | 0.990 ± 0.010 | 100.0% | 1,000 |" in table
    dominated = next(line for line in table.splitlines() if "rrf@0.25 |" in line)
    assert dominated.endswith("| no | no |")


def test_absent_sections_are_skipped_naming_their_experiment(tmp_path: Path, capsys) -> None:
    only_paper = {k: v for k, v in POINTS.items() if "/" not in k or k.startswith("adapter/")}
    folder = write_records(tmp_path / "runs", [make_record(only_paper, experiment="main_table")])
    assert plot_migration_cli.main([str(folder), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "experiment=beyond_paper" in out and "experiment=query_stream" in out
    assert "experiment=migration_timeline" in out and "experiment=continuous_adaptation" in out
    assert not list((tmp_path / "out").glob("*.png"))


def test_no_result_files_is_an_error(tmp_path: Path, capsys) -> None:
    assert plot_migration_cli.main([str(tmp_path / "missing")]) == 2
    (tmp_path / "other.json").write_text('{"not": "a result"}')
    assert plot_migration_cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no result files" in capsys.readouterr().err


def test_a_smoke_run_gives_the_pareto_figure_and_table(tmp_path: Path, capsys) -> None:
    """A real drift.run result file (smoke setting, synthetic encoders: kNN protocol only; one
    adapter to stay fast, about 8 s) with the rerank, fusion and backfill strategies."""
    run(
        compose(
            [
                "debug=smoke",
                "logger=none",
                f"paths.results_dir={tmp_path / 'results'}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                "encoder@old_encoder=synthetic_old",
                "encoder@new_encoder=synthetic_new",
                "dataset=synthetic",
                "~adapter.methods.low_rank_affine",
                "~adapter.methods.residual_mlp",
                "~adapter.methods.ridge",
                "adapter.dsm=[false]",
            ]
        )
    )
    out = tmp_path / "figures"
    assert plot_migration_cli.main([str(tmp_path / "results"), "--out", str(out)]) == 0
    assert "skipped stream" in capsys.readouterr().out
    assert_drawn(out / "pareto--smoke.png")  # a smoke run's first tag
    table = (out / "strategy_costs.md").read_text()
    assert table.startswith("# SMOKE RUNS, NOT RESULTS")
    for strategy in ("full_reindex", "status_quo", "adapter/procrustes", "rerank/union@100"):
        assert f"| {strategy} |" in table
    assert "ceiling" not in table.split("left out.")[1]
    points = pd.read_csv(out / "pareto--smoke.csv")
    assert set(points["metric"]) == {"knn/recall@10"}
    assert points.set_index("strategy").loc["full_reindex", "frontier"]


def test_one_file_per_dataset_and_design(tmp_path: Path) -> None:
    """The dataset and model pair are named when one experiment ran on several."""
    folder = write_records(
        tmp_path / "runs", [make_record(dataset="a"), make_record(dataset="b", seed=1)]
    )
    assert plot_migration_cli.main([str(folder), "--out", str(tmp_path / "out")]) == 0
    stems = sorted(p.stem for p in (tmp_path / "out").glob("pareto--*.png"))
    assert stems == [
        "pareto--beyond_paper--a--old-model-to-new-model",
        "pareto--beyond_paper--b--old-model-to-new-model",
    ]
    table = (tmp_path / "out" / "strategy_costs.md").read_text()
    assert table.count("\n## ") == 2 and "experiment beyond_paper" in table


def with_config(record: dict, path: str, value: object) -> dict:
    """The record with config[path] (dotted) set to value."""
    *parents, key = path.split(".")
    node = record["config"]
    for parent in parents:
        node = node.setdefault(parent, {})
    node[key] = value
    return record


@pytest.mark.parametrize(
    ("experiment", "path", "values", "figure"),
    [
        ("query_stream", "stream.popularity", ("zipf", "uniform"), "stream"),
        ("continuous_adaptation", "timeline.adapter", ("procrustes", "residual_mlp"), "timeline"),
    ],
)
def test_designs_are_named_by_the_settings_that_differ(
    tmp_path: Path, experiment: str, path: str, values: tuple[str, str], figure: str
) -> None:
    """Two designs of one experiment (two seeds each) that differ in one setting: one file each,
    named by the setting's last key and value; titles and table name it too."""
    records = [
        with_config(make_record(seed=seed, experiment=experiment, **{figure: maker()}), path, value)
        for value in values
        for seed in (0, 1)
        for maker in [make_stream if figure == "stream" else make_timeline]
    ]
    folder = write_records(tmp_path / "runs", records)
    out = tmp_path / "out"
    assert plot_migration_cli.main([str(folder), "--out", str(out)]) == 0
    key = path.rsplit(".", 1)[1]
    expected = {f"{name}--{experiment}--{key}-{v}" for name in ("pareto", figure) for v in values}
    assert {p.stem for p in out.glob("*.png")} == expected
    for stem in expected:
        assert_drawn(out / f"{stem}.png")
    table = (out / "strategy_costs.md").read_text()
    assert all(f"experiment {experiment}; {key}={v};" in table for v in values)


def test_design_names_from_configs() -> None:
    """Only differing settings name a design (absent ones read none, lists joined by _); a
    name too long is cut and gets the design's hash; seeds and paths are no part of a design."""
    configs = {
        "g1": {
            "seed": 0,
            "paths": {"root": "/a"},
            "a": {"x": 1, "y": [1, 2]},
            "index": {"seed": 0},
        },
        "g2": {"seed": 1, "paths": {"root": "/b"}, "a": {"x": 1, "y": [3]}, "b": None},
        "g3": {"seed": 2, "a": {"x": 1, "y": [3]}, "b": "on"},
    }
    settings = {g: plot_migration.design_settings(c) for g, c in configs.items()}
    differing = plot_migration.differences(settings)
    assert differing == {
        "g1": [("y", "1_2"), ("b", "none")],  # in the order of the full paths: a.y, b
        "g2": [("y", "3"), ("b", "none")],
        "g3": [("y", "3"), ("b", "on")],
    }
    assert plot_migration.name_of(differing["g1"], "g1") == "--y-1_2--b-none"
    long = [("weights", "_".join(["0.125"] * 20))]
    assert plot_migration.name_of(long, "abc123") == "--etc-abc123"


def test_frontier_numbers_do_not_overlap(tmp_path: Path) -> None:
    """Many frontier points close together (rerank variants near 100% encoded): every number is
    written, inside its panel, and no two numbers' text boxes overlap."""
    points = dict(POINTS)
    for i in range(12):
        points[f"rerank/union@{10 * (i + 1)}"] = (
            0.47 + 0.003 * i,
            0.90 + 0.008 * i,
            0.95 + 0.004 * i,
        )
    folder = write_records(tmp_path / "runs", [make_record(points)])
    rows, _, records = plot_migration.load(folder)
    chosen, note = plot_migration.beyond_paper_rows(rows)
    with plt.rc_context(PAPER_STYLE):
        fig, table = plot_migration.fig_pareto(chosen, note, [])
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ax, metric in zip(fig.axes[:2], ("qrels/ndcg@10", "knn/recall@10"), strict=True):
        numbers = [t for t in ax.texts if t.get_text().isdigit()]
        frontier = table[(table["metric"] == metric) & table["frontier"]]
        assert sorted(int(t.get_text()) for t in numbers) == sorted(frontier["key"])
        boxes = [Text.get_window_extent(t, renderer) for t in numbers]  # without leader lines
        frame = ax.get_window_extent(renderer)
        for i, box in enumerate(boxes):
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 + 1
            assert not any(box.overlaps(other) for other in boxes[i + 1 :])
    plt.close(fig)

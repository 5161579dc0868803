"""scripts/plot_migration.py on hand-made records (tests/test_recommend.py) and on a smoke run."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from test_recommend import POINTS, make_record, make_stream, make_timeline, write_records

from drift.config import compose
from drift.provenance import REPO_ROOT
from drift.run import run

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import plot_migration  # noqa: E402


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
    assert plot_migration.main([str(hand_made), "--out", str(tmp_path)]) == 0
    assert "skipped" not in capsys.readouterr().out
    for stem in ("pareto", "stream", "timeline"):
        assert_drawn(tmp_path / f"{stem}.png")
        assert (tmp_path / f"{stem}.pdf").stat().st_size > 1000
    pareto = pd.read_csv(tmp_path / "pareto.csv")
    ndcg = pareto[pareto["metric"] == "qrels/ndcg@10"].set_index("strategy")
    assert ndcg.loc["rerank/status_quo@50", "n_seeds"] == 3
    assert np.isclose(ndcg.loc["rerank/status_quo@50", "mean"], 0.495)  # mean of 3 seeds
    assert np.isclose(ndcg.loc["status_quo", "std"], 0.01)  # 0.40, 0.41, 0.42
    frontier = set(ndcg.index[ndcg["frontier"]])
    assert frontier == {"status_quo", "fusion/zscore@0.5", "rerank/status_quo@50", "full_reindex"}
    stream = pd.read_csv(tmp_path / "stream.csv")
    rerank = stream[
        (stream.strategy == "rerank/status_quo@50") & (stream.quantity == "share_encoded")
    ]
    assert rerank["value"].tolist() == [0.05, 0.1, 0.2, 0.3] and set(rerank["n_runs"]) == {2}
    timeline = pd.read_csv(tmp_path / "timeline.csv")
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
    assert plot_migration.main([str(folder), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "experiment=beyond_paper" in out and "experiment=query_stream" in out
    assert "experiment=migration_timeline" in out and "experiment=continuous_adaptation" in out
    assert not list((tmp_path / "out").glob("*.png"))


def test_no_result_files_is_an_error(tmp_path: Path, capsys) -> None:
    assert plot_migration.main([str(tmp_path / "missing")]) == 2
    (tmp_path / "other.json").write_text('{"not": "a result"}')
    assert plot_migration.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
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
    assert plot_migration.main([str(tmp_path / "results"), "--out", str(out)]) == 0
    assert "skipped stream" in capsys.readouterr().out
    assert_drawn(out / "pareto.png")
    table = (out / "strategy_costs.md").read_text()
    assert table.startswith("# SMOKE RUNS, NOT RESULTS")
    for strategy in ("full_reindex", "status_quo", "adapter/procrustes", "rerank/union@100"):
        assert f"| {strategy} |" in table
    assert "ceiling" not in table.split("left out.")[1]
    points = pd.read_csv(out / "pareto.csv")
    assert set(points["metric"]) == {"knn/recall@10"}
    assert points.set_index("strategy").loc["full_reindex", "frontier"]


def test_one_file_per_dataset_and_design(tmp_path: Path) -> None:
    folder = write_records(
        tmp_path / "runs", [make_record(dataset="a"), make_record(dataset="b", seed=1)]
    )
    assert plot_migration.main([str(folder), "--out", str(tmp_path / "out")]) == 0
    stems = sorted(p.stem for p in (tmp_path / "out").glob("pareto--*.png"))
    assert len(stems) == 2 and stems[0].startswith("pareto--a--") and "--b--" in stems[1]
    table = (tmp_path / "out" / "strategy_costs.md").read_text()
    assert table.count("\n## ") == 2 and "experiment beyond_paper" in table

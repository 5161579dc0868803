"""drift/report/scale_law.py and `drift scale-law`: per-seed log10(N) fits on planted curves
(slope, t-interval over seeds, crossing of the status quo), and the command on committed runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from drift.cli import scale_law as scale_law_cli
from drift.core.errors import DataError
from drift.core.provenance import REPO_ROOT
from drift.report.scale_law import scale_law

SIZES = (1_000, 10_000, 100_000)


def planted(
    slopes: dict[str, float],
    intercepts: dict[str, float],
    seeds=(0, 1, 2),
    sizes=SIZES,
) -> pd.DataFrame:
    """A tidy table as `collect` gives it: value = intercept + slope log10 N."""
    rows = []
    for seed in seeds:
        for n in sizes:
            for strategy in slopes:
                value = intercepts[strategy] + slopes[strategy] * math.log10(n)
                rows.append(
                    {
                        "experiment": "corpus_size_x",
                        "dataset": "d",
                        "pair": "a -> b",
                        "level": np.nan,
                        "index_kind": "flat",
                        "protocol": "knn",
                        "metric": "recall@10",
                        "strategy": strategy,
                        "n_corpus": n,
                        "seed": seed,
                        "value": value,
                        "debug": False,
                        "group": f"g{n}",
                        "created": f"2026-01-01T00:00:0{seed}",
                    }
                )
    return pd.DataFrame(rows)


def law(laws: pd.DataFrame, strategy: str) -> dict:
    (row,) = laws[laws["strategy"] == strategy].to_dict("records")
    return row


def test_a_planted_line_gives_its_slope_and_the_crossing_of_the_status_quo() -> None:
    """OP falls 0.1 per tenfold from 0.6 at 1k, the status quo rises 0.05 from 0.3: the paired
    difference 0.3 - 0.15 log10(N/1k) crosses zero at N = 1k x 10^2 = 100k, the largest size."""
    frame = planted(
        {"adapter/procrustes": -0.10, "status_quo": 0.05},
        {"adapter/procrustes": 0.9, "status_quo": 0.15},
    )
    points, laws = scale_law(frame)
    op = law(laws, "adapter/procrustes")
    assert op["slope_per_tenfold"] == pytest.approx(-0.10)
    assert op["slope_ci_low"] == pytest.approx(-0.10) == pytest.approx(op["slope_ci_high"])
    assert op["value_at_smallest"] == pytest.approx(0.6)
    assert op["n_seeds"] == 3 and op["n_sizes"] == 3 and op["seeds_left_out"] == 0
    diff = law(laws, "adapter/procrustes - status_quo")
    assert diff["slope_per_tenfold"] == pytest.approx(-0.15)
    assert diff["crossing_n"] == pytest.approx(100_000, rel=1e-9)
    assert diff["crossing_within_sizes"]
    at_1k = points[(points["strategy"] == "adapter/procrustes - status_quo")].iloc[0]
    assert at_1k["n_corpus"] == 1_000 and at_1k["mean"] == pytest.approx(0.3)


def test_the_slope_interval_is_the_t_interval_of_the_per_seed_slopes() -> None:
    """Seeds whose curves differ in slope: the CI is mean +- t(0.975, 2) s / sqrt(3) of the three
    fitted slopes, and the points' CIs are over the seeds at each size."""
    slopes = [-0.08, -0.10, -0.12]
    rows = []
    for seed, slope in enumerate(slopes):
        part = planted(
            {"adapter/procrustes": slope, "status_quo": 0.0},
            {"adapter/procrustes": 0.9, "status_quo": 0.3},
            seeds=(seed,),
        )
        rows.append(part)
    _, laws = scale_law(pd.concat(rows, ignore_index=True))
    op = law(laws, "adapter/procrustes")
    half = stats.t.ppf(0.975, 2) * np.std(slopes, ddof=1) / math.sqrt(3)
    assert op["slope_per_tenfold"] == pytest.approx(-0.10)
    assert op["slope_ci_high"] - op["slope_per_tenfold"] == pytest.approx(half)
    # OP - status quo = 0.6 + slope log10 N: each seed crosses at N = 10^(0.6 / -slope)
    logs = [0.6 / -slope for slope in slopes]
    spread = stats.t.ppf(0.975, 2) * np.std(logs, ddof=1) / math.sqrt(3)
    diff = law(laws, "adapter/procrustes - status_quo")
    assert math.log10(diff["crossing_ci_low"]) == pytest.approx(np.mean(logs) - spread)
    assert math.log10(diff["crossing_ci_high"]) == pytest.approx(np.mean(logs) + spread)


def test_a_seed_missing_a_size_is_left_out_of_the_fit_and_one_seed_has_no_interval() -> None:
    frame = planted(
        {"adapter/procrustes": -0.1, "status_quo": 0.0},
        {"adapter/procrustes": 0.9, "status_quo": 0.3},
    )
    frame = frame[~((frame["seed"] > 0) & (frame["n_corpus"] == 1_000))]
    points, laws = scale_law(frame)
    op = law(laws, "adapter/procrustes")
    assert op["n_seeds"] == 1 and op["seeds"] == "0" and op["seeds_left_out"] == 2
    assert op["slope_per_tenfold"] == pytest.approx(-0.1) and math.isnan(op["slope_ci_low"])
    at_100k = points[(points["strategy"] == "adapter/procrustes") & (points["n_corpus"] == 100_000)]
    assert at_100k["n_seeds"].item() == 3


def test_one_corpus_size_is_no_scale_law() -> None:
    frame = planted({"status_quo": 0.0}, {"status_quo": 0.3}, sizes=(5_000,))
    with pytest.raises(DataError, match="two corpus sizes"):
        scale_law(frame)


def test_the_command_on_the_committed_gcide_sweep(tmp_path: Path) -> None:
    runs = REPO_ROOT / "results" / "corpus_size_gcide" / "runs"
    assert (
        scale_law_cli.main([str(runs), "--out", str(tmp_path), "--strategy", "adapter/procrustes"])
        == 0
    )
    laws = pd.read_csv(tmp_path / "laws.csv")
    np20k = laws[
        (laws["experiment"] == "corpus_size_gcide_np20k")
        & (laws["index_kind"] == "flat")
        & (laws["protocol"] == "knn")
        & (laws["strategy"] == "adapter/procrustes")
    ]
    assert len(np20k) == 1 and np20k["slope_per_tenfold"].item() < 0  # OP falls with N
    assert "| corpus_size_gcide_np20k |" in (tmp_path / "laws.md").read_text()
    assert list(tmp_path.glob("corpus_size_gcide_np20k--gcide--flat--knn--recall_10.png"))


def test_the_command_refuses_a_folder_without_results(tmp_path: Path, capsys) -> None:
    assert scale_law_cli.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "drift scale-law" in capsys.readouterr().err


def test_a_nearly_flat_difference_has_its_crossing_out_of_range_not_an_overflow() -> None:
    frame = planted(
        {"dual_index": 1e-6, "status_quo": 0.0}, {"dual_index": 0.5, "status_quo": 0.25}
    )
    _, laws = scale_law(frame)
    diff = law(laws, "dual_index - status_quo")
    assert diff["crossing_n"] in (1e-300, 1e300) and not diff["crossing_within_sizes"]

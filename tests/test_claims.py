"""The claims ledger (drift/report/claims.py): its intervals, its verdicts on hand-made records,
and the committed results/claims/ being exactly what `drift claims` makes of the committed
result files (so the ledger cannot drift from them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from drift.cli.claims import main
from drift.core.provenance import REPO_ROOT
from drift.core.records import ResultRecord
from drift.report import claims


def record(experiment: str, seed: int, recalls: dict[str, float], **extra) -> ResultRecord:
    """A minimal result record: kNN R@10 per strategy (bootstrap CI +-0.01)."""
    strategies = {
        name: {"metrics": {"recall@10": {"mean": v, "ci_low": v - 0.01, "ci_high": v + 0.01}}}
        for name, v in recalls.items()
    }
    data = {
        "config": {"tags": [experiment], **extra.pop("config", {})},
        "seed": seed,
        "created": f"2026-01-0{seed + 1}",
        "dataset": {"name": "offline_mix"},
        "models": {
            "old": {"name": claims.TEXT_PAIR[0], "dim": 384},
            "new": {"name": claims.TEXT_PAIR[1], "dim": 768},
        },  # fmt: skip
        "metrics": {"protocols": {"knn": {"strategies": strategies}}},
        **extra,
    }
    return ResultRecord(Path(f"{experiment}-{seed}.json"), data)


def test_intervals_are_t_intervals_over_seeds_and_one_run_keeps_its_bootstrap():
    values = [0.61, 0.64, 0.6, 0.66, 0.62]
    found = claims.over_seeds(values)
    low, high = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert (found.low, found.high) == pytest.approx((low, high))
    assert found.over == "5 seeds"
    single = claims.over_seeds([0.5], run_ci=(0.45, 0.55))
    assert (single.mean, single.low, single.high) == (0.5, 0.45, 0.55)


def test_a_rerun_counts_once_per_seed():
    old = record("main_table", 0, {"status_quo": 0.1})
    new = record("main_table", 0, {"status_quo": 0.2})
    new.data["created"] = "2026-02-01"
    assert claims.newest_per_seed([new, old]) == [new]


@pytest.mark.parametrize(
    ("gain", "verdict"), [(0.01, claims.REPRODUCED), (0.0, claims.NOT_REPRODUCED)]
)
def test_dsm_verdict_follows_the_paired_gain(gain: float, verdict: str):
    pairs = {"pairs": {"n_train": 80, "n_val": 20}}
    runs = []
    for seed in range(3):
        base = {f"adapter/{k}": 0.5 + 0.01 * seed for k in claims.ADAPTERS.values()}
        noise = 0.0005 * (seed - 1)
        with_dsm = {f"{name}+dsm": v + gain + noise for name, v in base.items()}
        runs.append(record("dsm_ablation", seed, base | with_dsm, **pairs))
    measured, _, found, _ = claims._dsm(runs)
    assert found == verdict, measured


def test_main_table_verdict_compares_with_the_papers_range():
    low = [record("main_table", s, {"status_quo": 0.5} | {f"adapter/{k}": 0.6 + 0.001 * s
           for k in claims.ADAPTERS.values()}) for s in range(3)]  # fmt: skip
    high = [record("main_table", s, {"status_quo": 0.5} | {f"adapter/{k}": 0.97 + 0.001 * s
            for k in claims.ADAPTERS.values()}) for s in range(3)]  # fmt: skip
    assert claims._main_table_offline(low)[2] == claims.NOT_REPRODUCED
    assert claims._main_table_offline(high)[2] == claims.REPRODUCED
    assert claims._main_table_offline([])[2] == claims.NOT_TESTABLE


def test_main_table_claim_adds_the_paper_np_on_the_largest_gcide_corpus():
    main_runs = [record("main_table", 0, {"status_quo": 0.5} | {f"adapter/{k}": 0.6
                 for k in claims.ADAPTERS.values()})]  # fmt: skip

    def gcide(n_corpus: int, kind: str, op: float) -> ResultRecord:
        recalls = {"status_quo": 0.28} | {f"adapter/{k}": op for k in claims.ADAPTERS.values()}
        found = record("corpus_size_gcide_np20k", 0, recalls, index={"spec": {"kind": kind}})
        found.data["dataset"] = {"name": "gcide", "n_corpus": n_corpus}
        return found

    scale = [gcide(30_000, "hnsw", 0.29), gcide(60_000, "hnsw", 0.27), gcide(60_000, "flat", 0.9)]
    measured, setting, verdict, _ = claims._main_table_offline(main_runs + scale)
    assert "gcide (60,000 documents, Np = 20,000): OP 0.270 [0.260, 0.280]" in measured
    assert "OP 0.290" not in measured and "0.900" not in measured  # the largest N, HNSW only
    assert "corpus_size_gcide_np20k" in setting and verdict == claims.NOT_REPRODUCED
    reaching = claims._main_table_offline(main_runs + [gcide(60_000, "hnsw", 0.97)])
    assert reaching[2] == claims.REPRODUCED  # the GCIDE point alone reaches the paper's range


def test_the_committed_ledger_is_what_the_committed_results_give(tmp_path: Path, capsys):
    assert main(["--results", str(REPO_ROOT / "results"), "--out", str(tmp_path)]) == 0
    committed = REPO_ROOT / "results" / "claims"
    for name in ("claims.md", "claims.json"):
        assert (tmp_path / name).read_text() == (committed / name).read_text(), (
            f"results/claims/{name} is stale: regenerate it with `drift claims`"
        )
    verdicts = {e["verdict"] for e in json.loads((tmp_path / "claims.json").read_text())}
    assert verdicts <= {claims.REPRODUCED, claims.NOT_REPRODUCED, claims.NOT_TESTABLE}

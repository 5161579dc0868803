"""The oracle_query diagnostic (drift/retrieval/oracle.py, drift/retrieval/strategies.py) where the
answer is known (synthetic vectors)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from drift.core.vectors import l2_normalize
from drift.retrieval.index import IndexSpec, build_index, exact_search
from drift.retrieval.oracle import OracleSettings, optimise_queries
from drift.retrieval.strategies import ceiling_queries, run_strategies
from drift.scoring.evaluate import evaluate

pytest.importorskip("torch")

SPEC = IndexSpec(kind="flat")


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return l2_normalize(rng.standard_normal((n, d)))


def recall10(evaluation, name: str) -> float:
    return evaluation["protocols"]["knn"]["strategies"][name]["metrics"]["recall@10"]["mean"]


def answer(x_old, x_new, q_old, q_new, include):
    _, truth = exact_search(x_new, q_new, 10)
    results = run_strategies(
        old_index=build_index(x_old, SPEC),
        new_index=build_index(x_new, SPEC),
        spec=SPEC,
        q_old=q_old,
        q_new=q_new,
        adapters={},
        k=10,
        old_corpus=x_old,
        knn_truth=truth,
        include=include,
    )
    return results, evaluate(results, knn_truth_ids=truth, qrels=None, ks=(10,), n_boot=10)


def test_no_drift_scores_one_and_records_its_settings():
    rng = np.random.default_rng(0)
    x, q = unit(rng, 1500, 24), unit(rng, 60, 24)
    results, evaluation = answer(x, x, q, q, ["ceiling", "oracle_query"])
    assert recall10(evaluation, "oracle_query") == 1.0
    assert recall10(evaluation, "ceiling") < 1.0  # the start it improves on
    params = results["oracle_query"].params["oracle"]
    assert params["settings"] == dataclasses.asdict(OracleSettings())
    assert params["exact_recall"] == {"recall_mean": 1.0, "share_full": 1.0}
    assert "ground truth" in results["oracle_query"].notes
    assert results["oracle_query"].cost == {}  # a diagnostic: no deployable cost
    assert results["oracle_query"].timings["optimise_seconds"] > 0


def test_under_drift_it_beats_the_ceiling_and_grows_its_shortlist():
    rng = np.random.default_rng(1)
    x_old = unit(rng, 2000, 32)
    x_new = l2_normalize(x_old @ rng.standard_normal((32, 32)) + 0.3 * unit(rng, 2000, 32))
    q_new = unit(rng, 80, 32)
    _, truth = exact_search(x_new, q_new, 10)
    start = ceiling_queries(x_old, truth)
    _, from_start = exact_search(x_old, start, 10)

    def rec(ids: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth, strict=True)]))

    queries, info = optimise_queries(x_old, truth, start)
    _, found = exact_search(x_old, queries, 10)
    assert rec(found) == pytest.approx(info["exact_recall"]["recall_mean"])
    assert rec(found) > rec(from_start) + 0.1
    assert info["rounds"][0]["recall_mean"] == pytest.approx(rec(from_start))
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    # A shortlist of 5 is won by vectors that lose globally: the exact checks grow it round
    # after round, and no query ends below its start.
    tight = OracleSettings(shortlist=5, steps=60, rounds=3)
    queries, info = optimise_queries(x_old, truth, start, tight)
    assert len(info["rounds"]) == 4
    means = [r["recall_mean"] for r in info["rounds"]]
    assert means == sorted(means) and means[-1] > means[0]
    _, found = exact_search(x_old, queries, 10)
    starts = [len(set(a) & set(b)) for a, b in zip(from_start, truth, strict=True)]
    ends = [len(set(a) & set(b)) for a, b in zip(found, truth, strict=True)]
    assert all(e >= s for s, e in zip(starts, ends, strict=True))


def test_it_is_not_applicable_without_the_truth_and_opt_in():
    rng = np.random.default_rng(2)
    x, q = unit(rng, 100, 8), unit(rng, 5, 8)
    index = build_index(x, SPEC)
    results = run_strategies(
        old_index=index,
        new_index=index,
        spec=SPEC,
        q_old=q,
        q_new=q,
        adapters={},
        k=10,
        include=["oracle_query"],
    )
    assert not results["oracle_query"].applicable and "needs" in results["oracle_query"].reason
    root = yaml.safe_load((Path(__file__).parents[1] / "conf" / "config.yaml").read_text())
    assert "oracle_query" not in root["eval"]["strategies"]  # a run names it to pay for it

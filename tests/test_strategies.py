"""drift.retrieval.strategies and drift.scoring.evaluate on a synthetic drift (no model involved).

The synthetic pair: "new" vectors are random unit vectors; "old" vectors are a noisy rotation of
them (same dimension) or a noisy projection to fewer dimensions, so the old model is a degraded
view of the new one and the strategies' order is known in advance.
"""

from __future__ import annotations

import numpy as np
import pytest

from drift.adapters.base import Adapter
from drift.core.errors import ConfigError, VectorError
from drift.core.rankings import StrategyResult
from drift.core.vectors import l2_normalize
from drift.retrieval.index import IndexSpec, build_index, exact_search
from drift.retrieval.strategies import rrf_fuse, run_strategies
from drift.scoring.evaluate import evaluate, format_table

N, NQ, D_NEW, K = 400, 60, 16, 10
FLAT = IndexSpec(kind="flat", device="cpu")


class ScaledIdentity(Adapter):
    """Test-only adapter: the new query times a positive constant (ranks like the identity)."""

    kind = "test_scaled_identity"

    def _fit(self, x_new, x_old, x_new_val, x_old_val, seed) -> None:
        pass

    def _transform(self, x_new: np.ndarray) -> np.ndarray:
        return 2.0 * x_new

    def params(self) -> dict[str, np.ndarray]:
        return {}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        pass


def synthetic_pair(d_old: int, noise: float, seed: int = 0):
    """(corpus_new, corpus_old, queries_new, queries_old): old = noisy linear view of new."""
    rng = np.random.default_rng(seed)
    mix = np.linalg.qr(rng.standard_normal((D_NEW, D_NEW)))[0][:, :d_old]
    new = l2_normalize(rng.standard_normal((N + NQ, D_NEW)).astype(np.float32))
    old = l2_normalize(new @ mix + noise * rng.standard_normal((N + NQ, d_old)))
    return new[:N], old[:N], new[N:], old[N:]


def run(d_old: int, noise: float, adapters=None, *, ground_truth=True, include=None):
    """All strategies on a synthetic pair, k = 100; returns (results, exact new-model top-100)."""
    x_new, x_old, q_new, q_old = synthetic_pair(d_old, noise)
    # The truth by brute force in numpy, not by the faiss search the strategies use: a full
    # re-index scored against itself would be perfect whatever faiss returned.
    truth = np.argsort(-(q_new @ x_new.T), axis=1, kind="stable")[:, :100]
    results = run_strategies(
        old_index=build_index(x_old, FLAT),
        new_index=build_index(x_new, FLAT),
        spec=FLAT,
        q_old=q_old,
        q_new=q_new,
        adapters=adapters or {},
        k=100,
        old_corpus=x_old if ground_truth else None,
        knn_truth=truth if ground_truth else None,
        include=include,
    )
    return results, truth


def recall10(evaluation, name: str) -> float:
    return evaluation["protocols"]["knn"]["strategies"][name]["metrics"]["recall@10"]["mean"]


def test_full_reindex_with_a_flat_index_is_perfect_under_knn():
    results, truth = run(d_old=D_NEW, noise=0.3)
    evaluation = evaluate(results, knn_truth_ids=truth, n_boot=50)
    metrics = evaluation["protocols"]["knn"]["strategies"]["full_reindex"]["metrics"]
    assert all(
        metrics[f"{m}@{k}"]["mean"] == 1.0 for m in ("recall", "mrr", "ndcg") for k in (1, 10, 100)
    )


def test_misaligned_reports_not_applicable_when_dims_differ():
    results, _ = run(d_old=8, noise=0.1)
    assert not results["misaligned"].applicable
    assert results["misaligned"].ids is None
    assert "16-d" in results["misaligned"].reason and "8-d" in results["misaligned"].reason


def test_identity_like_adapter_equals_misaligned():
    adapter = ScaledIdentity().fit(np.eye(D_NEW, dtype=np.float32), np.eye(D_NEW, dtype=np.float32))
    results, _ = run(d_old=D_NEW, noise=0.3, adapters={"scaled": adapter})
    got = results["adapter/scaled"]
    np.testing.assert_array_equal(got.ids, results["misaligned"].ids)
    assert {"adapter_seconds", "adapter_us_per_query", "search_seconds"} <= set(got.timings)
    assert got.timings["us_per_query"] >= got.timings["search_us_per_query"]


def test_adapter_into_the_wrong_dimension_is_refused():
    adapter = ScaledIdentity().fit(np.eye(D_NEW, dtype=np.float32), np.eye(D_NEW, dtype=np.float32))
    with pytest.raises(VectorError, match="maps into 16-d but the old index is 8-d"):
        run(d_old=8, noise=0.1, adapters={"scaled": adapter})


def test_ceiling_beats_status_quo_on_a_planted_drift():
    results, truth = run(d_old=8, noise=0.5)
    evaluation = evaluate(results, knn_truth_ids=truth, n_boot=50)
    assert recall10(evaluation, "ceiling") > recall10(evaluation, "status_quo") + 0.05
    assert "ground truth" in results["ceiling"].notes


def test_ceiling_needs_the_truth_and_include_filters():
    adapter = ScaledIdentity().fit(np.eye(D_NEW, dtype=np.float32), np.eye(D_NEW, dtype=np.float32))
    wanted = ["status_quo", "adapter", "ceiling"]
    results, _ = run(D_NEW, 0.3, {"a": adapter, "b": adapter}, ground_truth=False, include=wanted)
    assert list(results) == ["status_quo", "adapter/a", "adapter/b", "ceiling"]
    assert not results["ceiling"].applicable and "needs" in results["ceiling"].reason
    with pytest.raises(ConfigError, match=r"unknown strategies \['dual'\]"):
        run(D_NEW, 0.3, include=["dual"])


def test_rrf_fuse_by_hand():
    scores, ids = rrf_fuse([np.array([[1, 2, 3]]), np.array([[3, 1, 4]])], k=4)
    np.testing.assert_array_equal(ids, [[1, 3, 2, 4]])
    assert scores[0, 0] == pytest.approx(1 / 61 + 1 / 62)
    # padding never enters the fused list; missing places stay -1
    _, ids = rrf_fuse([np.array([[5, -1]]), np.array([[-1, -1]])], k=3)
    np.testing.assert_array_equal(ids, [[5, -1, -1]])


def test_dual_index_returns_a_fused_ranking():
    results, truth = run(d_old=8, noise=0.5)
    dual = results["dual_index"]
    assert dual.ids.shape == (NQ, 100) and (dual.ids >= 0).all()
    assert all(len(set(row)) == 100 for row in dual.ids)
    assert {"search_seconds", "fuse_seconds"} <= set(dual.timings)


def test_evaluate_and_format_table_cover_every_strategy():
    adapter = ScaledIdentity().fit(np.eye(D_NEW, dtype=np.float32), np.eye(D_NEW, dtype=np.float32))
    results, truth = run(d_old=D_NEW, noise=0.5, adapters={"scaled": adapter})
    results["misaligned"] = StrategyResult.not_applicable("misaligned", "dims differ (test)")
    # Synthetic labels: the first 3 true neighbours of each query are relevant; query 0 has none.
    qrels = [{int(d): 1 for d in row[:3]} for row in truth]
    qrels[0] = {}
    evaluation = evaluate(results, knn_truth_ids=truth, qrels=qrels, ks=(1, 10, 100), n_boot=50)

    assert evaluation["not_applicable"] == {"misaligned": "dims differ (test)"}
    knn, graded = evaluation["protocols"]["knn"], evaluation["protocols"]["qrels"]
    assert graded["n_queries"] == NQ and graded["n_queries_effective"]["ndcg@10"] == NQ - 1
    assert graded["strategies"]["full_reindex"]["arr"]["arr_ndcg@10"]["mean"] == pytest.approx(1.0)
    sq = knn["strategies"]["status_quo"]
    assert sq["arr"]["arr_recall@10"]["mean"] == sq["metrics"]["recall@10"]["mean"]
    for protocol in ("knn", "qrels"):
        table = format_table(evaluation, protocol)
        rows = [
            line for line in table.splitlines() if line.startswith("| ") and "Strategy" not in line
        ]
        assert [row.split(" | ")[0][2:] for row in rows] == list(results)
        assert "| misaligned | n/a |" in table and "dims differ (test)" in table
        assert "ARR (" in table and "us/query" in table


def test_exact_search_equals_brute_force_numpy():
    """The kNN ground truth of every run (faiss exact inner product) against numpy's argsort."""
    x_new, _, q_new, _ = synthetic_pair(D_NEW, 0.3)
    scores, ids = exact_search(x_new, q_new, 50, device="cpu")
    similarity = q_new @ x_new.T
    expected = np.argsort(-similarity, axis=1, kind="stable")[:, :50]
    assert (ids == expected).all()
    np.testing.assert_allclose(scores, np.take_along_axis(similarity, expected, 1), atol=1e-5)

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
from drift.scoring.metrics import bootstrap_ratio_ci

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


def answers(ids: list[list[int]], cost: dict | None = None) -> StrategyResult:
    return StrategyResult(
        "s", True, ids=np.array(ids), timings={"us_per_query": 1.0}, cost=cost or {}
    )


def test_knn_reports_the_ratio_to_the_full_reindex_beside_the_arr():
    """An approximate full re-index finds 8, 9, 8 and 7 of each query's true 10; a strategy finds
    4, 2, 5 and 3. ARR (the paper's) stays the strategy's own recall, 0.35; the ratio to the
    re-index over the same queries is 14 / 32, with the paired bootstrap interval of the ratio."""
    truth = np.tile(np.arange(10), (4, 1))
    miss = list(range(20, 30))

    def found(counts: list[int]) -> list[list[int]]:
        return [list(range(c)) + miss[: 10 - c] for c in counts]

    results = {"full_reindex": answers(found([8, 9, 8, 7])), "s": answers(found([4, 2, 5, 3]))}
    evaluation = evaluate(results, knn_truth_ids=truth, ks=(10,), n_boot=200, seed=3)
    knn = evaluation["protocols"]["knn"]
    row = knn["strategies"]["s"]
    assert row["arr"]["arr_recall@10"]["mean"] == pytest.approx(0.35)
    ratio = row["vs_reindex"]["vs_reindex_recall@10"]
    assert ratio["mean"] == pytest.approx(14 / 32)
    num, den = np.array([0.4, 0.2, 0.5, 0.3]), np.array([0.8, 0.9, 0.8, 0.7])
    low, high = bootstrap_ratio_ci(num, den, n_boot=200, seed=3)
    assert (ratio["ci_low"], ratio["ci_high"]) == pytest.approx((low, high))
    assert "full_reindex mean" in knn["vs_reindex_definition"]
    table = format_table(evaluation, "knn")
    assert "| ARR (R@10) | R@10 / re-index |" in table
    assert "| 0.350 [" in table and f"| {14 / 32:.3f} [{low:.3f}, {high:.3f}] |" in table
    by_labels = evaluate(results, qrels=[{0: 1}] * 4, ks=(10,), n_boot=20)
    assert "vs_reindex" not in by_labels["protocols"]["qrels"]["strategies"]["s"]  # = the ARR
    assert "re-index" not in format_table(by_labels, "qrels")


def test_identical_ids_leave_rankings_and_truth():
    """Query 0 is corpus row 5 under another name (mteb's ignore_identical_ids): its own row
    tops the new model's exact ranking. Dropped from truth and rankings, the full re-index still
    scores 1 and a strategy that never returns row 5 is not charged for it; under qrels the
    labelled row 0 moves up to rank 1."""
    truth = [[5, 0, 1], [3, 4, 6]]
    results = {"full_reindex": answers(truth), "s": answers([[0, 1, 2], [3, 4, 6]])}
    qrels = [{0: 1}, {3: 1}]

    def scored(identical):
        evaluation = evaluate(
            results,
            knn_truth_ids=np.array(truth),
            qrels=qrels,
            ks=(3,),
            n_boot=20,
            identical_rows=identical,
        )
        means = {
            (protocol, name, metric): summary["mean"]
            for protocol, block in evaluation["protocols"].items()
            for name, row in block["strategies"].items()
            for metric, summary in row["metrics"].items()
        }
        return evaluation, means

    plain, before = scored(None)
    dropped, after = scored(np.array([5, -1]))
    assert before[("knn", "s", "recall@3")] == pytest.approx((2 / 3 + 1) / 2)
    assert after[("knn", "s", "recall@3")] == 1.0 and after[("knn", "full_reindex", "mrr@3")] == 1
    assert before[("qrels", "full_reindex", "mrr@3")] == 0.75
    assert after[("qrels", "full_reindex", "mrr@3")] == 1.0
    assert plain["ignore_identical_ids"] is False and "n_queries_with_identical_id" not in plain
    assert dropped["ignore_identical_ids"] is True
    assert dropped["n_queries_with_identical_id"] == 1
    assert "ignore_identical_ids" in format_table(dropped, "knn", k=3)


def test_unjudged_convention_is_applied_and_recorded():
    """Query 1 has no relevant document: left out (exclude) or scored 0 (zero), and said so."""
    results = {"full_reindex": answers([[0, 1], [0, 1], [1, 0]])}
    qrels = [{0: 1}, {}, {0: 1}]
    for unjudged, mean, n in (("exclude", 0.75, 2), ("zero", 0.5, 3)):
        evaluation = evaluate(results, qrels=qrels, ks=(2,), n_boot=20, unjudged=unjudged)
        block = evaluation["protocols"]["qrels"]
        summary = block["strategies"]["full_reindex"]["metrics"]["mrr@2"]
        assert (summary["mean"], summary["n"]) == (pytest.approx(mean), n)
        assert block["n_queries_unjudged"] == 1 and block["n_queries_effective"]["mrr@2"] == n
        assert evaluation["unjudged"] == unjudged
        table = format_table(evaluation, "qrels", k=2)
        assert "3 queries, 2 with a relevant document; the other 1 " in table
        assert f"unjudged={unjudged}: " in table
    with pytest.raises(ConfigError, match="eval.unjudged must be one of"):
        evaluate(results, qrels=qrels, ks=(2,), n_boot=20, unjudged="drop")


def test_encoded_column_says_what_the_encodes_are():
    """With pairs covering the whole corpus, re-rank over the union holds every document from the
    start: the column says 0 on demand, not "on demand"."""
    one = [[0, 1]]
    results = {
        "full_reindex": answers(one, {"new_doc_encodes": 1200, "share_encoded": 1.0}),
        "status_quo": answers(one, {"new_doc_encodes": 0, "share_encoded": 0.0}),
        "adapter/op": answers(one, {"new_doc_encodes": 1200, "share_encoded": 1.0}),
        "rerank/union@50": answers(
            one, {"new_doc_encodes": 1200, "share_encoded": 1.0, "on_demand_encodes": 0}
        ),
        "rerank/status_quo@50": answers(
            one, {"new_doc_encodes": 1198, "share_encoded": 1198 / 1200, "on_demand_encodes": 1198}
        ),
        "backfill/adapter@0.25": answers(
            one, {"new_doc_encodes": 420, "share_encoded": 0.35, "migrated": 300}
        ),
        "ceiling": answers(one),
    }
    table = format_table(
        evaluate(results, knn_truth_ids=np.array(one), ks=(2,), n_boot=5), "knn", 2
    )
    rows = [line.split(" | ") for line in table.splitlines()[4:] if line.startswith("| ")]
    cells = {row[0][2:]: row[-1][:-2] for row in rows}
    assert cells == {
        "full_reindex": "100.0% (1,200: the corpus)",
        "status_quo": "0.0% (0)",
        "adapter/op": "100.0% (1,200: the adapter's pairs)",
        "rerank/union@50": "100.0% (1,200: 0 on demand, 1,200 the adapter's pairs)",
        "rerank/status_quo@50": "99.8% (1,198: 1,198 on demand)",
        "backfill/adapter@0.25": "35.0% (420: 300 migrated, 120 the adapter's pairs)",
        "ceiling": "n/a",
    }

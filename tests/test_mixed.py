"""drift.retrieval.mixed (rerank, fusion, backfill) on synthetic vectors with exact indexes.

The pair: "new" vectors are random unit vectors, "old" vectors a noisy projection of them, so the
old model is a degraded view of the new one. The identities the issue asks for are exact here
because every index is flat (exact) search.
"""

from __future__ import annotations

import numpy as np
import pytest

from drift.adapters import build_adapter
from drift.core.errors import ConfigError
from drift.core.vectors import l2_normalize
from drift.retrieval.index import IndexCache, IndexSpec, build_index, search
from drift.retrieval.mixed.backfill import (
    BackfillSetting,
    Calibration,
    backfill,
    backfill_order,
    fit_calibration,
    merge_lists,
    search_unmigrated,
)
from drift.retrieval.mixed.fusion import fusion
from drift.retrieval.mixed.plan import paper_strategy_costs, run_mixed_strategies
from drift.retrieval.mixed.rerank import DocumentVectors, rerank, union_candidates

N, NQ, D_NEW, D_OLD, K = 300, 40, 24, 16, 10
FLAT = IndexSpec(kind="flat", device="cpu")


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((D_NEW, D_OLD)).astype(np.float32)
    new = l2_normalize(rng.standard_normal((N + NQ, D_NEW)).astype(np.float32))
    old = l2_normalize(new @ mix + 0.8 * rng.standard_normal((N + NQ, D_OLD)).astype(np.float32))
    adapter = build_adapter("procrustes").fit(new[:100], old[:100])
    return {
        "x_new": new[:N],
        "x_old": old[:N],
        "q_new": new[N:],
        "q_old": old[N:],
        "old_index": build_index(old[:N], FLAT),
        "new_index": build_index(new[:N], FLAT),
        "adapter": adapter,
    }


def full_reindex_ids(pair, k=K):
    return search(pair["new_index"], pair["q_new"], k, FLAT)[1]


def status_quo_ids(pair, k=K):
    return search(pair["old_index"], pair["q_old"], k, FLAT)[1]


def lookup(pair):
    return lambda rows: pair["x_new"][rows]


def test_rerank_with_depth_at_least_the_corpus_equals_full_reindex(pair):
    candidates = status_quo_ids(pair, N)  # every corpus row is a candidate
    result = rerank(
        "rerank", candidates, candidates, pair["q_new"], DocumentVectors(lookup(pair), N), K
    )
    np.testing.assert_array_equal(result.ids, full_reindex_ids(pair))
    assert result.cost["new_doc_encodes"] == N and result.cost["share_encoded"] == 1.0


def test_rerank_counts_each_document_once_and_appends_the_fallback(pair):
    candidates = np.array([[3, 1, -1], [1, 2, 5]])
    fallback = np.array([[3, 1, 7, 8], [1, 2, 5, 9]])
    documents = DocumentVectors(lookup(pair), N, already_encoded=np.array([5]))
    result = rerank("r", candidates, fallback, pair["q_new"][:2], documents, 4)
    # rows 3, 1 (query 0) then 2 (query 1); 1 is reused and 5 was already held
    assert result.cost["on_demand_encodes"] == 3
    assert result.cost["new_doc_encodes"] == 4  # including the row held before
    assert result.cost["cold_encodes_per_query"] == 1.5
    assert set(result.ids[0, :2]) == {1, 3} and list(result.ids[0, 2:]) == [7, 8]
    scores = pair["x_new"][[1, 3]] @ pair["q_new"][0]
    assert result.ids[0, 0] == [1, 3][int(np.argmax(scores))]


def test_fusion_with_adapter_weight_zero_equals_status_quo(pair):
    mapped = pair["adapter"].transform(pair["q_new"])
    sq = status_quo_ids(pair, 50)
    ad = search(pair["old_index"], mapped, 50, FLAT)[1]
    for normalisation in ("zscore", "minmax", "none", "rrf"):
        result = fusion(
            "f",
            sq,
            ad,
            pair["q_old"],
            mapped,
            pair["x_old"],
            weight=0.0,
            normalisation=normalisation,
            k=K,
        )
        np.testing.assert_array_equal(result.ids, status_quo_ids(pair), err_msg=normalisation)


def test_fusion_with_adapter_weight_one_equals_adapter_ranking(pair):
    mapped = pair["adapter"].transform(pair["q_new"])
    sq = status_quo_ids(pair, 50)
    ad = search(pair["old_index"], mapped, 50, FLAT)[1]
    result = fusion(
        "f", sq, ad, pair["q_old"], mapped, pair["x_old"], weight=1.0, normalisation="zscore", k=K
    )
    np.testing.assert_array_equal(result.ids, ad[:, :K])


def test_fusion_rejects_bad_settings(pair):
    ids = status_quo_ids(pair)
    args = ("f", ids, ids, pair["q_old"], pair["q_old"], pair["x_old"])
    with pytest.raises(ConfigError, match="weight"):
        fusion(*args, weight=1.5, normalisation="zscore", k=K)
    with pytest.raises(ConfigError, match="normalisation"):
        fusion(*args, weight=0.5, normalisation="softmax", k=K)


@pytest.mark.parametrize("merge", ["rrf", "zscore", "calibrated"])
@pytest.mark.parametrize("order", ["random", "popularity", "hubness"])
def test_backfill_at_the_ends(pair, tmp_path, merge, order):
    """f = 1 is the full re-index; f = 0 is the base strategy (status quo or adapter)."""
    cache = IndexCache(tmp_path)
    mapped = pair["adapter"].transform(pair["q_new"])
    common = dict(
        old_index=pair["old_index"],
        q_new=pair["q_new"],
        x_new=pair["x_new"],
        x_old=pair["x_old"],
        spec=FLAT,
        index_cache=cache,
        k=K,
        seed=0,
    )
    full = backfill(
        BackfillSetting(1.0, order, merge, "status_quo"), base_queries=pair["q_old"], **common
    )
    np.testing.assert_array_equal(full.ids, full_reindex_ids(pair))
    assert full.cost["share_encoded"] == 1.0
    none = backfill(
        BackfillSetting(0.0, order, merge, "status_quo"), base_queries=pair["q_old"], **common
    )
    np.testing.assert_array_equal(none.ids, status_quo_ids(pair))
    assert none.cost["new_doc_encodes"] == 0
    via_adapter = backfill(
        BackfillSetting(0.0, order, merge, "procrustes"),
        base_queries=mapped,
        pair_rows=np.arange(100),
        **common,
    )
    np.testing.assert_array_equal(via_adapter.ids, search(pair["old_index"], mapped, K, FLAT)[1])
    assert via_adapter.cost["new_doc_encodes"] == 100  # the adapter's pairs


def test_backfill_halfway_mixes_both_indexes(pair, tmp_path):
    result = backfill(
        BackfillSetting(0.5, "random", "calibrated", "status_quo"),
        old_index=pair["old_index"],
        base_queries=pair["q_old"],
        q_new=pair["q_new"],
        x_new=pair["x_new"],
        x_old=pair["x_old"],
        spec=FLAT,
        index_cache=IndexCache(tmp_path),
        k=K,
        seed=0,
    )
    migrated = set(backfill_order("random", N, seed=0)[: N // 2].tolist())
    served = result.ids[result.ids >= 0]
    assert result.cost["new_doc_encodes"] == N // 2
    assert any(r in migrated for r in served) and any(r not in migrated for r in served)
    for row in result.ids:  # no row twice
        assert len(set(row[row >= 0].tolist())) == (row >= 0).sum()


def test_backfill_order_popularity_follows_past_traffic():
    past = np.array([[4, 2, -1], [4, 1, 2], [4, 0, 3]])
    order = backfill_order("popularity", 6, seed=0, past_ids=past)
    assert order[0] == 4 and order[1] == 2
    assert set(order[2:5].tolist()) == {0, 1, 3} and order[5] == 5
    assert sorted(order.tolist()) == list(range(6))
    with pytest.raises(ConfigError, match="past traffic"):
        backfill_order("popularity", 6, seed=0)
    with pytest.raises(ConfigError, match="unknown backfill order"):
        backfill_order("alphabetical", 6, seed=0)


def test_fit_calibration_recovers_a_planted_affine_map():
    rng = np.random.default_rng(1)
    x_new = l2_normalize(rng.standard_normal((50, 8)).astype(np.float32))
    q_new = l2_normalize(rng.standard_normal((5, 8)).astype(np.float32))
    ids = np.stack([rng.permutation(50)[:10] for _ in range(5)])
    true_new = np.einsum("qkd,qd->qk", x_new[ids], q_new)
    old_scores = (true_new - 0.1) / 2.0  # new = 2 * old + 0.1
    migrated = np.ones(50, dtype=bool)
    calibration = fit_calibration(old_scores, ids, q_new, x_new, migrated)
    assert calibration.slope == pytest.approx(2.0, rel=1e-4)
    assert calibration.intercept == pytest.approx(0.1, abs=1e-4)
    assert fit_calibration(old_scores, ids, q_new, x_new, np.zeros(50, dtype=bool)) is None


def test_merge_lists_hand_made():
    new = (np.array([[0.9, 0.5, 0.1]]), np.array([[7, 8, 9]]))
    old = (np.array([[0.4, 0.3]]), np.array([[1, 2]]))
    _, ids = merge_lists(new, old, 5, "zscore")
    assert ids[0].tolist() == [7, 1, 8, 2, 9]  # z-scores 1.22, 1, 0, -1, -1.22
    _, ids = merge_lists(new, old, 5, "calibrated", Calibration(2.0, 0.0, 2))
    assert ids[0].tolist() == [7, 1, 2, 8, 9]  # old scores become 0.8 and 0.6
    _, ids = merge_lists(new, old, 5, "rrf")
    assert ids[0].tolist() == [7, 1, 8, 2, 9]  # equal ranks: the new list first


def test_search_unmigrated_skips_migrated_rows(pair):
    migrated = np.zeros(N, dtype=bool)
    migrated[status_quo_ids(pair, 5).ravel()] = True  # each query's own top 5, and more
    _, ids = search_unmigrated(pair["old_index"], pair["q_old"], migrated, K, FLAT)
    assert (ids >= 0).all() and not migrated[ids].any()
    expected = [row[~migrated[row]][:K] for row in status_quo_ids(pair, N)]
    np.testing.assert_array_equal(ids, np.stack(expected))


@pytest.mark.parametrize("share", [0.25, 0.75, 0.99])
def test_flat_search_unmigrated_matches_the_selector_search(pair, share):
    """The flat index's deeper-then-filtered search returns what faiss's ID-selector search
    returns, also when each query's own top rows are migrated first (a popularity order) and
    some queries must search several times deeper."""
    rng = np.random.default_rng(1)
    migrated = rng.random(N) < share
    migrated[status_quo_ids(pair, 3).ravel()] = True
    allowed = np.flatnonzero(~migrated)
    want = search(pair["old_index"], pair["q_old"], K, FLAT, allowed=allowed)
    got = search_unmigrated(pair["old_index"], pair["q_old"], migrated, K, FLAT)
    np.testing.assert_array_equal(got[1], want[1])
    found = want[1] >= 0  # past the unmigrated rows: ids -1 (scores: faiss's lowest float, -inf)
    np.testing.assert_allclose(got[0][found], want[0][found], rtol=1e-6)


def test_union_candidates_keeps_first_order_and_drops_duplicates():
    out = union_candidates(np.array([[1, 2, -1]]), np.array([[2, 3, 1]]))
    assert out.tolist() == [[1, 2, 3, -1, -1, -1]]


def test_run_mixed_strategies_names_costs_and_errors(pair, tmp_path):
    settings = {
        "adapter": "procrustes",
        "rerank": {"sources": ["status_quo", "union"], "depths": [20]},
        "fusion": {"normalisations": ["zscore"], "weights": [0.0, 0.5], "depth": 20},
        "backfill": {
            "fractions": [0.5],
            "orders": ["random"],
            "merges": ["rrf"],
            "bases": ["status_quo", "adapter"],
            "folds": 2,
        },
    }
    common = dict(
        old_index=pair["old_index"],
        spec=FLAT,
        index_cache=IndexCache(tmp_path),
        q_old=pair["q_old"],
        q_new=pair["q_new"],
        x_old=pair["x_old"],
        x_new=pair["x_new"],
        adapters={"procrustes": pair["adapter"]},
        k=K,
        seed=0,
        pair_rows=np.arange(100),
    )
    results = run_mixed_strategies(settings, ["rerank", "fusion", "backfill"], **common)
    assert sorted(results) == [
        "backfill/procrustes/random/rrf@0.5",
        "backfill/status_quo/random/rrf@0.5",
        "fusion/zscore@0",
        "fusion/zscore@0.5",
        "rerank/status_quo@20",
        "rerank/union@20",
    ]
    np.testing.assert_array_equal(results["fusion/zscore@0"].ids, status_quo_ids(pair))
    assert results["fusion/zscore@0.5"].cost["new_doc_encodes"] == 100
    union_cost = results["rerank/union@20"].cost
    assert union_cost["new_doc_encodes"] == 100 + union_cost["on_demand_encodes"]
    assert results["rerank/union@20"].params == {
        "family": "rerank",
        "source": "union",
        "depth": 20,
        "adapter": "procrustes",
    }
    for result in results.values():
        assert result.ids.shape == (NQ, K) and result.applicable

    with pytest.raises(ConfigError, match="not among the fitted adapters"):
        run_mixed_strategies({**settings, "adapter": "mlp"}, ["rerank"], **common)
    with pytest.raises(ConfigError, match="unknown rerank source"):
        run_mixed_strategies(
            {**settings, "rerank": {"sources": ["oracle"], "depths": [5]}}, ["rerank"], **common
        )
    with pytest.raises(ConfigError, match="unknown mixed strategies"):
        run_mixed_strategies(settings, ["teleport"], **common)


def test_paper_strategy_costs():
    assert paper_strategy_costs("full_reindex", 1000, 20)["new_doc_encodes"] == 1000
    assert paper_strategy_costs("adapter/procrustes", 1000, 20)["share_encoded"] == 0.02
    assert paper_strategy_costs("status_quo", 1000, 20)["new_doc_encodes"] == 0
    assert paper_strategy_costs("ceiling", 1000, 20) == {}

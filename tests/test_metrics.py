"""drift.scoring.metrics against hand-computed cases (tiny made-up rankings, no model involved)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytrec_eval
from scipy import stats

from drift.core.errors import ConfigError, DataError
from drift.scoring.metrics import (
    bootstrap_ci,
    bootstrap_ratio_ci,
    drop_rows,
    identical_id_rows,
    knn_metrics,
    qrels_metrics,
    score_unjudged,
    summarize,
    summarize_many,
)

L3, L4 = math.log2(3), math.log2(4)  # discounts of ranks 2 and 3


def test_binary_qrels_by_hand():
    ids = np.array([[3, 1, 7]])
    m = qrels_metrics(ids, [{1: 1, 7: 1, 9: 1}], ks=(1, 3))
    assert m["recall@1"][0] == 0.0 and m["mrr@1"][0] == 0.0 and m["ndcg@1"][0] == 0.0
    assert m["recall@3"][0] == pytest.approx(2 / 3)
    assert m["mrr@3"][0] == pytest.approx(1 / 2)
    assert m["ndcg@3"][0] == pytest.approx((1 / L3 + 1 / L4) / (1 + 1 / L3 + 1 / L4))


def test_graded_ndcg_uses_linear_gain_and_the_ideal_order():
    ids = np.array([[2, 5, 0]])
    m = qrels_metrics(ids, [{5: 3, 2: 1, 8: 2}], ks=(3,))
    assert m["ndcg@3"][0] == pytest.approx((1 + 3 / L3) / (3 + 2 / L3 + 1 / L4))
    assert m["recall@3"][0] == pytest.approx(2 / 3)  # grades do not matter to recall
    assert m["mrr@3"][0] == 1.0


def test_zero_grades_are_not_relevant():
    m = qrels_metrics(np.array([[4, 6]]), [{4: 0, 6: 2}], ks=(2,))
    assert m["recall@2"][0] == 1.0 and m["mrr@2"][0] == 0.5


def test_query_without_relevant_document_is_nan_excluded_and_counted():
    ids = np.array([[0, 1], [0, 1]])
    m = qrels_metrics(ids, [{0: 1}, {}], ks=(2,))
    assert m["recall@2"][0] == 1.0 and all(np.isnan(m[k][1]) for k in m)
    s = summarize(m["recall@2"], n_boot=50)
    assert (s["mean"], s["n"], s["n_excluded"]) == (1.0, 1, 1)


def test_unjudged_zero_scores_the_query_0_and_averages_it_in():
    """BEIR's convention: a query whose labels are all 0 scores 0 and counts in the mean."""
    ids = np.array([[0, 1], [0, 1], [1, 0]])
    m = qrels_metrics(ids, [{0: 1}, {1: 0, 0: 0}, {0: 2}], ks=(2,))
    zero = score_unjudged(m, "zero")
    np.testing.assert_array_equal(zero["recall@2"], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(zero["mrr@2"], [1.0, 0.0, 0.5])
    s = summarize(zero["mrr@2"], n_boot=50)
    assert (s["mean"], s["n"], s["n_excluded"]) == (pytest.approx(0.5), 3, 0)
    excluded = summarize(score_unjudged(m, "exclude")["mrr@2"], n_boot=50)
    assert (excluded["mean"], excluded["n"], excluded["n_excluded"]) == (0.75, 2, 1)
    with pytest.raises(ConfigError, match="eval.unjudged must be one of"):
        score_unjudged(m, "skip")


def test_identical_ids_are_dropped_and_the_rest_move_up():
    """mteb's ignore_identical_ids: the query's own document leaves its ranking; the ids after it
    move up a rank and -1 pads the end. Another query's ranking keeps that document."""
    rows = identical_id_rows(["a", "x", "q"], ["x", "a", "b"])
    np.testing.assert_array_equal(rows, [1, 0, -1])
    ids = np.array([[1, 2, 0], [2, 1, 0], [1, 0, 2]])
    np.testing.assert_array_equal(drop_rows(ids, rows), [[2, 0, -1], [2, 1, -1], [1, 0, 2]])
    # The label of query a's document 0 now sits at rank 2, not 3: MRR@2 1/2 instead of 0.
    qrels = [{0: 1}, {1: 1}, {2: 1}]
    assert qrels_metrics(ids, qrels, ks=(2,))["mrr@2"][0] == 0.0
    assert qrels_metrics(drop_rows(ids, rows), qrels, ks=(2,))["mrr@2"][0] == 0.5
    with pytest.raises(DataError, match="2 rows to drop for a ranking of 3 queries"):
        drop_rows(ids, rows[:2])


def test_ties_keep_the_given_order():
    # Same retrieved set, opposite order (as two equal scores might come back): metrics follow
    # the order given, nothing is re-sorted.
    qrels = [{8: 1}, {8: 1}]
    m = qrels_metrics(np.array([[7, 8], [8, 7]]), qrels, ks=(2,))
    np.testing.assert_allclose(m["mrr@2"], [0.5, 1.0])
    np.testing.assert_allclose(m["recall@2"], [1.0, 1.0])


def test_knn_protocol_per_k_by_hand():
    truth = np.array([[0, 1, 2, 3]])
    ids = np.array([[1, 5, 0, 2]])
    m = knn_metrics(ids, truth, ks=(1, 2, 4))
    np.testing.assert_allclose([m[f"recall@{k}"][0] for k in (1, 2, 4)], [0.0, 0.5, 0.75])
    # MRR@k: reciprocal rank of the true nearest neighbour (row 0), here at rank 3.
    np.testing.assert_allclose([m[f"mrr@{k}"][0] for k in (1, 2, 4)], [0.0, 0.0, 1 / 3])
    assert m["ndcg@2"][0] == pytest.approx(1 / (1 + 1 / L3))
    perfect = knn_metrics(truth, truth, ks=(1, 2, 4))
    assert all(v[0] == 1.0 for v in perfect.values())


def test_k_larger_than_the_corpus_with_padding():
    # A corpus of two items, k = 3: both truth and ranking end in -1, which never matches.
    truth = np.array([[0, 1, -1]])
    ids = np.array([[1, 0, -1]])
    m = knn_metrics(ids, truth, ks=(3,))
    assert m["recall@3"][0] == 1.0  # 2 of the 2 true neighbours
    assert m["mrr@3"][0] == 0.5
    assert m["ndcg@3"][0] == pytest.approx(1.0)
    padded = qrels_metrics(np.array([[4, -1, -1]]), [{4: 1, 6: 1}], ks=(3,))
    assert padded["recall@3"][0] == 0.5


def test_rankings_narrower_than_k_are_refused():
    with pytest.raises(DataError, match="has 2 columns but metrics at k=10"):
        knn_metrics(np.zeros((1, 2), dtype=int), np.zeros((1, 10), dtype=int), ks=(1, 10))
    with pytest.raises(DataError, match="qrels cover 2 queries"):
        qrels_metrics(np.zeros((1, 10), dtype=int), [{}, {}], ks=(10,))


def test_bootstrap_ci_contains_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 5000):
        values = rng.binomial(1, 0.6, size=n).astype(float)
        values[:3] = np.nan  # excluded
        low, high = bootstrap_ci(values, n_boot=500, seed=1)
        assert low <= np.nanmean(values) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 4  # ~ 1/sqrt(n): 10x narrower expected
    assert all(math.isnan(x) for x in bootstrap_ci(np.array([np.nan]), n_boot=10))
    assert bootstrap_ci(np.full(20, 0.3), n_boot=10) == pytest.approx((0.3, 0.3))


def test_bootstrap_follows_its_seed():
    """Same seed, same interval; another seed, another one (a cache keyed without the seed, or
    a seed not passed to the generator, fails the second half)."""
    rng = np.random.default_rng(1)
    num = rng.uniform(0, 1, 400)
    assert bootstrap_ci(num, n_boot=300, seed=3) == bootstrap_ci(num, n_boot=300, seed=3)
    assert bootstrap_ci(num, n_boot=300, seed=3) != bootstrap_ci(num, n_boot=300, seed=4)
    den = rng.uniform(0.5, 1, 400)
    ratio = bootstrap_ratio_ci(num, den, n_boot=300, seed=3)
    assert ratio != bootstrap_ratio_ci(num, den, n_boot=300, seed=4)


# -- cross-checks against the reference tools ----------------------------------------------------
def _scipy_interval(data: tuple[np.ndarray, ...], statistic, n_boot: int, seed: int):
    """scipy.stats.bootstrap's percentile interval. It draws its resamples as
    rng.integers(0, n, (n_boot, n)) from the same seeded Generator as drift does, so the two
    intervals agree up to float32 rounding of the per-query values (drift sums in float32)."""
    result = stats.bootstrap(
        data,
        statistic,
        n_resamples=n_boot,
        method="percentile",
        paired=len(data) > 1,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return result.confidence_interval.low, result.confidence_interval.high


@pytest.mark.parametrize("seed", [0, 7])
def test_bootstrap_intervals_equal_scipy(seed: int):
    rng = np.random.default_rng(seed + 100)
    values = rng.binomial(1, 0.4, 250).astype(float)
    values[:4] = np.nan  # excluded before resampling, as scipy sees only the rest
    kept = values[~np.isnan(values)]
    expected = _scipy_interval((kept,), np.mean, n_boot=800, seed=seed)
    assert bootstrap_ci(values, n_boot=800, seed=seed) == pytest.approx(expected, abs=1e-6)

    num, den = rng.random(250), rng.uniform(0.5, 1, 250)

    def ratio(a, b, axis=-1):
        return a.mean(axis=axis) / b.mean(axis=axis)

    expected = _scipy_interval((num, den), ratio, n_boot=800, seed=seed)
    got = bootstrap_ratio_ci(num, den, n_boot=800, seed=seed)
    assert got == pytest.approx(expected, abs=1e-6)
    summaries, ratios = summarize_many(
        {"num": num, "den": den}, reference="den", n_boot=800, seed=seed
    )
    assert (ratios["num"]["ci_low"], ratios["num"]["ci_high"]) == pytest.approx(expected, abs=1e-6)


def _pytrec_scores(ids: np.ndarray, qrels: list[dict[int, int]], k: int) -> dict[str, np.ndarray]:
    """recall@k, MRR@k and nDCG@k by pytrec_eval (BEIR's and MTEB's evaluator), per query. The
    run gives each retrieved row a strictly decreasing score, so pytrec_eval ranks it as given;
    MRR@k is its recip_rank on the run cut to the top k."""
    run = {
        str(q): {str(d): float(len(row) - r) for r, d in enumerate(row[:k]) if d >= 0}
        for q, row in enumerate(ids)
    }
    judged = {str(q): {str(d): int(g) for d, g in labels.items()} for q, labels in enumerate(qrels)}
    measures = {f"recall.{k}", f"ndcg_cut.{k}", "recip_rank"}
    scores = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate(run)
    names = {"recall": f"recall_{k}", "ndcg": f"ndcg_cut_{k}", "mrr": "recip_rank"}
    return {
        ours: np.array([scores[str(q)][theirs] for q in range(len(qrels))])
        for ours, theirs in names.items()
    }


@pytest.mark.parametrize("seed", range(3))
def test_qrels_metrics_equal_pytrec_eval_on_random_graded_rankings(seed: int):
    rng = np.random.default_rng(seed)
    n_queries, n_docs, depth = 60, 80, 30
    ids = np.stack([rng.permutation(n_docs)[:depth] for _ in range(n_queries)])
    for q in range(0, n_queries, 7):  # padding at the end, as faiss returns short lists
        ids[q, rng.integers(1, depth) :] = -1
    qrels = [
        {int(d): int(rng.integers(1, 4)) for d in rng.choice(n_docs, rng.integers(1, 12), False)}
        for _ in range(n_queries)
    ]
    ours = qrels_metrics(ids, qrels, ks=(1, 5, 10, 30))
    for k in (1, 5, 10, 30):
        theirs = _pytrec_scores(ids, qrels, k)
        for metric in ("recall", "mrr", "ndcg"):
            assert ours[f"{metric}@{k}"] == pytest.approx(theirs[metric], abs=1e-12), (metric, k)


@pytest.mark.parametrize("seed", range(2))
def test_unjudged_zero_equals_pytrec_eval_averaged_as_beir(seed: int):
    """Queries whose labels are all 0 (as BEIR's qrels hold some): pytrec_eval scores them 0,
    and BEIR/MTEB average over every query it scores; so does unjudged=zero."""
    rng = np.random.default_rng(seed)
    n_queries, n_docs, depth = 40, 50, 20
    ids = np.stack([rng.permutation(n_docs)[:depth] for _ in range(n_queries)])
    qrels = [
        {int(d): int(rng.integers(1, 3)) for d in rng.choice(n_docs, rng.integers(1, 6), False)}
        for _ in range(n_queries)
    ]
    for q in range(0, n_queries, 5):  # every label of these queries is 0
        qrels[q] = {d: 0 for d in qrels[q]}
    ours = score_unjudged(qrels_metrics(ids, qrels, ks=(10,)), "zero")
    theirs = _pytrec_scores(ids, qrels, 10)
    for metric in ("recall", "mrr", "ndcg"):
        assert ours[f"{metric}@10"] == pytest.approx(theirs[metric], abs=1e-12), metric
        beir_mean = float(np.mean(theirs[metric]))
        assert summarize(ours[f"{metric}@10"], n_boot=10)["mean"] == pytest.approx(beir_mean)
    assert (theirs["ndcg"][::5] == 0).all()  # pytrec_eval's own 0 for those queries


def test_summarize_many_equals_the_one_at_a_time_functions():
    rng = np.random.default_rng(2)
    a, b, ref = rng.random(300), rng.random(300), rng.uniform(0.5, 1, 300)
    a[:5] = b[:5] = ref[:5] = np.nan  # same queries unjudged: one shared bootstrap pass
    odd = rng.random(300)  # judged everywhere: the ratio falls back to its own bootstrap
    summaries, ratios = summarize_many(
        {"a": a, "b": b, "ref": ref, "odd": odd}, reference="ref", n_boot=200, seed=4
    )
    for name, v in {"a": a, "b": b, "odd": odd}.items():
        assert summaries[name] == pytest.approx(summarize(v, n_boot=200, seed=4))
        low, high = bootstrap_ratio_ci(v, ref, n_boot=200, seed=4)
        keep = ~(np.isnan(v) | np.isnan(ref))
        expected = {"mean": v[keep].mean() / ref[keep].mean(), "ci_low": low, "ci_high": high}
        assert ratios[name] == pytest.approx(expected, rel=1e-5)
    assert summaries["odd"]["n_excluded"] == 0 and summaries["a"]["n_excluded"] == 5

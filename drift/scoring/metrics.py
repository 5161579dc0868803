"""Per-query retrieval metrics (Recall@k, MRR@k, nDCG@k) and bootstrap confidence intervals.

Pure numpy: arrays in, arrays out. A ranking is an int array ids[nq, >=k] of corpus row ids in
rank order; -1 marks padding (FAISS pads when k exceeds the corpus) and is never relevant. The
ranking is taken as given: ties in scores keep the order the strategy returned.

Definitions follow pytrec_eval as used by BEIR and MTEB, per query:
- recall@k = |relevant ∩ top-k| / |relevant|   (relevant: relevance > 0)
- MRR@k    = 1 / rank of the first relevant item in the top-k (0 when none is)
- nDCG@k   = DCG@k / IDCG@k with DCG@k = sum_r rel_r / log2(r + 1) (linear gain) and IDCG@k the
             DCG of the query's relevant set sorted by relevance.
A query with no relevant document (no label > 0: BEIR folders hold queries whose labels are all
0, and a corpus subset can drop a query's relevant documents) gets NaN for every metric here;
`score_unjudged` then applies a named convention (config `eval.unjudged`, recorded in the result
file):
- exclude (the default): left as NaN; means and intervals leave the query out, and summaries
  count it (`n_excluded`).
- zero: 0 for every metric, averaged in. This is what BEIR and MTEB report: pytrec_eval scores a
  query whose labels are all 0 as 0, and they average over every query it scores.

MTEB tasks that set `ignore_identical_ids` (ArguAna, QuoraRetrieval, FiQA2018, ...) hold queries
that are also corpus documents under the same id; mteb drops such a document from the query's
ranking before scoring. `drop_rows` does the same, given `identical_id_rows`.

Two protocols say what "relevant" means:
- knn (the paper's): relevance comes from the exact top-k neighbours of the new-model query over
  the new-model corpus vectors (what a full re-embedding would return), computed per k.
  recall@k = |retrieved top-k ∩ true top-k| / |true top-k| (= / k when the corpus holds at least
  k items) and nDCG@k uses the true top-k as binary relevance. MRR@k is the reciprocal rank of the
  query's single true nearest neighbour (the exact top-1) within the retrieved top-k. This is the
  usual reading of MRR against kNN ground truth (one gold item per query), under which exact
  re-indexing scores 1 by construction, as the paper's ARR presumes. Taking the whole true top-k
  as the relevant set instead would make MRR@10 saturate: any of ten items at rank 1 scores 1.
- qrels (MTEB-style labels): graded relevance per (query, corpus row); recall and MRR use rel > 0,
  nDCG uses the grades.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from drift.core.errors import ConfigError, DataError

KS: tuple[int, ...] = (1, 10, 100)
# Conventions for a query without a relevant document (module docstring), as result files say them.
UNJUDGED = {
    "exclude": "queries without a relevant document are left out of means and CIs",
    "zero": "queries without a relevant document score 0 and are averaged in (as BEIR and MTEB)",
}

# Relevance labels per query: corpus row id -> relevance grade (> 0 is relevant).
Qrels = Sequence[Mapping[int, float]]


def knn_metrics(
    ids: np.ndarray, truth_ids: np.ndarray, ks: Sequence[int] = KS
) -> dict[str, np.ndarray]:
    """Per-query metrics under the kNN protocol (see module docstring).

    Args:
        ids: retrieved row ids [nq, >= max(ks)], -1 for padding.
        truth_ids: exact new-model top-K row ids [nq, K >= max(ks)], -1 for padding.
    Returns:
        {"recall@k", "mrr@k", "ndcg@k" for k in ks: float array [nq]}.
    """
    ids, truth_ids = _check_ranking(ids, ks), _check_ranking(truth_ids, ks, name="kNN truth")
    if truth_ids.shape[0] != ids.shape[0]:
        raise DataError(f"kNN truth has {truth_ids.shape[0]} rows for {ids.shape[0]} queries")
    top = max(ks)
    truth = truth_ids[:, :top]
    # 1-based rank of each retrieved id in the exact ranking (0: not among the true top-K), so
    # one lookup serves every k: the item at rank r is relevant at cut-off k iff true rank <= k.
    rows = np.repeat(np.arange(truth.shape[0]), top)
    true_rank = _lookup(
        ids[:, :top], rows, truth.ravel(), np.tile(np.arange(1.0, top + 1), len(truth))
    )
    valid = truth >= 0
    out: dict[str, np.ndarray] = {}
    for k in ks:
        n_rel = valid[:, :k].sum(axis=1)
        gains = ((true_rank[:, :k] > 0) & (true_rank[:, :k] <= k)).astype(np.float64)
        ideal = (np.arange(k) < n_rel[:, None]).astype(np.float64)
        out[f"recall@{k}"] = recall(gains, ideal, n_rel)
        out[f"mrr@{k}"] = mrr((true_rank[:, :k] == 1).astype(np.float64), ideal, valid[:, 0])
        out[f"ndcg@{k}"] = ndcg(gains, ideal, n_rel)
    return out


def qrels_metrics(ids: np.ndarray, qrels: Qrels, ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """Per-query metrics against relevance labels; `qrels[i]` labels query row i."""
    ids = _check_ranking(ids, ks)
    if len(qrels) != ids.shape[0]:
        raise DataError(f"qrels cover {len(qrels)} queries, the ranking has {ids.shape[0]}")
    judged = _judge(ids, *_graded_labels(qrels), max(ks))
    out: dict[str, np.ndarray] = {}
    for k in ks:
        cut = _cut(judged, k)
        out[f"recall@{k}"] = recall(*cut)
        out[f"mrr@{k}"] = mrr(*cut)
        out[f"ndcg@{k}"] = ndcg(*cut)
    return out


def score_unjudged(per_query: dict[str, np.ndarray], unjudged: str) -> dict[str, np.ndarray]:
    """Per-query metrics as `knn_metrics` and `qrels_metrics` return them (NaN: no relevant
    document) under the `unjudged` convention: unchanged for "exclude", NaN -> 0 for "zero". NaN
    arises nowhere else: every formula below is finite for a query with a relevant document."""
    unjudged_definition(unjudged)
    if unjudged == "exclude":
        return per_query
    return {name: np.nan_to_num(values, nan=0.0) for name, values in per_query.items()}


def unjudged_definition(unjudged: str) -> str:
    """What the `unjudged` convention does, in words; ConfigError for an unknown one."""
    if unjudged not in UNJUDGED:
        raise ConfigError(f"eval.unjudged must be one of {list(UNJUDGED)}, got {unjudged!r}")
    return UNJUDGED[unjudged]


def identical_id_rows(query_ids: Sequence[str], corpus_ids: Sequence[str]) -> np.ndarray:
    """Per query, the corpus row whose id equals the query's id (-1: none), for `drop_rows`."""
    row_of = {doc_id: row for row, doc_id in enumerate(corpus_ids)}
    return np.array([row_of.get(qid, -1) for qid in query_ids], dtype=np.int64)


def drop_rows(ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`ids` [nq, k] with row i's id `rows[i]` removed (-1 in `rows`: nothing), the later ids
    moved up one rank and -1 padding at the end, as mteb's `ignore_identical_ids` leaves a
    ranking."""
    ids = np.asarray(ids, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.shape != (ids.shape[0],):
        raise DataError(f"{rows.size} rows to drop for a ranking of {ids.shape[0]} queries")
    dropped = ids == rows[:, None]  # a -1 in `rows` matches padding only: a no-op
    order = np.argsort(dropped, axis=1, kind="stable")  # kept ids first, in their order
    out = np.take_along_axis(ids, order, axis=1)
    out[np.take_along_axis(dropped, order, axis=1)] = -1
    return out


# -- metric formulas on judged rankings ---------------------------------------------------------
# A judged ranking is (gains [nq, k]: relevance of the item at each rank, 0 if not relevant or
# padding; ideal [nq, k]: the query's relevances sorted descending, zero-padded; n_rel [nq]).


def recall(gains: np.ndarray, ideal: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    hits = (gains > 0).sum(axis=1)
    return _nan_where_unjudged(hits / np.maximum(n_rel, 1), n_rel)


def mrr(gains: np.ndarray, ideal: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    relevant = gains > 0
    first = relevant.argmax(axis=1)
    rr = np.where(relevant.any(axis=1), 1.0 / (first + 1), 0.0)
    return _nan_where_unjudged(rr, n_rel)


def ndcg(gains: np.ndarray, ideal: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    discount = 1.0 / np.log2(np.arange(2, gains.shape[1] + 2))
    idcg = ideal @ discount
    with np.errstate(invalid="ignore", divide="ignore"):
        return _nan_where_unjudged((gains @ discount) / idcg, n_rel)


# -- bootstrap --------------------------------------------------------------------------------
def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over queries (NaN excluded).

    The resamples depend only on (number of queries, n_boot, seed): strategies scored with the
    same seed are resampled on the same queries, i.e. paired.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    means = _bootstrap_means(values[:, None], n_boot, seed)[:, 0]
    return _percentiles(means, alpha)


def bootstrap_ratio_ci(
    num: np.ndarray, den: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Paired percentile bootstrap interval of mean(num) / mean(den) over the same queries
    (queries NaN in either are excluded)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    keep = ~(np.isnan(num) | np.isnan(den))
    if not keep.any():
        return float("nan"), float("nan")
    means = _bootstrap_means(np.stack([num[keep], den[keep]], axis=1), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _percentiles(means[:, 0] / means[:, 1], alpha)


def summarize(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> dict[str, float | int]:
    """{mean, ci_low, ci_high, n (queries counted), n_excluded (NaN: no relevant document)}."""
    return summarize_many({"": values}, n_boot=n_boot, alpha=alpha, seed=seed)[0][""]


def summarize_many(
    per_strategy: Mapping[str, np.ndarray],
    *,
    reference: str | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float | int]], dict[str, dict[str, float]]]:
    """`summarize` for several strategies' per-query values of one metric and, given a reference
    strategy, each mean divided by the reference's mean with a paired CI (as bootstrap_ratio_ci).

    Strategies NaN on the same queries (the usual case: NaN marks a query without a relevant
    document) share one bootstrap pass; the numbers equal those of the one-at-a-time functions.
    Returns (summaries, ratios), each keyed by strategy; ratios is empty without a reference.
    """
    values = {name: np.asarray(v, dtype=np.float64) for name, v in per_strategy.items()}
    groups: dict[bytes, list[str]] = {}
    for name, v in values.items():
        groups.setdefault(np.isnan(v).tobytes(), []).append(name)

    summaries: dict[str, dict[str, float | int]] = {}
    boot: dict[str, np.ndarray] = {}
    for names in groups.values():
        keep = ~np.isnan(values[names[0]])
        columns = np.stack([values[name][keep] for name in names], axis=1)
        means = _bootstrap_means(columns, n_boot, seed) if keep.any() else None
        for j, name in enumerate(names):
            boot[name] = means[:, j] if means is not None else np.full(n_boot, np.nan)
            low, high = _percentiles(boot[name], alpha)
            summaries[name] = {
                "mean": float(columns[:, j].mean()) if keep.any() else float("nan"),
                "ci_low": low,
                "ci_high": high,
                "n": int(keep.sum()),
                "n_excluded": int((~keep).sum()),
            }

    ratios: dict[str, dict[str, float]] = {}
    if reference is None or reference not in values:
        return summaries, ratios
    den = values[reference]
    for name, num in values.items():
        keep = ~(np.isnan(num) | np.isnan(den))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = float(num[keep].mean() / den[keep].mean()) if keep.any() else float("nan")
            if np.array_equal(keep, ~np.isnan(num)) and np.array_equal(keep, ~np.isnan(den)):
                low, high = _percentiles(boot[name] / boot[reference], alpha)
            else:
                low, high = bootstrap_ratio_ci(num, den, n_boot=n_boot, alpha=alpha, seed=seed)
        ratios[name] = {"mean": mean, "ci_low": low, "ci_high": high}
    return summaries, ratios


# -- internals --------------------------------------------------------------------------------
def _check_ranking(ids: np.ndarray, ks: Sequence[int], name: str = "ranking") -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"{name}: expected an integer array [nq, k], got {ids.dtype} {ids.shape}")
    if not ks or min(ks) < 1:
        raise DataError(f"ks must be positive integers, got {list(ks)}")
    if ids.shape[1] < max(ks):
        raise DataError(
            f"{name} has {ids.shape[1]} columns but metrics at k={max(ks)} were asked for; "
            f"retrieve (or compute the truth) with k >= {max(ks)}"
        )
    return ids.astype(np.int64, copy=False)


def _graded_labels(qrels: Qrels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels as flat arrays (query rows, doc ids, gains)."""
    rows = np.repeat(np.arange(len(qrels)), [len(q) for q in qrels])
    docs = np.fromiter((d for q in qrels for d in q), dtype=np.int64, count=rows.size)
    gains = np.fromiter((g for q in qrels for g in q.values()), dtype=np.float64, count=rows.size)
    return rows, docs, gains


def _judge(
    ids: np.ndarray, rows: np.ndarray, docs: np.ndarray, gains: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gains of the first k retrieved ids, ideal gains, number of relevant docs) per query."""
    nq = ids.shape[0]
    keep = (docs >= 0) & (gains > 0)
    rows, docs, gains = rows[keep], docs[keep], gains[keep]
    _, first = np.unique(rows * _stride(ids, docs) + docs, return_index=True)  # dedupe labels
    rows, docs, gains = rows[first], docs[first], gains[first]

    n_rel = np.bincount(rows, minlength=nq)
    order = np.lexsort((-gains, rows))  # by query, then by relevance descending
    starts = np.concatenate([[0], np.cumsum(n_rel)[:-1]])
    rank = np.arange(order.size) - starts[rows[order]]
    top = rank < k
    ideal = np.zeros((nq, k))
    ideal[rows[order][top], rank[top]] = gains[order][top]
    return _lookup(ids[:, :k], rows, docs, gains), ideal, n_rel


def _lookup(ids: np.ndarray, rows: np.ndarray, docs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values[j] where (query row, ids[row, r]) == (rows[j], docs[j]), else 0; vectorised."""
    stride = _stride(ids, docs)
    keys = rows * stride + docs
    order = np.argsort(keys, kind="stable")
    keys = np.append(keys[order], np.iinfo(np.int64).max)  # a sentinel keeps positions in range
    values = np.append(values[order], 0.0)
    query_keys = np.arange(ids.shape[0])[:, None] * stride + ids
    pos = np.searchsorted(keys, query_keys)
    found = (keys[pos] == query_keys) & (ids >= 0)
    return np.where(found, values[pos], 0.0)


def _stride(ids: np.ndarray, docs: np.ndarray) -> int:
    # One integer key per (query, doc): row * stride + doc, with room for every id.
    return int(max(ids.max(initial=-1), docs.max(initial=-1))) + 2


def _cut(
    judged: tuple[np.ndarray, np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gains, ideal, n_rel = judged
    return gains[:, :k], ideal[:, :k], n_rel


def _nan_where_unjudged(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    return np.where(n_rel > 0, values, np.nan)


def _bootstrap_means(columns: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of `columns` [n, c] over n_boot resamples of its rows (the same rows per column).

    A resample is a row of counts (how often each query was drawn), so its means are one matrix
    product. The counts depend only on (n, n_boot, seed), which every strategy and metric of an
    evaluation shares, so they are drawn once and cached while they fit in memory.
    """
    n = columns.shape[0]
    values = columns.astype(np.float32)
    if n * n_boot <= _CACHED_COUNTS_MAX:
        return (_cached_counts(n, n_boot, seed) @ values).astype(np.float64) / n
    means = np.empty((n_boot, columns.shape[1]))
    for start, counts in _count_chunks(n, n_boot, seed):
        means[start : start + counts.shape[0]] = (counts @ values).astype(np.float64) / n
    return means


_CACHED_COUNTS_MAX = 16_000_000  # float32 entries (64 MB): 1000 resamples of 16k queries


@functools.lru_cache(maxsize=2)
def _cached_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    counts = np.concatenate([chunk for _, chunk in _count_chunks(n, n_boot, seed)])
    counts.flags.writeable = False
    return counts


def _count_chunks(n: int, n_boot: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first resample, counts [b, n] float32) chunks of n_boot seeded resamples of n rows."""
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        drawn = rng.integers(0, n, size=(b, n)) + n * np.arange(b)[:, None]
        yield start, np.bincount(drawn.ravel(), minlength=b * n).reshape(b, n).astype(np.float32)


def _percentiles(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)

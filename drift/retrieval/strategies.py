"""Ways to answer queries after an embedding-model upgrade, all scored by the same evaluator.

Each strategy returns ranked corpus row ids [nq, k] (-1 padded) plus timings for the whole query
batch (one faiss call, using faiss's OpenMP threads: a throughput figure, not single-query
latency; drift/serving/latency.py measures that). Row ids are shared: row i of the old and new
corpus vectors is the same item.

- full_reindex:    new queries into a new-model index of the same kind: the oracle (it costs a
                   full re-embedding of the corpus and a rebuilt index).
- status_quo:      old queries into the old index: keep the old model, change nothing.
- misaligned:      new queries straight into the old index (only when the dimensions agree).
- adapter/<name>:  adapter.transform(new queries) into the old index: Drift-Adapter.
- dual_index:      see `dual_index`.
- ceiling:         a diagnostic bound that uses the ground truth; see `ceiling`. Not deployable.
- oracle_query:    a diagnostic: per query, the old-space vector optimised so the old index
                   returns the new model's top 10 (drift/retrieval/oracle.py). Not deployable;
                   opt-in (name it in eval.strategies).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import faiss
import numpy as np

from drift.adapters.base import Adapter
from drift.core.errors import ConfigError, VectorError
from drift.core.rankings import StrategyResult
from drift.core.vectors import check_vectors, l2_normalize
from drift.retrieval.index import IndexSpec, search
from drift.retrieval.oracle import OracleSettings, optimise_queries

# The names `include` (a run's eval.strategies) gives these strategies; "adapter": every adapter.
PAPER_STRATEGIES = (
    "full_reindex",
    "status_quo",
    "misaligned",
    "adapter",
    "dual_index",
    "ceiling",
    "oracle_query",
)
# Reciprocal-rank-fusion constant of Cormack et al. (2009), the usual default.
RRF_K = 60
# The ceiling averages the old vectors of this many ground-truth documents per query.
CEILING_DOCS = 10


def full_reindex(
    new_index: faiss.Index, q_new: np.ndarray, k: int, spec: IndexSpec
) -> StrategyResult:
    return _searched("full_reindex", new_index, q_new, k, spec, notes="oracle")


def status_quo(
    old_index: faiss.Index, q_old: np.ndarray, k: int, spec: IndexSpec
) -> StrategyResult:
    return _searched("status_quo", old_index, q_old, k, spec)


def misaligned(
    old_index: faiss.Index, q_new: np.ndarray, k: int, spec: IndexSpec
) -> StrategyResult:
    if q_new.shape[1] != old_index.d:
        return StrategyResult.not_applicable(
            "misaligned",
            f"new-model queries are {q_new.shape[1]}-d but the old index is {old_index.d}-d",
        )
    return _searched("misaligned", old_index, q_new, k, spec)


def adapter_strategy(
    name: str, adapter: Adapter, old_index: faiss.Index, q_new: np.ndarray, k: int, spec: IndexSpec
) -> StrategyResult:
    """Map new queries with the adapter, then search the old index.

    The mapped queries are not re-normalised: a positive per-query scale changes no inner-product
    ranking (flat, HNSW or IVF), so it would only add time.
    """
    if adapter.d_out != old_index.d:
        raise VectorError(
            f"adapter {name!r} maps into {adapter.d_out}-d but the old index is {old_index.d}-d"
        )
    adapter.transform(q_new[:1])  # warm-up (lazy initialisation), not timed
    mapped, adapter_seconds = timed(lambda: adapter.transform(q_new))
    return _searched(f"adapter/{name}", old_index, mapped, k, spec, adapter_seconds=adapter_seconds)


def dual_index(
    old_index: faiss.Index,
    new_index: faiss.Index,
    q_old: np.ndarray,
    q_new: np.ndarray,
    k: int,
    spec: IndexSpec,
) -> StrategyResult:
    """Serve from both indexes during a migration and fuse the two rankings.

    A dual-index deployment keeps the old index serving while the new one is filled, so items
    not yet re-embedded stay reachable. Measured here with both indexes complete: a query is
    embedded by both models, each index is searched with its own model's query, and the two
    top-k lists are merged by reciprocal rank fusion
    (score = sum over lists of 1 / (RRF_K + rank)); cosine scores of two different models are
    not comparable, so ranks are fused rather than scores. Its cost is a full re-embedding of the
    corpus, twice the index memory, and two query encodings per query (the second encoding is not
    in these timings). Returned scores are RRF scores.
    """
    (_, ids_old), t_old = timed_search(old_index, q_old, k, spec)
    (_, ids_new), t_new = timed_search(new_index, q_new, k, spec)
    (scores, ids), fuse_seconds = timed(lambda: rrf_fuse([ids_new, ids_old], k))
    return StrategyResult(
        name="dual_index",
        applicable=True,
        ids=ids,
        scores=scores,
        timings=stage_timings(len(q_new), search_seconds=t_old + t_new, fuse_seconds=fuse_seconds),
        notes="RRF of new->new and old->old rankings; needs the full re-embedding",
    )


def ceiling(
    old_index: faiss.Index,
    old_corpus: np.ndarray,
    knn_truth: np.ndarray,
    k: int,
    spec: IndexSpec,
) -> StrategyResult:
    """Diagnostic ceiling for query-side maps into the old index (uses the ground truth).

    The query is the normalised mean old-model vector of the query's exact new-model top-10
    documents: the old-space point that a perfect adapter would aim at. It is a reference, not a
    proven bound (a map could in principle beat it): an adapter near it has little left to gain
    from a better map, and the gap between it and full_reindex is what keeping the old corpus
    vectors costs whatever the adapter.
    """
    old_corpus = check_vectors(old_corpus, name="old-model corpus vectors", dim=old_index.d)
    result = _searched("ceiling", old_index, ceiling_queries(old_corpus, knn_truth), k, spec)
    result.notes = "uses the ground truth (mean old vector of the true top-10); not deployable"
    return result


def ceiling_queries(old_corpus: np.ndarray, knn_truth: np.ndarray) -> np.ndarray:
    """The ceiling's query per row of `knn_truth`: the normalised mean old vector of its first
    CEILING_DOCS rows (-1 padding skipped)."""
    truth = np.asarray(knn_truth)[:, :CEILING_DOCS]
    total = np.zeros((truth.shape[0], old_corpus.shape[1]), dtype=np.float32)
    for column in truth.T:  # one column at a time keeps memory at [nq, d]
        total += np.where(column[:, None] >= 0, old_corpus[np.maximum(column, 0)], 0.0)
    return l2_normalize(total)


def oracle_query(
    old_index: faiss.Index,
    old_corpus: np.ndarray,
    knn_truth: np.ndarray,
    k: int,
    spec: IndexSpec,
    settings: OracleSettings | None = None,
) -> StrategyResult:
    """Diagnostic: per query, the old-space vector optimised from the ceiling's start so that
    the old corpus vectors of its true top-10 rank first (drift/retrieval/oracle.py), searched in
    the old index like any query. It uses the ground truth and is not deployable; its settings
    and the exact recall it reached are in `params`, its optimisation time in the timings."""
    old_corpus = check_vectors(old_corpus, name="old-model corpus vectors", dim=old_index.d)
    start = ceiling_queries(old_corpus, knn_truth)
    settings = settings or OracleSettings()
    (queries, info), seconds = timed(
        lambda: optimise_queries(old_corpus, knn_truth, start, settings)
    )
    result = _searched("oracle_query", old_index, queries, k, spec, optimise_seconds=seconds)
    result.notes = (
        "uses the ground truth (a query optimised toward the true top-10); not deployable"
    )
    result.params = {"oracle": info}
    return result


def run_strategies(
    *,
    old_index: faiss.Index,
    new_index: faiss.Index,
    spec: IndexSpec,
    q_old: np.ndarray,
    q_new: np.ndarray,
    adapters: Mapping[str, Adapter],
    k: int,
    old_corpus: np.ndarray | None = None,
    knn_truth: np.ndarray | None = None,
    include: Collection[str] | None = None,
) -> dict[str, StrategyResult]:
    """Run every strategy (or those named in `include`; "adapter" stands for all adapters).

    `old_corpus` and `knn_truth` (exact new-model top-K row ids, K >= 1) are needed only by the
    ceiling and oracle_query, which are reported as not applicable without them.
    """
    q_old = check_vectors(q_old, name="old-model query vectors", dim=old_index.d)
    q_new = check_vectors(q_new, name="new-model query vectors", dim=new_index.d)
    if q_old.shape[0] != q_new.shape[0]:
        raise VectorError(
            f"{q_old.shape[0]} old-model but {q_new.shape[0]} new-model query vectors; "
            "rows must be the same queries"
        )
    plan: dict[str, Callable[[], StrategyResult]] = {
        "full_reindex": lambda: full_reindex(new_index, q_new, k, spec),
        "status_quo": lambda: status_quo(old_index, q_old, k, spec),
        "misaligned": lambda: misaligned(old_index, q_new, k, spec),
        **{
            f"adapter/{name}": _bind_adapter(name, adapter, old_index, q_new, k, spec)
            for name, adapter in adapters.items()
        },
        "dual_index": lambda: dual_index(old_index, new_index, q_old, q_new, k, spec),
        "ceiling": lambda: _if_truth(ceiling, "ceiling", old_index, old_corpus, knn_truth, k, spec),
        "oracle_query": lambda: _if_truth(
            oracle_query, "oracle_query", old_index, old_corpus, knn_truth, k, spec
        ),
    }
    wanted = set(include) if include is not None else None
    unknown = (wanted or set()) - set(plan) - {"adapter"}
    if unknown:
        raise ConfigError(
            f"unknown strategies {sorted(unknown)}; known: {sorted(plan)} and 'adapter' (all)"
        )
    return {
        name: run()
        for name, run in plan.items()
        if wanted is None or name in wanted or (name.startswith("adapter/") and "adapter" in wanted)
    }


def rrf_fuse(
    rankings: list[np.ndarray], k: int, rrf_k: int = RRF_K
) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion of several rankings [nq, *] (-1 padded) into (scores, ids) [nq, k].

    Ties in fused score go to the item with the better best rank, then to the earlier ranking.
    """
    nq = rankings[0].shape[0]
    ids = np.concatenate(rankings, axis=1)
    ranks = np.concatenate([np.broadcast_to(np.arange(r.shape[1]), r.shape) for r in rankings], 1)
    source = np.concatenate([np.full(r.shape, i) for i, r in enumerate(rankings)], axis=1)
    rows = np.broadcast_to(np.arange(nq)[:, None], ids.shape)
    valid = ids >= 0
    rows, ids, ranks, source = rows[valid], ids[valid], ranks[valid], source[valid]

    # One entry per (query, item): sum its contributions, keep its best rank and first source.
    stride = int(ids.max(initial=0)) + 1
    keys, inverse = np.unique(rows * stride + ids, return_inverse=True)
    score = np.bincount(inverse, weights=1.0 / (rrf_k + ranks + 1))
    best_rank = np.full(keys.size, np.iinfo(np.int64).max)
    np.minimum.at(best_rank, inverse, ranks)
    first_source = np.full(keys.size, len(rankings))
    np.minimum.at(first_source, inverse, source)
    row, item = keys // stride, keys % stride

    order = np.lexsort((first_source, best_rank, -score, row))
    row, item, score = row[order], item[order], score[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=nq))[:-1]])
    place = np.arange(row.size) - starts[row]
    top = place < k
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    out_scores = np.zeros((nq, k), dtype=np.float32)
    out_ids[row[top], place[top]] = item[top]
    out_scores[row[top], place[top]] = score[top]
    return out_scores, out_ids


# -- internals --------------------------------------------------------------------------------
def _bind_adapter(name, adapter, old_index, q_new, k, spec) -> Callable[[], StrategyResult]:
    # A function rather than a lambda in the comprehension, so each closure keeps its own adapter.
    return lambda: adapter_strategy(name, adapter, old_index, q_new, k, spec)


def _if_truth(strategy, name, old_index, old_corpus, knn_truth, k, spec) -> StrategyResult:
    """`strategy`'s result, or not applicable without the old corpus vectors or the truth."""
    if old_corpus is None or knn_truth is None:
        missing = "old-model corpus vectors" if old_corpus is None else "the kNN ground truth"
        return StrategyResult.not_applicable(name, f"needs {missing}")
    return strategy(old_index, old_corpus, knn_truth, k, spec)


def _searched(
    name: str,
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    spec: IndexSpec,
    notes: str = "",
    **other_seconds: float,
) -> StrategyResult:
    (scores, ids), search_seconds = timed_search(index, queries, k, spec)
    timings = stage_timings(len(queries), search_seconds=search_seconds, **other_seconds)
    return StrategyResult(name, True, ids=ids, scores=scores, timings=timings, notes=notes)


def timed_search(
    index: faiss.Index, queries: np.ndarray, k: int, spec: IndexSpec
) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    # One untimed query first: the first faiss call of a process starts its thread pool.
    search(index, queries[:1], k, spec)
    return timed(lambda: search(index, queries, k, spec))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def stage_timings(n_queries: int, **seconds: float) -> dict[str, float]:
    """Stage times (search_seconds, adapter_seconds, ...), their per-query cost and the total."""
    per_query = {
        key.replace("_seconds", "_us_per_query"): 1e6 * s / max(n_queries, 1)
        for key, s in seconds.items()
    }
    total = sum(seconds.values())
    return {
        **seconds,
        **per_query,
        "total_seconds": total,
        "us_per_query": 1e6 * total / max(n_queries, 1),
        "n_queries": n_queries,
        "threads": faiss.omp_get_max_threads(),
    }

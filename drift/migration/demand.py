"""Demand-driven migration: the corpus migrates to the new model in the order users ask for it.

Lazy re-rank (drift.retrieval.mixed.rerank, served along a stream by drift.migration.stream)
encodes the old index's candidates of a query on demand and re-scores them, but never uses those
vectors again except to re-score the same candidates: its answers are the same whenever a query
is served. Demand-driven migration writes every vector it encodes into a new-model index, and
each query re-ranks the union of the old index's candidates and that partial index's hits, so
documents encoded for one query can answer the next, and quality rises as the stream goes on.

State along the stream: H, the rows that hold a new-model vector. It starts with the rows paid
for up front: the adapter's pairs when the old-side candidates come through the adapter (sources
`adapter` and `union`), nothing for the status quo's candidates (source `status_quo`). A served
query q (in stream order):

1. C = its old-side candidates (the status quo's, the adapter's or the union's top K in the old
   index: rerank/<source>@K's candidates in the run, reused), then the partial index's top K'
   over H for the new query, those not already in C (K' = `new_depth`).
2. The rows of C not in H are encoded on demand (counted) and written back: added to H, hence to
   the partial index, before the next query.
3. C is re-scored with new-model vectors (new query x new document; ties keep C's order, as
   lazy re-rank does) and the top k is the answer. An answer holds fewer than k rows only when C
   does.

The answer, and so its quality, is what that query scores at that point of the stream.

The partial index is simulated exactly: a Flat (exhaustive inner-product) index over the
written-back vectors x_new[H], ranked by score, ties by row id. The run has the full x_new (the
full re-index is a reference), so a written-back vector is x_new's row. Two paths give its top
K' for a query, the same answers (tests/test_demand_migration.py checks it against a brute-force
search):
- fast: each distinct query's ranking over the whole corpus is computed once, to a prefix of P
  rows (`prefix`); the first K' of them that are in H are the partial index's top K' (ranking the
  whole corpus then keeping H's rows keeps H's order). Exact whenever the prefix holds K' rows of
  H, or all of H.
- otherwise a scan of H's vectors, kept in a contiguous buffer that doubles as it fills, so a
  query costs O(|H| d): cheap while H is small, which is when the prefix falls short.
Both compute inner products in float32 with different BLAS kernels, so two rows whose scores
differ in the last bits could swap at the K'-th place; that has no measurable effect.

Optionally a background job writes into the same partial index: after each served query it
re-embeds the next rows of a fixed order (drift.retrieval.mixed.backfill.backfill_order, e.g.
random) until it has taken `background` rows per served query so far, skipping rows already held
(a vector encoded on demand is not encoded again). Its encodes count, apart from the on-demand
ones, and add no latency to any query.

Not modelled: batching of encodes across concurrent queries (each query encodes its own rows
before it is answered), an approximate (HNSW, IVF) partial index and its insert cost, the
partial index's search time (the latency reported reuses the re-rank strategy's measured time
per query), deletions, and a background job's competition with on-demand encodes for the
encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from drift.core.errors import ConfigError, DataError

# Rows of each query's full new-model ranking computed once, at least (see the module docstring).
MIN_PREFIX = 1024
# Queries scored against the whole corpus at once when computing the prefixes.
PREFIX_BATCH = 256


def top_rows(scores: np.ndarray, rows: np.ndarray, depth: int) -> np.ndarray:
    """The `depth` rows with the highest scores, by score (descending) then row id (ascending).

    Exact with ties: every row scoring at least the depth-th highest score is sorted before the
    cut, so which of several tied rows is kept does not depend on the partition."""
    if depth >= scores.size:
        keep = np.arange(scores.size)
    else:
        threshold = np.partition(scores, scores.size - depth)[scores.size - depth]
        keep = np.flatnonzero(scores >= threshold)
    order = np.lexsort((rows[keep], -scores[keep]))
    return rows[keep[order[:depth]]]


class PartialIndex:
    """An exact new-model index over the rows written back so far (see the module docstring).

    Args:
        x_new: new-model document vectors [N, d] (row i: what encoding document i gives).
        q_new: new-model query vectors [nq, d].
        queries: the query rows that will search it (their ranking prefixes are computed here).
        prefix: rows of each query's ranking to precompute; 0 turns the fast path off (every
            search scans H, the brute-force reference).
    """

    def __init__(
        self,
        x_new: np.ndarray,
        q_new: np.ndarray,
        queries: np.ndarray,
        prefix: int,
        *,
        show_progress: bool = False,
    ) -> None:
        self.x_new, self.q_new = x_new, q_new
        self.held = np.zeros(len(x_new), dtype=bool)
        self._vectors = np.empty((64, x_new.shape[1]), dtype=x_new.dtype)
        self._rows = np.empty(64, dtype=np.int64)
        self.size = 0
        self.scans = 0  # searches the prefix could not answer
        self.prefix = min(prefix, len(x_new))
        self._prefixes: dict[int, np.ndarray] = {}
        if self.prefix:
            self._rank(np.unique(queries), show_progress)

    def _rank(self, queries: np.ndarray, show_progress: bool) -> None:
        all_rows = np.arange(len(self.x_new))
        batches = range(0, len(queries), PREFIX_BATCH)
        for start in tqdm(batches, desc="new-model rankings", disable=not show_progress):
            chunk = queries[start : start + PREFIX_BATCH]
            scores = self.q_new[chunk] @ self.x_new.T
            for query, row_scores in zip(chunk.tolist(), scores, strict=True):
                self._prefixes[query] = top_rows(row_scores, all_rows, self.prefix)

    def add(self, rows: np.ndarray) -> None:
        """Write back the vectors of `rows` (distinct, not held yet)."""
        if not rows.size:
            return
        if self.held[rows].any() or np.unique(rows).size != rows.size:
            raise DataError("PartialIndex.add: a row is written back twice")
        needed = self.size + rows.size
        if needed > len(self._rows):
            capacity = max(needed, 2 * len(self._rows))
            self._vectors = np.resize(self._vectors, (capacity, self._vectors.shape[1]))
            self._rows = np.resize(self._rows, capacity)
        self._vectors[self.size : needed] = self.x_new[rows]
        self._rows[self.size : needed] = rows
        self.size = needed
        self.held[rows] = True

    def search(self, query: int, depth: int) -> np.ndarray:
        """The held rows of the `depth` highest new-model scores for query row `query`."""
        if not self.size or not depth:
            return np.empty(0, dtype=np.int64)
        ranking = self._prefixes.get(query)
        if ranking is not None:
            hits = ranking[self.held[ranking]][:depth]
            if hits.size == min(depth, self.size) or ranking.size == len(self.x_new):
                return hits
        self.scans += 1
        scores = self._vectors[: self.size] @ self.q_new[query]
        return top_rows(scores, self._rows[: self.size], depth)


@dataclass
class DemandServed:
    """What demand-driven migration did at each served query of a stream.

    ids: the answer [len(stream), k] (-1 padded); cold: documents encoded on demand [len(stream)];
    background: documents the background job encoded after each served query [len(stream)];
    upfront: rows held before the first query; scans: searches the ranking prefixes could not
    answer (the partial index scanned H).
    """

    ids: np.ndarray
    cold: np.ndarray
    background: np.ndarray
    upfront: int
    scans: int


def serve_demand(
    stream: np.ndarray,
    old_candidates: np.ndarray,
    q_new: np.ndarray,
    x_new: np.ndarray,
    *,
    k: int,
    new_depth: int,
    held: np.ndarray | None = None,
    prefix: int | None = None,
    background: float = 0.0,
    order: np.ndarray | None = None,
    show_progress: bool = False,
) -> DemandServed:
    """Serve `stream` with demand-driven migration (see the module docstring).

    Args:
        stream: query rows in serving order (drift.migration.stream.make_stream).
        old_candidates: each query row's old-side candidates [nq, C] (-1 padded).
        q_new, x_new: new-model query [nq, d] and document [N, d] vectors.
        k: answer length.
        new_depth: K', the partial index's hits added to the candidates; 0: none (then this is
            lazy re-rank).
        held: rows holding a new-model vector from the start (paid for up front).
        prefix: rows of each query's new-model ranking precomputed (the fast path); None:
            max(MIN_PREFIX, 8 K'); 0: scan H for every search (the brute-force reference).
        background: rows of `order` a background job takes per served query (0: no job).
        order: every corpus row once, in the background job's order (needed when background > 0).
    """
    stream = np.asarray(stream, dtype=np.int64)
    old_candidates = np.asarray(old_candidates)
    if old_candidates.ndim != 2 or len(old_candidates) != len(q_new):
        raise DataError(
            f"old_candidates must be [nq = {len(q_new)}, C], got shape {old_candidates.shape}"
        )
    if x_new.shape[1] != q_new.shape[1]:
        raise DataError(f"x_new {x_new.shape} and q_new {q_new.shape} differ in dimension")
    if stream.size and (stream.min() < 0 or stream.max() >= len(q_new)):
        raise DataError(f"stream rows must be query rows in 0..{len(q_new) - 1}")
    if old_candidates.size and old_candidates.max() >= len(x_new):
        raise DataError(f"old_candidates must be corpus rows < N = {len(x_new)}")
    if k < 1 or new_depth < 0 or not background >= 0:
        raise ConfigError(
            "demand-driven migration needs k >= 1, K' >= 0 and a background rate >= 0, got "
            f"{k}, {new_depth}, {background}"
        )
    if background and (order is None or np.sort(order).tolist() != list(range(len(x_new)))):
        raise DataError(f"a background job needs an order of the {len(x_new)} corpus rows")
    prefix = max(MIN_PREFIX, 8 * new_depth) if prefix is None else prefix
    index = PartialIndex(
        x_new, q_new, stream, prefix if new_depth else 0, show_progress=show_progress
    )
    if held is not None:
        index.add(np.unique(np.asarray(held, dtype=np.int64)))
    upfront = index.size
    ids = np.full((len(stream), k), -1, dtype=np.int64)
    cold = np.zeros(len(stream), dtype=np.int64)
    taken = np.zeros(len(stream), dtype=np.int64)  # rows of `order` the job has reached
    if background:
        taken = np.minimum(
            np.floor(background * np.arange(1, len(stream) + 1)).astype(np.int64), len(x_new)
        )
    done = np.zeros(len(stream), dtype=np.int64)
    positions = tqdm(
        enumerate(stream.tolist()),
        total=len(stream),
        desc="demand-driven stream",
        disable=not show_progress,
        mininterval=2.0,
    )
    for position, query in positions:
        old = old_candidates[query]
        rows = np.concatenate([old[old >= 0], index.search(query, new_depth)])
        _, first = np.unique(rows, return_index=True)
        rows = rows[np.sort(first)]  # distinct, the old candidates first
        new = rows[~index.held[rows]]
        index.add(new)
        cold[position] = new.size
        scores = x_new[rows] @ q_new[query]
        ranked = rows[np.argsort(-scores, kind="stable")][:k]
        ids[position, : ranked.size] = ranked
        if background:
            start = taken[position - 1] if position else 0
            job = order[start : taken[position]]
            job = job[~index.held[job]]
            index.add(job)
            done[position] = job.size
    return DemandServed(ids=ids, cold=cold, background=done, upfront=upfront, scans=index.scans)

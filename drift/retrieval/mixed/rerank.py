"""Lazy re-rank: old-index candidates re-scored with new-model document vectors on demand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import Any

import numpy as np

from drift.core.errors import VectorError
from drift.core.rankings import StrategyResult
from drift.retrieval.mixed import encode_cost
from drift.retrieval.strategies import stage_timings, timed

RERANK_SOURCES = ("status_quo", "adapter", "union")


@dataclass
class DocumentVectors:
    """New-model document vectors, encoded on first use and kept; counts the encodes.

    `lookup(rows)` returns the new-model vectors of corpus rows (an encoder call in a deployment,
    the experiment's cached vectors here). `encoded` marks rows already paid for.
    """

    lookup: Callable[[np.ndarray], np.ndarray]
    n_items: int
    already_encoded: InitVar[np.ndarray | None] = None  # rows paid for before (adapter pairs)
    encoded: np.ndarray = field(init=False)

    def __post_init__(self, already_encoded: np.ndarray | None) -> None:
        self.encoded = np.zeros(self.n_items, dtype=bool)
        if already_encoded is not None:
            self.encoded[already_encoded] = True

    @property
    def n_encoded(self) -> int:
        return int(self.encoded.sum())

    def hold(self, rows: np.ndarray) -> None:
        """Mark `rows` held without an on-demand encode: their vectors were made elsewhere (e.g.
        by a background re-embedding job), so `get` never counts them."""
        self.encoded[np.asarray(rows, dtype=np.int64)] = True

    def get(self, rows: np.ndarray) -> tuple[np.ndarray, int]:
        """(vectors of `rows`, how many of them were encoded now, i.e. cold)."""
        rows = np.asarray(rows, dtype=np.int64)
        cold = np.unique(rows[~self.encoded[rows]])
        self.encoded[cold] = True
        return self.lookup(rows), int(cold.size)


def union_candidates(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per row, `first`'s ids then `second`'s ids not already present ([nq, a + b], -1 padded)."""
    out = np.full((first.shape[0], first.shape[1] + second.shape[1]), -1, dtype=np.int64)
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        a = a[a >= 0]
        merged = np.concatenate([a, b[(b >= 0) & ~np.isin(b, a)]])
        out[i, : merged.size] = merged
    return out


def rerank(
    name: str,
    candidates: np.ndarray,
    fallback: np.ndarray,
    q_new: np.ndarray,
    documents: DocumentVectors,
    k: int,
    search_seconds: float = 0.0,
    params: dict[str, Any] | None = None,
) -> StrategyResult:
    """Re-score each query's candidates [nq, C] (-1 padded) with new-model document vectors.

    The re-scored candidates come first (by new-model cosine; ties keep candidate order), then
    the `fallback` ranking's ids that were not candidates, up to k. Queries are answered in
    order and `documents` keeps what it encoded, so the cost is the distinct documents touched
    (plus whatever `documents` already held, e.g. the adapter's pairs, which need no new encode).
    """
    if candidates.shape[0] != q_new.shape[0] or fallback.shape[0] != q_new.shape[0]:
        raise VectorError("rerank: candidates, fallback and queries must have the same rows")
    ids = np.full((len(q_new), k), -1, dtype=np.int64)
    scores = np.full((len(q_new), k), -np.inf, dtype=np.float32)
    cold = np.zeros(len(q_new), dtype=np.int64)
    before = documents.n_encoded

    def answer() -> None:
        for i, query in enumerate(q_new):
            rows = candidates[i][candidates[i] >= 0]
            vectors, cold[i] = documents.get(rows)
            row_scores = vectors @ query
            order = np.argsort(-row_scores, kind="stable")
            rest = fallback[i][(fallback[i] >= 0) & ~np.isin(fallback[i], rows)]
            ranked = np.concatenate([rows[order], rest])[:k]
            ids[i, : ranked.size] = ranked
            scores[i, : min(rows.size, k)] = row_scores[order][:k]

    _, seconds = timed(answer)
    n_candidates = (candidates >= 0).sum(axis=1)
    return StrategyResult(
        name=name,
        applicable=True,
        ids=ids,
        scores=scores,
        timings=stage_timings(len(q_new), search_seconds=search_seconds, rerank_seconds=seconds),
        notes="re-scores old-index candidates with new-model document vectors encoded on "
        "demand; timings include the candidate searches, not the encodes (see "
        "drift.migration.stream)",
        cost=encode_cost(
            documents.n_encoded,
            documents.n_items,
            on_demand_encodes=documents.n_encoded - before,
            cold_encodes_per_query=float(cold.mean()) if cold.size else 0.0,
            candidates_per_query=float(n_candidates.mean()) if n_candidates.size else 0.0,
        ),
        params=params or {},
        candidates=candidates,
    )

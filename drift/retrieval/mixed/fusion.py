"""Score fusion: status-quo and adapter cosines over the union of their top lists."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from drift.core.errors import ConfigError
from drift.core.rankings import StrategyResult
from drift.retrieval.mixed import encode_cost
from drift.retrieval.mixed.rerank import union_candidates
from drift.retrieval.strategies import RRF_K, stage_timings, timed

Normalisation = Literal["zscore", "minmax", "none", "rrf"]
NORMALISATIONS = ("zscore", "minmax", "none", "rrf")


def normalise_scores(scores: np.ndarray, method: Normalisation, depth: int) -> np.ndarray:
    """Per-query normalisation of one list's scores over a query's union of candidates [C].

    rrf turns scores into 1 / (RRF_K + rank) within the list (rank by score; depth caps it, so a
    candidate outside this list's top `depth` gets 0).
    """
    if method == "none":
        return scores
    if method == "zscore":
        std = scores.std()
        return (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    if method == "minmax":
        span = scores.max() - scores.min()
        return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)
    if method == "rrf":
        rank = np.empty(scores.size, dtype=np.int64)
        rank[np.argsort(-scores, kind="stable")] = np.arange(scores.size)
        return np.where(rank < depth, 1.0 / (RRF_K + rank + 1), 0.0)
    raise ConfigError(f"unknown score normalisation {method!r}; use one of {NORMALISATIONS}")


def fusion(
    name: str,
    status_quo_ids: np.ndarray,
    adapter_ids: np.ndarray,
    q_old: np.ndarray,
    q_mapped: np.ndarray,
    x_old: np.ndarray,
    *,
    weight: float,
    normalisation: Normalisation,
    k: int,
    n_pairs: int = 0,
    search_seconds: float = 0.0,
    params: dict[str, Any] | None = None,
) -> StrategyResult:
    """Fuse status-quo and adapter scores over the union of their top lists [nq, depth].

    Every candidate gets both cosines, recomputed exactly from the old corpus vectors:
    s_sq = x_old . q_old and s_ad = x_old . adapter(q_new). Fused score =
    (1 - weight) * norm(s_sq) + weight * norm(s_ad); weight 0 ranks by the status quo alone
    (the status-quo ranking itself when its list came from an exact search). Serving it needs
    both the old and the new model's query encoding; its only document encodes are the
    adapter's `n_pairs`.
    """
    if not 0.0 <= weight <= 1.0:
        raise ConfigError(f"fusion weight must be in [0, 1], got {weight}")
    if normalisation not in NORMALISATIONS:
        raise ConfigError(
            f"unknown score normalisation {normalisation!r}; use one of {NORMALISATIONS}"
        )
    depth = status_quo_ids.shape[1]
    candidates = union_candidates(status_quo_ids, adapter_ids)
    ids = np.full((len(q_old), k), -1, dtype=np.int64)
    scores = np.zeros((len(q_old), k), dtype=np.float32)

    def answer() -> None:
        for i in range(len(q_old)):
            rows = candidates[i][candidates[i] >= 0]
            vectors = x_old[rows]
            fused = (1.0 - weight) * normalise_scores(vectors @ q_old[i], normalisation, depth)
            fused += weight * normalise_scores(vectors @ q_mapped[i], normalisation, depth)
            order = np.argsort(-fused, kind="stable")[:k]
            ids[i, : order.size] = rows[order]
            scores[i, : order.size] = fused[order]

    _, seconds = timed(answer)
    return StrategyResult(
        name=name,
        applicable=True,
        ids=ids,
        scores=scores,
        timings=stage_timings(len(q_old), search_seconds=search_seconds, fuse_seconds=seconds),
        notes=f"{normalisation}-normalised status-quo and adapter cosines over the union of "
        f"their top {depth}; needs both query encodings",
        cost=encode_cost(n_pairs, len(x_old)),
        params=params or {},
    )

"""Strategies that mix the old index with some new-model document vectors (beyond the paper).

The paper's adapter never encodes a document with the new model, and on real corpora it barely
moves quality (DESIGN.md). These strategies spend some new-model document encodes to get closer to
a full re-embedding, and count what they spend, so that quality and cost can be compared:

- rerank:   take candidates from the old index (status quo, adapter, or the union of both), encode
            those documents with the new model on demand (each document once, then kept), and
            re-score them with the new query. Cost: distinct documents encoded.
- fusion:   fuse status-quo and adapter scores over the union of their top lists; both are cosines
            in the old space, normalised per query (zscore, minmax, none, or rank-based rrf).
            Cost: nothing beyond the adapter's pairs.
- backfill: a fraction f of the corpus is re-encoded into a new-model index; queries search it
            with the new query and the old index (items not yet migrated) with a base strategy,
            and the two lists are merged (rrf, zscore, or an affine score calibration fitted on past
            traffic). Cost: f * N encodes.

Row ids are shared: row i of the old and new corpus vectors is the same item. Here the new-model
document vectors come from the experiment's (cached) encodes, which are exactly what an on-demand
encode would return; what such encodes cost in time follows from measured throughput
(drift.stream). Answers use the same evaluator as every other strategy.

"Past traffic" (popularity order, score calibration) must never include the query being answered:
queries are split into seeded folds and each fold is answered with what the other folds taught
(cross-fitting), so every query is answered once and from others' traffic only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import faiss
import numpy as np

from drift.errors import ConfigError, VectorError
from drift.index import IndexCache, IndexSpec, exact_search, is_gpu_index, search
from drift.strategies import StrategyResult, rrf_fuse, stage_timings, timed, timed_search

Normalisation = Literal["zscore", "minmax", "none", "rrf"]
NORMALISATIONS = ("zscore", "minmax", "none", "rrf")
MERGES = ("rrf", "zscore", "calibrated")
ORDERS = ("random", "popularity", "hubness")
RERANK_SOURCES = ("status_quo", "adapter", "union")
# Past traffic counts a document as served when it is in a past query's top POPULAR_DEPTH.
POPULAR_DEPTH = 10
# The hubness order probes the old index with this many corpus items (their old vectors).
HUB_PROBES = 2000


@dataclass
class DocumentVectors:
    """New-model document vectors, encoded on first use and kept; counts the encodes.

    `lookup(rows)` returns the new-model vectors of corpus rows (an encoder call in a deployment,
    the experiment's cached vectors here). `encoded` marks rows already paid for.
    """

    lookup: Callable[[np.ndarray], np.ndarray]
    n_items: int
    already_encoded: np.ndarray | None = None  # rows paid for before (e.g. the adapter's pairs)
    encoded: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.encoded = np.zeros(self.n_items, dtype=bool)
        if self.already_encoded is not None:
            self.encoded[self.already_encoded] = True

    @property
    def n_encoded(self) -> int:
        return int(self.encoded.sum())

    def get(self, rows: np.ndarray) -> tuple[np.ndarray, int]:
        """(vectors of `rows`, how many of them were encoded now, i.e. cold)."""
        rows = np.asarray(rows, dtype=np.int64)
        cold = np.unique(rows[~self.encoded[rows]])
        self.encoded[cold] = True
        return self.lookup(rows), int(cold.size)


@dataclass
class PartialIndex:
    """A new-model index over some corpus rows (sorted); its ids are positions in `rows`."""

    index: faiss.Index | None
    rows: np.ndarray


def encode_cost(n_encodes: int, n_corpus: int, **extra: Any) -> dict[str, Any]:
    """A strategy's cost in new-model document encodes, absolute and as a share of the corpus."""
    return {
        "new_doc_encodes": int(n_encodes),
        "share_encoded": n_encodes / max(n_corpus, 1),
        **extra,
    }


# -- rerank ----------------------------------------------------------------------------------
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
        "demand; timings include the candidate searches, not the encodes (see drift.stream)",
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


# -- fusion ----------------------------------------------------------------------------------
def normalise_scores(scores: np.ndarray, method: Normalisation, depth: int) -> np.ndarray:
    """Per-query normalisation of one list's scores over a query's union of candidates [C].

    rrf turns scores into 1 / (60 + rank) within the list (rank by score; depth caps it, so a
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
        return np.where(rank < depth, 1.0 / (60 + rank + 1), 0.0)
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


# -- backfill --------------------------------------------------------------------------------
def backfill_order(
    order: str,
    n_corpus: int,
    *,
    seed: int,
    past_ids: np.ndarray | None = None,
    x_old: np.ndarray | None = None,
) -> np.ndarray:
    """All corpus rows in the order a background job re-embeds them.

    - random: a seeded permutation.
    - popularity: most served first, counting each row's appearances in the top POPULAR_DEPTH of
      past queries (`past_ids`, the rankings those queries were served); ties and never-served
      rows in seeded random order.
    - hubness: a traffic-free stand-in for popularity: how often a row is among the 10 nearest
      old-space neighbours of HUB_PROBES sampled corpus items (old vectors, `x_old`). Rows that
      are near many others tend to be retrieved by many queries.
    """
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n_corpus)
    if order == "random":
        return shuffled
    if order == "popularity":
        if past_ids is None:
            raise ConfigError("backfill order 'popularity' needs past traffic (past_ids)")
        served = past_ids[:, :POPULAR_DEPTH]
        counts = np.bincount(served[served >= 0], minlength=n_corpus)
    elif order == "hubness":
        if x_old is None:
            raise ConfigError("backfill order 'hubness' needs the old corpus vectors")
        probes = x_old[rng.choice(n_corpus, size=min(n_corpus, HUB_PROBES), replace=False)]
        _, neighbours = exact_search(x_old, probes, min(10, n_corpus), device="cpu")
        counts = np.bincount(neighbours[neighbours >= 0], minlength=n_corpus)
    else:
        raise ConfigError(f"unknown backfill order {order!r}; use one of {ORDERS}")
    # Stable sort of the shuffled rows by count: ties stay in seeded random order.
    return shuffled[np.argsort(-counts[shuffled], kind="stable")]


def partial_index(
    x_new: np.ndarray, rows: np.ndarray, spec: IndexSpec, cache: IndexCache
) -> PartialIndex:
    """The new-model index over `rows` (sorted first, so all rows gives the full new index)."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if rows.size == 0:
        return PartialIndex(None, rows)
    index, _ = cache.get_or_build(np.ascontiguousarray(x_new[rows]), spec)
    return PartialIndex(index, rows)


@dataclass(frozen=True)
class Calibration:
    """new-model score ~ slope * old-space score + intercept, fitted on past traffic."""

    slope: float
    intercept: float
    n_points: int

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return self.slope * scores + self.intercept


def fit_calibration(
    old_scores: np.ndarray,
    old_ids: np.ndarray,
    q_new: np.ndarray,
    x_new: np.ndarray,
    migrated: np.ndarray,
) -> Calibration | None:
    """Least-squares affine map from old-space scores to new-model scores.

    Fitted on past queries' served (old-space) top lists where the document is already migrated
    (`migrated`: bool per row), so both of its scores are known without a new encode. None when
    fewer than 2 such points exist or the slope is not positive (a merge needs an increasing
    map).
    """
    rows, cols = np.nonzero((old_ids >= 0) & migrated[np.maximum(old_ids, 0)])
    if rows.size < 2:
        return None
    s_old = old_scores[rows, cols].astype(np.float64)
    s_new = np.einsum("ij,ij->i", x_new[old_ids[rows, cols]], q_new[rows]).astype(np.float64)
    if np.ptp(s_old) == 0:
        return None
    slope, intercept = np.polyfit(s_old, s_new, 1)
    if not slope > 0:
        return None
    return Calibration(float(slope), float(intercept), int(rows.size))


def search_unmigrated(
    old_index: faiss.Index,
    queries: np.ndarray,
    migrated: np.ndarray,
    k: int,
    spec: IndexSpec,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of the old index among rows not yet migrated (`migrated`: bool per row).

    A filtered search (faiss ID selector) on CPU indexes, as a vector database filters; on GPU
    indexes, which take no selector, the search is repeated deeper (doubling) and filtered after
    until every query has k unmigrated rows or the whole index was asked for.
    """
    if not is_gpu_index(old_index):
        return search(old_index, queries, k, spec, allowed=np.flatnonzero(~migrated))
    remaining = int((~migrated).sum())
    want = min(k, remaining)
    depth = min(old_index.ntotal, max(k, math.ceil(k / max(1e-9, remaining / migrated.size))))
    while True:
        scores, ids = search(old_index, queries, depth, spec)
        keep = (ids >= 0) & ~migrated[np.maximum(ids, 0)]
        if keep.sum(axis=1).min(initial=want) >= want or depth >= old_index.ntotal:
            break
        depth = min(old_index.ntotal, 2 * depth)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for i in range(len(queries)):
        kept = np.flatnonzero(keep[i])[:k]
        out_ids[i, : kept.size] = ids[i, kept]
        out_scores[i, : kept.size] = scores[i, kept]
    return out_scores, out_ids


def standardise_rows(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per row, (score - mean) / std over the valid entries (0 where std is 0)."""
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    values = np.where(valid, scores, 0.0).astype(np.float64)
    mean = values.sum(axis=1, keepdims=True) / count
    var = (np.where(valid, values - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / count
    std = np.sqrt(var)
    return np.where(std > 0, (values - mean) / np.where(std > 0, std, 1.0), 0.0)


def merge_lists(
    new: tuple[np.ndarray, np.ndarray],
    old: tuple[np.ndarray, np.ndarray],
    k: int,
    merge: str,
    calibration: Calibration | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Merge the migrated rows' new-model list with the unmigrated rows' old-space list.

    The lists hold disjoint rows. rrf: reciprocal rank fusion (new list first on ties);
    zscore: each list's scores standardised per query over its own returned entries;
    calibrated: old-space scores mapped onto the new-model scale by `calibration`.
    """
    (new_scores, new_ids), (old_scores, old_ids) = new, old
    if merge == "rrf":
        return rrf_fuse([new_ids, old_ids], k)
    if merge == "zscore":
        new_scores = standardise_rows(new_scores, new_ids >= 0)
        old_scores = standardise_rows(old_scores, old_ids >= 0)
    elif merge == "calibrated":
        if calibration is None:
            raise ConfigError("calibrated merge needs a fitted calibration")
        old_scores = calibration.apply(old_scores)
    else:
        raise ConfigError(f"unknown backfill merge {merge!r}; use one of {MERGES}")
    ids = np.concatenate([new_ids, old_ids], axis=1)
    scores = np.where(ids >= 0, np.concatenate([new_scores, old_scores], axis=1), -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def backfill_answer(
    *,
    old_index: faiss.Index,
    base_queries: np.ndarray,
    partial: PartialIndex,
    q_new: np.ndarray,
    spec: IndexSpec,
    k: int,
    merge: str,
    calibration: Calibration | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, float]]:
    """((scores, ids), stage seconds) for queries served during a partial backfill.

    With nothing migrated it is the base strategy's search; with everything migrated it is the
    new-model index's search (for f = 1 the full new index: same rows, same order).
    """
    n = old_index.ntotal
    migrated = np.zeros(n, dtype=bool)
    migrated[partial.rows] = True
    seconds: dict[str, float] = {}
    if partial.index is None:
        result, seconds["search_seconds"] = timed_search(old_index, base_queries, k, spec)
        return result, seconds
    (new_scores, positions), seconds["search_new_seconds"] = timed_search(
        partial.index, q_new, k, spec
    )
    new_ids = np.where(positions >= 0, partial.rows[np.maximum(positions, 0)], -1)
    if partial.rows.size == n:
        return (new_scores, new_ids), seconds
    old, seconds["search_old_seconds"] = timed(
        lambda: search_unmigrated(old_index, base_queries, migrated, k, spec)
    )
    merged, seconds["merge_seconds"] = timed(
        lambda: merge_lists((new_scores, new_ids), old, k, merge, calibration)
    )
    return merged, seconds


def query_folds(n_queries: int, n_folds: int, seed: int) -> list[np.ndarray]:
    """Seeded disjoint folds of query rows, each sorted (cross-fitting of past traffic)."""
    if n_folds < 2:
        raise ConfigError(f"past traffic needs at least 2 query folds, got {n_folds}")
    permutation = np.random.default_rng(seed).permutation(n_queries)
    return [np.sort(fold) for fold in np.array_split(permutation, n_folds)]


@dataclass(frozen=True)
class BackfillSetting:
    fraction: float
    order: str
    merge: str
    base: str  # "status_quo" or an adapter name

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"backfill fraction must be in [0, 1], got {self.fraction}")
        if self.order not in ORDERS:
            raise ConfigError(f"unknown backfill order {self.order!r}; use one of {ORDERS}")
        if self.merge not in MERGES:
            raise ConfigError(f"unknown backfill merge {self.merge!r}; use one of {MERGES}")

    @property
    def name(self) -> str:
        return f"backfill/{self.base}/{self.order}/{self.merge}@{self.fraction:g}"


def backfill(
    setting: BackfillSetting,
    *,
    old_index: faiss.Index,
    base_queries: np.ndarray,
    q_new: np.ndarray,
    x_new: np.ndarray,
    x_old: np.ndarray,
    spec: IndexSpec,
    index_cache: IndexCache,
    k: int,
    seed: int,
    n_folds: int = 2,
    pair_rows: np.ndarray | None = None,
) -> StrategyResult:
    """Answer every query with a fraction of the corpus migrated (see the module docstring).

    Orders and calibrations that learn from past traffic are cross-fitted over query folds; the
    other folds' traffic is what the base strategy served them before the migration started.
    `pair_rows` (the adapter's pairs, when the base is an adapter) count as encoded too.
    """
    n = x_new.shape[0]
    n_migrated = round(setting.fraction * n)
    ids = np.full((len(q_new), k), -1, dtype=np.int64)
    scores = np.full((len(q_new), k), -np.inf, dtype=np.float32)
    seconds: dict[str, float] = {}
    notes: list[str] = []
    n_encodes = 0
    base_before: tuple[np.ndarray, np.ndarray] | None = None
    if setting.order == "popularity" or setting.merge == "calibrated":
        base_before = search(old_index, base_queries, k, spec)  # traffic before the migration

    for fold in query_folds(len(q_new), n_folds, seed):
        past = np.setdiff1d(np.arange(len(q_new)), fold)
        order = backfill_order(
            setting.order,
            n,
            seed=seed,
            past_ids=base_before[1][past] if base_before is not None else None,
            x_old=x_old,
        )
        partial = partial_index(x_new, order[:n_migrated], spec, index_cache)
        paid = partial.rows if pair_rows is None else np.union1d(partial.rows, pair_rows)
        n_encodes = max(n_encodes, paid.size)
        calibration = None
        if setting.merge == "calibrated" and 0 < n_migrated < n and base_before is not None:
            migrated = np.zeros(n, dtype=bool)
            migrated[partial.rows] = True
            calibration = fit_calibration(
                base_before[0][past], base_before[1][past], q_new[past], x_new, migrated
            )
        merge = setting.merge
        if merge == "calibrated" and calibration is None:
            merge = "zscore"
            if 0 < n_migrated < n:
                notes.append("too little past traffic on migrated rows to calibrate: zscore")
        (fold_scores, fold_ids), fold_seconds = backfill_answer(
            old_index=old_index,
            base_queries=base_queries[fold],
            partial=partial,
            q_new=q_new[fold],
            spec=spec,
            k=k,
            merge=merge,
            calibration=calibration,
        )
        ids[fold], scores[fold] = fold_ids, fold_scores
        for key, value in fold_seconds.items():
            seconds[key] = seconds.get(key, 0.0) + value

    return StrategyResult(
        name=setting.name,
        applicable=True,
        ids=ids,
        scores=scores,
        timings=stage_timings(len(q_new), **seconds),
        notes="; ".join(
            [
                f"a share of the rows in a new-model index, the rest served by {setting.base} "
                f"from the old index, merged by {setting.merge}"
            ]
            + sorted(set(notes))
        ),
        cost=encode_cost(n_encodes, n, migrated=n_migrated),
        params={"family": "backfill", **setting.__dict__},
    )


def settings_grid(values: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the listed values, keys in the given order."""
    grid: list[dict[str, Any]] = [{}]
    for key, options in values.items():
        grid = [{**point, key: option} for point in grid for option in options]
    return grid


# -- the plan an experiment runs -------------------------------------------------------------
MIXED_FAMILIES = ("rerank", "fusion", "backfill")


def run_mixed_strategies(
    settings: dict[str, Any],
    families: Sequence[str],
    *,
    old_index: faiss.Index,
    spec: IndexSpec,
    index_cache: IndexCache,
    q_old: np.ndarray,
    q_new: np.ndarray,
    x_old: np.ndarray,
    x_new: np.ndarray,
    adapters: dict[str, Any],
    k: int,
    seed: int,
    pair_rows: np.ndarray,
) -> dict[str, StrategyResult]:
    """Every configured variant of the named families (the `eval.mixed` block of the config).

    `settings["adapter"]` names the fitted adapter behind the adapter and union rerank sources,
    fusion, and a backfill base of "adapter"; its `pair_rows` (corpus rows encoded by both models
    to fit it) count towards the cost of every variant that uses it.
    """
    unknown = set(families) - set(MIXED_FAMILIES)
    if unknown:
        raise ConfigError(f"unknown mixed strategies {sorted(unknown)}; known: {MIXED_FAMILIES}")
    adapter_name = settings["adapter"]
    if adapter_name not in adapters:
        raise ConfigError(
            f"eval.mixed.adapter={adapter_name!r} is not among the fitted adapters "
            f"{sorted(adapters)}; name one of them"
        )
    mapped = adapters[adapter_name].transform(q_new)
    n = x_new.shape[0]
    results: dict[str, StrategyResult] = {}
    searched: dict[tuple[str, int], tuple[np.ndarray, float]] = {}

    def ranking(source: str, depth: int) -> np.ndarray:
        """Row ids [nq, depth] of the status quo or the adapter in the old index."""
        key = (source, depth)
        if key not in searched:
            queries = q_old if source == "status_quo" else mapped
            (_, ids), seconds = timed_search(old_index, queries, min(depth, n), spec)
            searched[key] = (ids, seconds)
        return searched[key][0]

    def search_time(*keys: tuple[str, int]) -> float:
        return sum(searched[key][1] for key in keys)

    if "rerank" in families:
        grid = settings_grid(
            {"source": settings["rerank"]["sources"], "depth": settings["rerank"]["depths"]}
        )
        for point in grid:
            source, depth = point["source"], int(point["depth"])
            if source not in RERANK_SOURCES:
                raise ConfigError(f"unknown rerank source {source!r}; use one of {RERANK_SOURCES}")
            fallback_source = "adapter" if source == "adapter" else "status_quo"
            if source == "union":
                candidates = union_candidates(
                    ranking("status_quo", depth), ranking("adapter", depth)
                )
            else:
                candidates = ranking(source, depth)
            name = f"rerank/{source}@{depth}"
            sources = [("status_quo", depth), ("adapter", depth)] if source == "union" else []
            sources = sources or [(source, depth)]
            results[name] = rerank(
                name,
                candidates,
                ranking(fallback_source, max(depth, k)),
                q_new,
                DocumentVectors(
                    lambda rows: x_new[rows],
                    n,
                    already_encoded=None if source == "status_quo" else pair_rows,
                ),
                k,
                search_seconds=search_time(*sources),
                params={
                    "family": "rerank",
                    "source": source,
                    "depth": depth,
                    "adapter": adapter_name,
                },
            )

    if "fusion" in families:
        depth = int(settings["fusion"]["depth"])
        grid = settings_grid(
            {
                "normalisation": settings["fusion"]["normalisations"],
                "weight": settings["fusion"]["weights"],
            }
        )
        for point in grid:
            name = f"fusion/{point['normalisation']}@{float(point['weight']):g}"
            results[name] = fusion(
                name,
                ranking("status_quo", depth),
                ranking("adapter", depth),
                q_old,
                mapped,
                x_old,
                weight=float(point["weight"]),
                normalisation=point["normalisation"],
                k=k,
                n_pairs=len(pair_rows),
                search_seconds=search_time(("status_quo", depth), ("adapter", depth)),
                params={"family": "fusion", "depth": depth, "adapter": adapter_name, **point},
            )

    if "backfill" in families:
        cfg = settings["backfill"]
        grid = settings_grid(
            {
                "base": cfg["bases"],
                "order": cfg["orders"],
                "merge": cfg["merges"],
                "fraction": cfg["fractions"],
            }
        )
        for point in grid:
            base = adapter_name if point["base"] == "adapter" else point["base"]
            if base not in ("status_quo", adapter_name):
                raise ConfigError(
                    f"unknown backfill base {point['base']!r}; use status_quo or adapter"
                )
            setting = BackfillSetting(
                float(point["fraction"]), point["order"], point["merge"], base
            )
            results[setting.name] = backfill(
                setting,
                old_index=old_index,
                base_queries=q_old if base == "status_quo" else mapped,
                q_new=q_new,
                x_new=x_new,
                x_old=x_old,
                spec=spec,
                index_cache=index_cache,
                k=k,
                seed=seed,
                n_folds=int(cfg["folds"]),
                pair_rows=None if base == "status_quo" else pair_rows,
            )
    return results


def paper_strategy_costs(name: str, n_corpus: int, n_pairs: int) -> dict[str, Any]:
    """New-model document encodes of the paper's strategies ({} for the diagnostic ceiling)."""
    if name in ("full_reindex", "dual_index"):
        return encode_cost(n_corpus, n_corpus)
    if name.startswith("adapter/"):
        return encode_cost(n_pairs, n_corpus)
    if name in ("status_quo", "misaligned"):
        return encode_cost(0, n_corpus)
    return {}

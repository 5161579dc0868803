"""Partial backfill: a share of the corpus in a new-model index, the rest from the old index.

"Past traffic" (popularity order, score calibration) never includes the query being answered:
queries are split into seeded folds and each fold is answered with what the other folds taught.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import faiss
import numpy as np

from drift.core.errors import ConfigError
from drift.core.rankings import StrategyResult
from drift.retrieval.index import (
    IndexCache,
    IndexSpec,
    exact_ivf_index,
    exact_search,
    is_gpu_index,
    search,
)
from drift.retrieval.mixed import encode_cost
from drift.retrieval.strategies import rrf_fuse, stage_timings, timed, timed_search

MERGES = ("rrf", "zscore", "calibrated")
ORDERS = ("random", "popularity", "hubness")
# Past traffic counts a document as served when it is in a past query's top POPULAR_DEPTH.
POPULAR_DEPTH = 10
# The hubness order probes the old index with this many corpus items (their old vectors).
HUB_PROBES = 2000


@dataclass
class PartialIndex:
    """A new-model index over some corpus rows (sorted); its ids are positions in `rows`."""

    index: faiss.Index | None
    rows: np.ndarray

    def migrated(self, n_corpus: int) -> np.ndarray:
        """Bool per corpus row: in this index (re-embedded) or not."""
        mask = np.zeros(n_corpus, dtype=bool)
        mask[self.rows] = True
        return mask


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
    """The new-model index over `rows` (sorted first, so all rows gives the full new index).

    Fewer rows than IVF-PQ trains its codebooks on (2**pq_nbits: a small share of a small
    corpus) are searched exactly instead, in one uncompressed inverted list, with a warning:
    as a vector database searches a segment too small to index.
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if rows.size == 0:
        return PartialIndex(None, rows)
    vectors = np.ascontiguousarray(x_new[rows])
    if rows.size < spec.min_vectors:
        warnings.warn(
            f"a new-model sub-index over {rows.size} rows is too small to train IVF-PQ "
            f"(pq_nbits={spec.pq_nbits} needs {spec.min_vectors}): those rows are searched "
            "exactly instead (one uncompressed inverted list)",
            stacklevel=2,
        )
        return PartialIndex(exact_ivf_index(vectors), rows)
    index, _ = cache.get_or_build(vectors, spec)
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

    A filtered search (faiss ID selector) on CPU graph and IVF indexes, as a vector database
    filters. A flat index scans a selector row by row without BLAS, which at GCIDE's 117,029
    rows made one backfill setting take minutes, and GPU indexes take no selector: for both the
    search is repeated deeper and filtered after (`deeper_then_filtered`), which for a flat index
    gives the same rows (the first k unmigrated ones of the exact ranking).
    """
    if not is_gpu_index(old_index) and spec.kind != "flat":
        return search(old_index, queries, k, spec, allowed=np.flatnonzero(~migrated))
    return deeper_then_filtered(old_index, queries, migrated, k, spec)


def deeper_then_filtered(
    old_index: faiss.Index,
    queries: np.ndarray,
    migrated: np.ndarray,
    k: int,
    spec: IndexSpec,
) -> tuple[np.ndarray, np.ndarray]:
    """`search_unmigrated` without a selector: each query searches at a depth that should hold
    k unmigrated rows (k over the unmigrated share), and the queries still short of them search
    again at twice the depth, until they have k or asked for the whole index."""
    n = old_index.ntotal
    remaining = int((~migrated).sum())
    want = min(k, remaining)
    out_ids = np.full((len(queries), k), -1, dtype=np.int64)
    out_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    todo = np.arange(len(queries))
    depth = min(n, max(k, math.ceil(k / max(1e-9, remaining / migrated.size))))
    while todo.size:
        scores, ids = search(old_index, queries[todo], depth, spec)
        keep = (ids >= 0) & ~migrated[np.maximum(ids, 0)]
        done = (keep.sum(axis=1) >= want) | (depth >= n)
        for row in np.flatnonzero(done):
            kept = np.flatnonzero(keep[row])[:k]
            out_ids[todo[row], : kept.size] = ids[row, kept]
            out_scores[todo[row], : kept.size] = scores[row, kept]
        todo = todo[~done]
        depth = min(n, 2 * depth)
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
        lambda: search_unmigrated(old_index, base_queries, partial.migrated(n), k, spec)
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


# Said in a strategy's notes when a calibrated merge had to fall back.
NO_CALIBRATION = "too little past traffic on migrated rows to calibrate: zscore"


def serve_fold(
    fold: np.ndarray,
    *,
    merge: str,
    partial: PartialIndex,
    past_traffic: tuple[np.ndarray, np.ndarray] | None,
    base_queries: np.ndarray,
    q_new: np.ndarray,
    x_new: np.ndarray,
    old_index: faiss.Index,
    spec: IndexSpec,
    k: int,
) -> tuple[tuple[np.ndarray, np.ndarray], dict[str, float], list[str]]:
    """One query fold's backfill answers ((scores, ids), stage seconds, notes).

    `base_queries` and `q_new` hold every query; `past_traffic` (scores, ids) is what the base
    strategy served every query over the whole old index. A calibrated merge is fitted on the
    other folds' past traffic, and falls back to zscore (said in the notes) when it cannot be.
    """
    notes = []
    calibration = None
    if merge == "calibrated" and 0 < partial.rows.size < x_new.shape[0]:
        if past_traffic is None:
            raise ConfigError("a calibrated merge needs past traffic (the base strategy's answers)")
        past = np.setdiff1d(np.arange(len(q_new)), fold)
        calibration = fit_calibration(
            past_traffic[0][past],
            past_traffic[1][past],
            q_new[past],
            x_new,
            partial.migrated(x_new.shape[0]),
        )
        if calibration is None:
            merge = "zscore"
            notes.append(NO_CALIBRATION)
    answers, seconds = backfill_answer(
        old_index=old_index,
        base_queries=base_queries[fold],
        partial=partial,
        q_new=q_new[fold],
        spec=spec,
        k=k,
        merge=merge,
        calibration=calibration,
    )
    return answers, seconds, notes


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
    past_traffic: tuple[np.ndarray, np.ndarray] | None = None
    if setting.order == "popularity" or setting.merge == "calibrated":
        past_traffic = search(old_index, base_queries, k, spec)  # traffic before the migration

    def migrated_for(past: np.ndarray | None) -> PartialIndex:
        """The partial index after migrating in the order `past` queries' traffic sets (None:
        an order that uses no traffic)."""
        order = backfill_order(
            setting.order,
            n,
            seed=seed,
            past_ids=None if past is None else past_traffic[1][past],
            x_old=x_old,
        )
        return partial_index(x_new, order[:n_migrated], spec, index_cache)

    # Only a popularity order learns from past traffic; the others migrate the same rows for
    # every fold, so their partial index is built once.
    shared = None if setting.order == "popularity" else migrated_for(None)
    for fold in query_folds(len(q_new), n_folds, seed):
        if shared is not None:
            partial = shared
        else:
            partial = migrated_for(np.setdiff1d(np.arange(len(q_new)), fold))
        paid = partial.rows if pair_rows is None else np.union1d(partial.rows, pair_rows)
        n_encodes = max(n_encodes, paid.size)
        (fold_scores, fold_ids), fold_seconds, fold_notes = serve_fold(
            fold,
            merge=setting.merge,
            partial=partial,
            past_traffic=past_traffic,
            base_queries=base_queries,
            q_new=q_new,
            x_new=x_new,
            old_index=old_index,
            spec=spec,
            k=k,
        )
        ids[fold], scores[fold] = fold_ids, fold_scores
        notes += fold_notes
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

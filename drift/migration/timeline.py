"""A migration timeline: quality over time while a background job re-embeds the corpus.

    cfg = TimelineConfig(rate=0.05, hours=24, modes=["adapter_frozen", "adapter_refit"])
    result = run_timeline(cfg, TimelineData(x_old=..., x_new=..., ...), knn_truth=..., qrels=...)
    print(summarise_timeline(result))

At hour t the background job has re-embedded the first round(min(1, rate * t) * N) rows of one
fixed order (drift.retrieval.mixed.backfill.backfill_order: a job does not reshuffle as it goes).
Every `step_hours` each serving mode answers all queries and is scored by
drift.scoring.evaluate.evaluate:

- adapter_frozen:      the adapter fitted once on the initial pairs; new query -> adapter -> old
                       index. The migrated rows are ignored.
- adapter_refit:       the adapter refitted at each step on the initial pairs plus the rows
                       migrated so far (a migrated row has both vectors, so it is a free pair),
                       then served like adapter_frozen: the paper's continuous adaptation.
- backfill_status_quo: migrated rows answered from a new-model index over them (new query), the
                       rest from the old index (old query), the two lists merged (`merge`).
- backfill_adapter:    the same, with the refitted adapter's query on the old index.
- dual_index:          the old index over all rows (old query) and the new-model index over the
                       migrated rows (new query), rank-fused by RRF
                       (drift.retrieval.strategies.rrf_fuse); with every row migrated it is
                       drift.retrieval.strategies.dual_index.
- rerank_status_quo:   lazy re-rank (drift.retrieval.mixed.rerank.rerank, as the batch strategy
                       rerank/status_quo@K with K = `rerank_k`): the old index's top K for the old
                       query, re-scored with new-model document vectors; those not yet held are
                       encoded on demand (counted) and kept.
- rerank_union:        the same over the union of the status quo's and the refitted adapter's top
                       K (rerank/union@K).
References, constant in time: full_reindex (new query, full new index) and status_quo.

Choices, and why:
- Orders: random and hubness only. A popularity order learns from past traffic, and keeping the
  evaluated queries' own traffic out of it means cross-fitting (each query fold migrated in the
  order the other folds taught). In a timeline that gives every fold its own migrated set, refit
  adapter and partial index: no longer one background job. hubness is the traffic-free stand-in.
- Calibrated merges are cross-fitted as in drift.retrieval.mixed.backfill.backfill: each query
  fold is merged with an affine score map fitted on the other folds' traffic (what the base strategy
  serves them over the whole old index), on their top-k rows that are already migrated. With too
  few such rows the merge falls back to zscore, and the mode's notes say so.
- Refit pairs: (initial train pairs ∪ migrated rows) minus the validation pairs (kept out, for
  the adapter_val_cosine curve and early stopping) minus `excluded` rows (items equal to a query
  item are never pairs). A step where no row was migrated since the last one reuses the previous
  step's answers (a refit on the same pairs would be the same adapter, up to training noise).
- The step-0 refit is the frozen adapter (same pairs, same seed): every adapter mode starts equal.
- The partial new-model index is built once per step (through the IndexCache, so a rerun loads
  it) and shared by the backfill modes and dual_index; all rows migrated uses the full new index.
- Re-rank: one store of new-model vectors per rerank mode, kept through the whole timeline. It
  starts with the initial pairs (counted in new_doc_encodes for every mode) and, at each step,
  holds the rows migrated so far and every document encoded on demand before. Every step serves
  the whole query set, so "earlier queries" are the queries of every earlier step plus the rows
  answered before in this step (queries are answered in row order): on-demand encodes accumulate
  across steps, and a query re-served later finds its candidates held. The background job reuses
  a vector encoded on demand (it does not encode that row again), so every document is encoded
  once: per rerank mode, background_encodes (initial pairs plus migrated rows that were not
  encoded on demand first) + the on-demand encodes so far = its distinct new-model vectors. A
  cached vector equals a fresh encode, so a rerank answer does not depend on what the store
  holds, only its cost does. Consequence: rerank_status_quo's candidates never change (old index,
  old queries), so its answers are the same at every step and all its on-demand encodes fall at
  the first step; rerank_union's adapter candidates change with each refit, and it encodes the
  new ones on demand at that step.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from drift.adapters import Adapter, build_adapter
from drift.adapters.scaling import mean_cosine
from drift.core.errors import ConfigError, VectorError
from drift.core.rankings import StrategyResult
from drift.core.seeding import derive_seed
from drift.core.settings import from_mapping
from drift.core.vectors import check_vectors
from drift.retrieval.index import IndexCache, IndexSpec, search
from drift.retrieval.mixed.backfill import (
    MERGES,
    PartialIndex,
    backfill_order,
    partial_index,
    query_folds,
    serve_fold,
)
from drift.retrieval.mixed.rerank import DocumentVectors, rerank, union_candidates
from drift.retrieval.strategies import rrf_fuse
from drift.scoring.evaluate import PRIMARY_METRIC, evaluate
from drift.scoring.metrics import Qrels

MODES = (
    "adapter_frozen",
    "adapter_refit",
    "backfill_status_quo",
    "backfill_adapter",
    "dual_index",
    "rerank_status_quo",
    "rerank_union",
)
REFERENCES = ("full_reindex", "status_quo")
TIMELINE_ORDERS = ("random", "hubness")
# Modes served through an adapter (they report refit seconds and the validation cosine).
ADAPTER_MODES = ("adapter_frozen", "adapter_refit", "backfill_adapter", "rerank_union")
# Modes that serve the refitted adapter (the others serve the frozen one or none).
REFIT_MODES = ("adapter_refit", "backfill_adapter", "rerank_union")
# Modes that read the partial new-model index.
PARTIAL_MODES = ("backfill_status_quo", "backfill_adapter", "dual_index")
# Modes that re-rank old-index candidates with new-model vectors encoded on demand.
RERANK_MODES = ("rerank_status_quo", "rerank_union")
# Modes whose serving time is reported per step (the others are a search each).
TIMED_MODES = PARTIAL_MODES + RERANK_MODES
# Every metric is reported at this cut-off (the paper's R@10, MTEB's nDCG@10).
EVAL_K = 10


@dataclass
class TimelineConfig:
    """The `timeline` block of the config. See the module docstring for the modes."""

    hours: float = 24.0
    step_hours: float = 1.0
    rate: float = 0.05  # share of the corpus the background job re-embeds per hour
    order: str = "random"  # random | hubness
    merge: str = "calibrated"  # rrf | zscore | calibrated
    modes: list[str] = field(default_factory=lambda: list(MODES))
    adapter: dict[str, Any] = field(default_factory=lambda: {"kind": "procrustes"})
    until_complete: bool = True  # extend past `hours` until every row is migrated
    folds: int = 2  # query folds for the cross-fitted calibration
    rerank_k: int = 50  # candidates per source of the rerank modes (the K of rerank/<source>@K)

    def __post_init__(self) -> None:
        for name in ("hours", "step_hours", "rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"timeline.{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"timeline.{name} must be finite and >= 0, got {value}")
        if self.hours <= 0 or self.step_hours <= 0:
            raise ConfigError(
                f"timeline.hours ({self.hours}) and step_hours ({self.step_hours}) must be > 0"
            )
        steps = self.hours / self.step_hours
        if abs(steps - round(steps)) > 1e-9:
            raise ConfigError(
                f"timeline.hours={self.hours} is not a whole number of steps of {self.step_hours} h"
            )
        if self.rate == 0 and self.until_complete:
            raise ConfigError(
                "timeline.rate=0 never completes the backfill; set a positive "
                "rate or until_complete=false"
            )
        if self.order == "popularity":
            raise ConfigError(
                "timeline.order=popularity is not supported: keeping the evaluated queries' "
                "own traffic out of the order needs a different order per query fold, i.e. a "
                "different background job per fold; use random or hubness (traffic-free)"
            )
        if self.order not in TIMELINE_ORDERS:
            raise ConfigError(
                f"unknown timeline.order {self.order!r}; use one of {TIMELINE_ORDERS}"
            )
        if self.merge not in MERGES:
            raise ConfigError(f"unknown timeline.merge {self.merge!r}; use one of {MERGES}")
        self.modes = list(self.modes)
        unknown = sorted(set(self.modes) - set(MODES))
        if unknown or not self.modes or len(set(self.modes)) != len(self.modes):
            raise ConfigError(
                f"timeline.modes must name distinct modes among {MODES}, got {self.modes}"
            )
        if not isinstance(self.folds, int) or isinstance(self.folds, bool) or self.folds < 2:
            raise ConfigError(f"timeline.folds must be an integer >= 2, got {self.folds!r}")
        if (
            not isinstance(self.rerank_k, int)
            or isinstance(self.rerank_k, bool)
            or self.rerank_k < 1
        ):
            raise ConfigError(f"timeline.rerank_k must be an integer >= 1, got {self.rerank_k!r}")
        if not isinstance(self.adapter, Mapping) or not isinstance(self.adapter.get("kind"), str):
            raise ConfigError(
                f"timeline.adapter must be a mapping with a 'kind' (e.g. {{kind: procrustes}}) "
                f"plus that adapter's hyper-parameters, got {self.adapter!r}"
            )
        self.adapter = dict(self.adapter)
        self.new_adapter()  # an unknown kind or hyper-parameter fails now, not after hours

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TimelineConfig:
        """Build from a plain mapping (the config's `timeline` block); unknown keys are an error."""
        return from_mapping(cls, values, "timeline")

    def new_adapter(self) -> Adapter:
        hparams = {key: value for key, value in self.adapter.items() if key != "kind"}
        return build_adapter(self.adapter["kind"], **hparams)

    def hour_grid(self) -> np.ndarray:
        """The hours at which queries are answered: 0, step, ..., hours (or until complete)."""
        n_steps = round(self.hours / self.step_hours)
        if self.until_complete and self.rate * self.hours < 1:
            n_steps = max(n_steps, math.ceil(1 / (self.rate * self.step_hours) - 1e-9))
        return self.step_hours * np.arange(n_steps + 1)


@dataclass
class TimelineData:
    """Everything the timeline serves from; rows of the corpus arrays are the same items."""

    x_old: np.ndarray
    x_new: np.ndarray
    q_old: np.ndarray
    q_new: np.ndarray
    old_index: faiss.Index
    new_index: faiss.Index
    spec: IndexSpec
    index_cache: IndexCache
    train_rows: np.ndarray  # the initial adapter pairs (corpus rows)
    val_rows: np.ndarray  # held-out pairs: never trained on, scored by the validation cosine
    excluded: np.ndarray  # bool per corpus row: never a pair (its item equals a query item)
    k: int
    seed: int

    def __post_init__(self) -> None:
        self.x_old = check_vectors(
            self.x_old, name="old-model corpus vectors", dim=self.old_index.d
        )
        self.x_new = check_vectors(
            self.x_new, name="new-model corpus vectors", dim=self.new_index.d
        )
        self.q_old = check_vectors(self.q_old, name="old-model query vectors", dim=self.old_index.d)
        self.q_new = check_vectors(self.q_new, name="new-model query vectors", dim=self.new_index.d)
        n = self.x_new.shape[0]
        if self.x_old.shape[0] != n or self.old_index.ntotal != n or self.new_index.ntotal != n:
            raise VectorError(
                f"timeline: {self.x_old.shape[0]} old and {n} new corpus vectors, indexes of "
                f"{self.old_index.ntotal} and {self.new_index.ntotal}; all must be the same rows"
            )
        if self.q_old.shape[0] != self.q_new.shape[0]:
            raise VectorError(
                f"timeline: {self.q_old.shape[0]} old but {self.q_new.shape[0]} new query "
                "vectors; rows must be the same queries"
            )
        self.excluded = np.asarray(self.excluded)
        if self.excluded.dtype != bool or self.excluded.shape != (n,):
            raise VectorError(
                f"timeline: excluded must be a bool array of {n} corpus rows, got "
                f"{self.excluded.dtype} {self.excluded.shape}"
            )
        self.train_rows = np.asarray(self.train_rows, dtype=np.int64)
        self.val_rows = np.asarray(self.val_rows, dtype=np.int64)
        for name, rows in (("train_rows", self.train_rows), ("val_rows", self.val_rows)):
            if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= n)):
                raise VectorError(f"timeline: {name} must be corpus rows in [0, {n})")
        if self.k < EVAL_K:
            raise ConfigError(
                f"timeline: k must be at least {EVAL_K} (metrics @{EVAL_K}), got {self.k}"
            )

    @property
    def n(self) -> int:
        return self.x_new.shape[0]

    @property
    def pair_rows(self) -> np.ndarray:
        """The initial pairs, training and validation (sorted, distinct)."""
        return np.union1d(self.train_rows, self.val_rows)


@dataclass
class TimelineStep:
    """One point in time: what every mode (and reference) answered, and what it took."""

    hour: float
    n_migrated: int
    new_doc_encodes: int  # migrated rows ∪ initial pairs (a pair row needs no second encode)
    answers: dict[str, np.ndarray]  # mode or reference -> ranked row ids [nq, k]
    changed: bool  # False: nothing migrated since the previous step, same answers
    refit_seconds: float  # the step's adapter (re)fit; 0 when none
    val_cosine: float | None  # the served adapter's mean cosine on the validation pairs
    partial_index_seconds: float
    serve_seconds: dict[str, float]
    notes: dict[str, list[str]]
    # Per rerank mode: documents encoded on demand at this step, and the initial pairs plus
    # migrated rows in its store that were not encoded on demand first (cumulative).
    on_demand_encodes: dict[str, int] = field(default_factory=dict)
    background_encodes: dict[str, int] = field(default_factory=dict)


@dataclass
class RerankStore:
    """One rerank mode's new-model document vectors through the timeline (module docstring)."""

    documents: DocumentVectors
    on_demand: np.ndarray  # bool per corpus row: first encoded on demand, by a query

    @classmethod
    def start(cls, data: TimelineData) -> RerankStore:
        """A store holding the initial pairs (encoded by both models before the migration)."""
        documents = DocumentVectors(
            lambda rows: data.x_new[rows], data.n, already_encoded=data.pair_rows
        )
        return cls(documents, np.zeros(data.n, dtype=bool))

    def migrate(self, rows: np.ndarray) -> int:
        """Hold the rows the background job has migrated; its encodes so far (initial pairs
        included): a row already encoded on demand is reused, not encoded again."""
        self.documents.hold(rows)
        return int((self.documents.encoded & ~self.on_demand).sum())

    def serve(
        self,
        name: str,
        candidates: np.ndarray,
        fallback: np.ndarray,
        q_new: np.ndarray,
        k: int,
    ) -> tuple[np.ndarray, int]:
        """(re-ranked ids [nq, k], documents encoded on demand now):
        drift.retrieval.mixed.rerank.rerank
        with this store, the queries answered in row order."""
        held = self.documents.encoded.copy()
        result = rerank(name, candidates, fallback, q_new, self.documents, k)
        self.on_demand |= self.documents.encoded & ~held
        return result.ids, int(result.cost["on_demand_encodes"])


def timeline_steps(cfg: TimelineConfig, data: TimelineData) -> Iterator[TimelineStep]:
    """Serve every mode at every hour of `cfg.hour_grid()` (see the module docstring)."""
    hours = cfg.hour_grid()
    counts = [round(min(1.0, cfg.rate * float(h)) * data.n) for h in hours]
    order = backfill_order(
        cfg.order, data.n, seed=derive_seed(data.seed, "timeline/order"), x_old=data.x_old
    )
    folds = query_folds(len(data.q_new), cfg.folds, derive_seed(data.seed, "timeline/folds"))
    status_quo = search(data.old_index, data.q_old, data.k, data.spec)
    references = {
        "full_reindex": search(data.new_index, data.q_new, data.k, data.spec)[1],
        "status_quo": status_quo[1],
    }
    refits = any(mode in cfg.modes for mode in REFIT_MODES)
    frozen: Adapter | None = None
    if any(mode in cfg.modes for mode in ADAPTER_MODES):
        frozen, frozen_seconds = fit_adapter(
            cfg, data, refit_rows(data, np.zeros(data.n, dtype=bool)), step=0
        )
        frozen_queries = frozen.transform(data.q_new)
        frozen_ranking = search(data.old_index, frozen_queries, data.k, data.spec)
    stores = {mode: RerankStore.start(data) for mode in RERANK_MODES if mode in cfg.modes}
    if stores:
        depth = min(cfg.rerank_k, data.n)
        status_quo_candidates = search(data.old_index, data.q_old, depth, data.spec)[1]
        # What fills a list past its candidates, as for rerank/<source>@K: the status quo at
        # depth max(K, k).
        fallback = status_quo_candidates if depth >= data.k else status_quo[1]

    previous: TimelineStep | None = None
    for step, (hour, n_migrated) in enumerate(zip(hours, counts, strict=True)):
        if previous is not None and n_migrated == previous.n_migrated:
            previous = dataclasses.replace(
                previous,
                hour=float(hour),
                changed=False,
                refit_seconds=0.0,
                partial_index_seconds=0.0,
                serve_seconds={},
                # Same candidates, all held since the previous step: nothing to encode.
                on_demand_encodes=dict.fromkeys(previous.on_demand_encodes, 0),
            )
            yield previous
            continue
        migrated = np.zeros(data.n, dtype=bool)
        migrated[order[:n_migrated]] = True
        answers = dict(references)
        serve_seconds: dict[str, float] = {}
        notes: dict[str, list[str]] = {}

        adapter, adapter_queries, ranking, refit_seconds = frozen, None, None, 0.0
        if frozen is not None:
            adapter_queries, ranking = frozen_queries, frozen_ranking
            if step == 0:
                refit_seconds = frozen_seconds
            elif refits:
                adapter, refit_seconds = fit_adapter(cfg, data, refit_rows(data, migrated), step)
                adapter_queries = adapter.transform(data.q_new)
                ranking = search(data.old_index, adapter_queries, data.k, data.spec)
            if "adapter_frozen" in cfg.modes:
                answers["adapter_frozen"] = frozen_ranking[1]
            if "adapter_refit" in cfg.modes:
                answers["adapter_refit"] = ranking[1]

        partial_seconds = 0.0
        if any(mode in cfg.modes for mode in PARTIAL_MODES):
            start = time.perf_counter()
            partial = current_partial(data, order[:n_migrated])
            partial_seconds = time.perf_counter() - start
        for mode, base_queries, base_ranking in (
            ("backfill_status_quo", data.q_old, status_quo),
            ("backfill_adapter", adapter_queries, ranking),
        ):
            if mode in cfg.modes:
                start = time.perf_counter()
                answers[mode], notes[mode] = serve_backfill(
                    cfg, data, partial, base_queries, base_ranking, folds
                )
                serve_seconds[mode] = time.perf_counter() - start
        if "dual_index" in cfg.modes:
            start = time.perf_counter()
            answers["dual_index"] = serve_dual_index(data, partial, status_quo[1])
            serve_seconds["dual_index"] = time.perf_counter() - start
        on_demand: dict[str, int] = {}
        background: dict[str, int] = {}
        for mode, store in stores.items():
            start = time.perf_counter()
            candidates = status_quo_candidates
            if mode == "rerank_union":
                adapter_candidates = search(data.old_index, adapter_queries, depth, data.spec)[1]
                candidates = union_candidates(status_quo_candidates, adapter_candidates)
            background[mode] = store.migrate(order[:n_migrated])
            answers[mode], on_demand[mode] = store.serve(
                mode, candidates, fallback, data.q_new, data.k
            )
            serve_seconds[mode] = time.perf_counter() - start

        previous = TimelineStep(
            hour=float(hour),
            n_migrated=n_migrated,
            new_doc_encodes=int(np.union1d(order[:n_migrated], data.pair_rows).size),
            answers=answers,
            changed=True,
            refit_seconds=refit_seconds,
            val_cosine=validation_cosine(adapter, data) if adapter is not None else None,
            partial_index_seconds=partial_seconds,
            serve_seconds=serve_seconds,
            notes=notes,
            on_demand_encodes=on_demand,
            background_encodes=background,
        )
        yield previous


def run_timeline(
    cfg: TimelineConfig,
    data: TimelineData,
    *,
    knn_truth: np.ndarray | None,
    qrels: Qrels | None,
    n_boot: int = 200,
) -> dict[str, Any]:
    """The timeline as a JSON-able dict (layout in `timeline_record`'s docstring).

    knn_truth: exact new-model top-K row ids [nq, K >= 10] (the paper's protocol); qrels: per
    query row {corpus row: relevance}. At least one is needed. Every step is scored with the
    same bootstrap seed, so intervals are paired across modes and across time.
    """
    started = time.perf_counter()
    steps: list[TimelineStep] = []
    evaluations: list[dict[str, Any]] = []
    evaluate_seconds: list[float] = []
    for step in timeline_steps(cfg, data):
        start = time.perf_counter()
        if step.changed:
            results = {
                name: StrategyResult(name, True, ids=ids) for name, ids in step.answers.items()
            }
            evaluations.append(
                evaluate(
                    results,
                    knn_truth_ids=knn_truth,
                    qrels=qrels,
                    ks=(EVAL_K,),
                    n_boot=n_boot,
                    seed=derive_seed(data.seed, "timeline/bootstrap"),
                )
            )
        else:
            evaluations.append(evaluations[-1])
        evaluate_seconds.append(time.perf_counter() - start)
        steps.append(step)
    record = timeline_record(cfg, data, steps, evaluations, n_boot=n_boot)
    record["timings"] |= {
        "evaluate_seconds": evaluate_seconds,
        "total_seconds": time.perf_counter() - started,
    }
    return record


def timeline_record(
    cfg: TimelineConfig,
    data: TimelineData,
    steps: list[TimelineStep],
    evaluations: list[dict[str, Any]],
    *,
    n_boot: int,
) -> dict[str, Any]:
    """The result layout (every list has one entry per step):

    {"config", "hours", "share_migrated", "n_migrated", "new_doc_encodes" (the background job's:
     migrated rows ∪ initial pairs), "n_corpus", "n_queries", "n_initial_pairs",
     "completes_at_hours", "primary_metrics" (e.g. ["knn/recall@10", "qrels/ndcg@10"]),
     "modes": {mode: {"<protocol>/<metric>@10": {"mean", "ci_low", "ci_high"}, ... ,
                      "qrels/arr_ndcg@10" (vs full_reindex, when qrels),
                      "refit_seconds", "adapter_val_cosine" (adapter modes),
                      "on_demand_encodes" (at each step), "background_encodes" (cumulative),
                      "new_doc_encodes" (their sum so far: distinct documents; rerank modes),
                      "notes"}},
     "references": {"full_reindex" | "status_quo": {"<protocol>/<metric>@10": {...}}},
     "timings": {"partial_index_seconds", "refit_seconds", "serve_seconds": {mode: [...]},
                 "evaluate_seconds", "total_seconds"}}
    """
    complete = [s.hour for s in steps if s.n_migrated == data.n]
    protocols = evaluations[0]["protocols"]

    def series(name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for protocol, block in protocols.items():
            for metric in block["strategies"][name]["metrics"]:
                out[f"{protocol}/{metric}"] = _curve(
                    [
                        e["protocols"][protocol]["strategies"][name]["metrics"][metric]
                        for e in evaluations
                    ]
                )
            if protocol == "qrels":
                arr = f"arr_{PRIMARY_METRIC['qrels']}"
                if arr in block["strategies"][name]["arr"]:
                    out[f"qrels/{arr}"] = _curve(
                        [
                            e["protocols"]["qrels"]["strategies"][name]["arr"][arr]
                            for e in evaluations
                        ]
                    )
        return out

    modes: dict[str, dict[str, Any]] = {}
    for mode in cfg.modes:
        modes[mode] = series(mode)
        if mode in ADAPTER_MODES:
            frozen = mode == "adapter_frozen"
            modes[mode]["refit_seconds"] = [
                s.refit_seconds if (not frozen or i == 0) else 0.0 for i, s in enumerate(steps)
            ]
            if data.val_rows.size:
                modes[mode]["adapter_val_cosine"] = [
                    steps[0].val_cosine if frozen else s.val_cosine for s in steps
                ]
        if mode in RERANK_MODES:
            on_demand = [s.on_demand_encodes[mode] for s in steps]
            background = [s.background_encodes[mode] for s in steps]
            modes[mode]["on_demand_encodes"] = on_demand
            modes[mode]["background_encodes"] = background
            modes[mode]["new_doc_encodes"] = [
                b + c for b, c in zip(background, itertools.accumulate(on_demand), strict=True)
            ]
        modes[mode]["notes"] = sorted({n for s in steps for n in s.notes.get(mode, [])})
    references = {
        name: {key: _point(curve) for key, curve in series(name).items()} for name in REFERENCES
    }
    return {
        "config": dataclasses.asdict(cfg),
        "hours": [s.hour for s in steps],
        "share_migrated": [s.n_migrated / data.n for s in steps],
        "n_migrated": [s.n_migrated for s in steps],
        "new_doc_encodes": [s.new_doc_encodes for s in steps],
        "n_corpus": data.n,
        "n_queries": int(data.q_new.shape[0]),
        "n_initial_pairs": int(data.pair_rows.size),
        "completes_at_hours": complete[0] if complete else None,
        "k": data.k,
        "seed": data.seed,
        "n_boot": n_boot,
        "index": data.spec.__dict__,
        "primary_metrics": [f"{p}/{PRIMARY_METRIC[p]}" for p in protocols],
        "modes": modes,
        "references": references,
        "timings": {
            "partial_index_seconds": [s.partial_index_seconds for s in steps],
            "refit_seconds": [s.refit_seconds for s in steps],
            "serve_seconds": {
                mode: [s.serve_seconds.get(mode, 0.0) for s in steps]
                for mode in cfg.modes
                if mode in TIMED_MODES
            },
        },
    }


def summarise_timeline(result: Mapping[str, Any], metric: str | None = None) -> str:
    """A Markdown table, one row per hour and one column per mode: `metric`'s mean (default:
    the first primary metric, knn/recall@10 when the kNN protocol ran)."""
    metric = metric or result["primary_metrics"][0]
    modes = list(result["modes"])
    if any(metric not in result["modes"][mode] for mode in modes):
        raise ConfigError(
            f"metric {metric!r} is not in this timeline; it has "
            f"{result['primary_metrics']} (and the other metrics @{EVAL_K})"
        )
    lines = [
        f"Migration timeline, {metric} (mean over {result['n_queries']} queries): "
        f"{result['config']['rate']:g} of {result['n_corpus']} rows re-embedded per hour, "
        f"{result['config']['order']} order, {result['config']['merge']} merge.",
        "",
        "| hour | migrated | " + " | ".join(modes) + " |",
        "|---|---|" + "---|" * len(modes),
    ]
    for i, hour in enumerate(result["hours"]):
        cells = [f"{result['modes'][mode][metric]['mean'][i]:.3f}" for mode in modes]
        lines.append(
            f"| {hour:g} | {100 * result['share_migrated'][i]:.0f}% | " + " | ".join(cells) + " |"
        )
    refs = ", ".join(
        f"{name} {result['references'][name][metric]['mean']:.3f}" for name in REFERENCES
    )
    lines += ["", f"References (constant): {refs}."]
    for mode in modes:
        if "on_demand_encodes" in result["modes"][mode]:
            encodes = result["modes"][mode]
            lines.append(
                f"{mode}: {encodes['new_doc_encodes'][-1]:,} new-model document encodes by the "
                f"end, {sum(encodes['on_demand_encodes']):,} of them on demand "
                f"({encodes['on_demand_encodes'][0]:,} at hour {result['hours'][0]:g})."
            )
    return "\n".join(lines)


# -- the pieces one step is made of -----------------------------------------------------------
def fit_adapter(
    cfg: TimelineConfig, data: TimelineData, rows: np.ndarray, step: int
) -> tuple[Adapter, float]:
    """A fresh adapter fitted on corpus `rows` (validated on data.val_rows); (adapter, seconds)."""
    val = data.val_rows if data.val_rows.size else None
    start = time.perf_counter()
    adapter = cfg.new_adapter().fit(
        data.x_new[rows],
        data.x_old[rows],
        x_new_val=data.x_new[val] if val is not None else None,
        x_old_val=data.x_old[val] if val is not None else None,
        seed=derive_seed(data.seed, f"timeline/refit/{step}"),
    )
    return adapter, time.perf_counter() - start


def refit_rows(data: TimelineData, migrated: np.ndarray) -> np.ndarray:
    """Refit pairs: initial train pairs ∪ migrated rows, minus validation and excluded rows."""
    rows = np.union1d(data.train_rows, np.flatnonzero(migrated))
    rows = np.setdiff1d(rows, data.val_rows)
    return rows[~data.excluded[rows]]


def current_partial(data: TimelineData, rows: np.ndarray) -> PartialIndex:
    """The new-model index over the migrated rows; the full new index once all are migrated."""
    if rows.size == data.n:
        return PartialIndex(data.new_index, np.arange(data.n))
    return partial_index(data.x_new, rows, data.spec, data.index_cache)


def serve_backfill(
    cfg: TimelineConfig,
    data: TimelineData,
    partial: PartialIndex,
    base_queries: np.ndarray,
    base_ranking: tuple[np.ndarray, np.ndarray],
    folds: list[np.ndarray],
) -> tuple[np.ndarray, list[str]]:
    """Backfill answers (ids [nq, k]) and notes. Each query fold's calibration is fitted on the
    other folds' `base_ranking` (the base strategy over the whole old index)."""
    ids = np.full((len(data.q_new), data.k), -1, dtype=np.int64)
    notes: list[str] = []
    for fold in folds:
        (_, ids[fold]), _, fold_notes = serve_fold(
            fold,
            merge=cfg.merge,
            partial=partial,
            past_traffic=base_ranking,
            base_queries=base_queries,
            q_new=data.q_new,
            x_new=data.x_new,
            old_index=data.old_index,
            spec=data.spec,
            k=data.k,
        )
        notes += fold_notes
    return ids, sorted(set(notes))


def serve_dual_index(
    data: TimelineData, partial: PartialIndex, status_quo_ids: np.ndarray
) -> np.ndarray:
    """RRF of the partial new index (new query) and the whole old index (old query), new first
    (as drift.retrieval.strategies.dual_index); with nothing migrated, the status quo's ranking."""
    new_ids = np.full((len(data.q_new), data.k), -1, dtype=np.int64)
    if partial.index is not None:
        _, positions = search(partial.index, data.q_new, data.k, data.spec)
        new_ids = np.where(positions >= 0, partial.rows[np.maximum(positions, 0)], -1)
    return rrf_fuse([new_ids, status_quo_ids], data.k)[1]


def validation_cosine(adapter: Adapter, data: TimelineData) -> float | None:
    """Mean cosine between the mapped and the true old vectors of the validation pairs."""
    if data.val_rows.size == 0:
        return None
    return mean_cosine(adapter.transform(data.x_new[data.val_rows]), data.x_old[data.val_rows])


def _curve(summaries: list[Mapping[str, Any]]) -> dict[str, list[float]]:
    return {key: [float(s[key]) for s in summaries] for key in ("mean", "ci_low", "ci_high")}


def _point(curve: Mapping[str, list[float]]) -> dict[str, float]:
    return {key: values[0] for key, values in curve.items()}

"""What run_experiment returns, the outcome of one run: what its result file records of it
(drift.core.records.build_record adds the config, provenance and the file's own fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drift.adapters import Adapter
from drift.core.rankings import StrategyResult
from drift.data.types import RetrievalData
from drift.encoders import Encoder
from drift.encoders.cache import CachedEncoder, ModelPair
from drift.experiment.stages import RunContext, RunPairs
from drift.retrieval.index import IndexPair

# Every seed a run derives from its own, by purpose: recorded so each can be traced.
DERIVED_SEEDS = ("subsample", "pairs", "bootstrap", "drift", "gate", "mixed", "stream", "timeline")


def encoder_summary(encoder: Encoder) -> dict[str, Any]:
    """A model as its result file records it; `weights` says where its weights came from
    (drift.encoders.resolver.weights_record; None for an encoder that does not say)."""
    built = encoder.encoder if isinstance(encoder, CachedEncoder) else encoder
    return {
        "name": encoder.name,
        "revision": encoder.revision,
        "dim": encoder.dim,
        "modality": encoder.modality,
        "real_weights": encoder.real_weights,
        "preprocessing": encoder.preprocessing,
        "weights": getattr(built, "weights", None),
    }


def run_outcome(
    run: RunContext,
    *,
    data: RetrievalData,
    models: ModelPair,
    drift: dict[str, Any],
    pairs: RunPairs,
    adapters: Mapping[str, Adapter],
    artifacts: dict[str, str],
    gate: dict[str, Any],
    indexes: IndexPair,
    results: Mapping[str, StrategyResult],
    evaluation: dict[str, Any],
    analyses: dict[str, Any],
    warnings: list[str],
    elapsed: float,
) -> dict[str, Any]:
    """The record of a run that took `elapsed` seconds, from what its steps returned."""
    separate_query = models.separate_query
    return {
        "task_name": run.cfg["task_name"],
        "seed": run.seed,
        "seeds": {name: run.seed_for(name) for name in DERIVED_SEEDS},
        "real_weights": models.real_weights,
        "synthetic": data.synthetic,
        "offline": run.offline,
        "models": {side: encoder_summary(e) for side, e in models.corpus.items()},
        # null: queries went through the corpus encoder of that side
        "query_models": {
            side: encoder_summary(separate_query[side]) if side in separate_query else None
            for side in models.corpus
        },
        "dataset": data.summary(),  # meta "subsample" records full and effective sizes
        "drift": drift,
        "pairs": pairs.summary(),
        "adapters": {name: a.describe() for name, a in adapters.items()},
        "artifacts": artifacts,
        "gate": gate,
        "index": indexes.summary(),
        "cache": models.cache.stats,
        "timings": {**run.timings, "total": elapsed},
        "strategies": {name: r.summary() for name, r in results.items()},
        "metrics": evaluation,
        **analyses,
        "warnings": warnings,
    }

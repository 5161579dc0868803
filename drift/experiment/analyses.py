"""Analyses of one run beyond its strategy table: the query stream and the migration timeline.

Both reuse what the experiment already computed (vectors from the embedding cache, indexes,
strategy answers, ground truth), so they cost no encode beyond measuring the new model's
throughput once. `run_analyses` runs those that `stream.enabled` and `timeline.enabled` ask for;
`stream.demand.enabled` adds demand-driven migration (drift.migration.demand) along the same
stream, in the stream section's `demand` part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drift.core.errors import ConfigError
from drift.core.rankings import StrategyResult
from drift.data.pairs import query_text_mask
from drift.data.types import RetrievalData
from drift.encoders import Encoder
from drift.encoders.cache import EncodedVectors, ModelPair
from drift.experiment.stages import RunContext, RunPairs, Truth
from drift.migration.cost import measure_encode_rate
from drift.migration.demand import serve_demand
from drift.migration.stream import StreamStrategy, make_stream, served_curves, simulate_stream
from drift.migration.timeline import TimelineConfig, TimelineData, run_timeline
from drift.retrieval.index import IndexPair
from drift.retrieval.mixed.backfill import backfill_order
from drift.scoring.metrics import Qrels, knn_metrics, qrels_metrics

# Per-query quality tracked along streams and timelines: each protocol's primary metric.
QUALITY_K = 10


def per_query_quality(
    ids: np.ndarray, knn_truth: np.ndarray | None, qrels: Qrels | None
) -> dict[str, np.ndarray]:
    """{"knn/recall@10", "qrels/ndcg@10"} per query (the protocols that are available)."""
    quality = {}
    if knn_truth is not None:
        quality[f"knn/recall@{QUALITY_K}"] = knn_metrics(ids, knn_truth, (QUALITY_K,))[
            f"recall@{QUALITY_K}"
        ]
    if qrels is not None:
        quality[f"qrels/ndcg@{QUALITY_K}"] = qrels_metrics(ids, qrels, (QUALITY_K,))[
            f"ndcg@{QUALITY_K}"
        ]
    return quality


def new_model_encode_rate(
    settings: Mapping[str, Any], encoder: Encoder, documents: Sequence[str], seed: int
) -> tuple[float, str]:
    """(documents/s, where it came from): the configured rate, or one measured here on a seeded
    sample of the corpus with the bare encoder (no cache)."""
    if settings["encode_rate"] is not None:
        rate = float(settings["encode_rate"])
        if not rate > 0:
            raise ConfigError(f"stream.encode_rate must be positive, got {rate}")
        return rate, "configured (stream.encode_rate)"
    n = min(int(settings["encode_rate_sample"]), len(documents))
    if n < 1:
        raise ConfigError("stream.encode_rate_sample must be at least 1")
    rows = np.random.default_rng(seed).choice(len(documents), size=n, replace=False)
    rate = measure_encode_rate(encoder, [documents[i] for i in rows])
    return rate, f"measured on {n} corpus documents with {encoder.name} on this machine"


def stream_strategies(
    results: Mapping[str, StrategyResult],
    *,
    knn_truth: np.ndarray | None,
    qrels: Qrels | None,
    pair_rows: np.ndarray,
) -> dict[str, StreamStrategy]:
    """Each deployable strategy of the run as a stream participant.

    Rerank pays its candidates on demand (holding the adapter's pairs from the start when its
    candidates come from the adapter); every other strategy pays its cost up front.
    """
    strategies = {}
    for name, result in results.items():
        if not result.applicable or not result.cost:  # the ceiling is not deployable
            continue
        quality = per_query_quality(result.ids, knn_truth, qrels)
        warm = result.timings.get("us_per_query", 0.0) / 1e6
        if result.candidates is not None:
            uses_pairs = result.params.get("source") != "status_quo"
            strategies[name] = StreamStrategy(
                per_query=quality,
                upfront_encodes=int(pair_rows.size) if uses_pairs else 0,
                candidates=result.candidates,
                warm_seconds_per_query=warm,
                already_encoded=pair_rows if uses_pairs else None,
            )
        else:
            strategies[name] = StreamStrategy(
                per_query=quality,
                upfront_encodes=int(result.cost["new_doc_encodes"]),
                warm_seconds_per_query=warm,
            )
    return strategies


def query_stream(
    settings: Mapping[str, Any],
    results: Mapping[str, StrategyResult],
    *,
    knn_truth: np.ndarray | None,
    qrels: Qrels | None,
    pair_rows: np.ndarray,
    encoder: Encoder,
    documents: Sequence[str],
    n_queries: int,
    seed: int,
    vectors: EncodedVectors | None = None,
    k: int = QUALITY_K,
) -> dict[str, Any]:
    """The `stream` section of a result record (see drift.migration.stream); with
    `settings["demand"]["enabled"]`, its `demand` part too (`vectors` needed then)."""
    rate, source = new_model_encode_rate(settings, encoder, documents, seed)
    stream = make_stream(
        n_queries,
        int(settings["length"]),
        popularity=settings["popularity"],
        zipf_s=float(settings["zipf_s"]),
        seed=seed,
    )
    demand = settings["demand"]
    simulated = simulate_stream(
        stream,
        stream_strategies(results, knn_truth=knn_truth, qrels=qrels, pair_rows=pair_rows),
        n_corpus=len(documents),
        encode_rate=rate,
        capacity=None if settings["capacity"] is None else int(settings["capacity"]),
        window=int(demand["window"]) if demand["enabled"] else None,
    )
    section = {
        "config": dict(settings),
        "encode_rate_source": source,
        "popularity": settings["popularity"],
        **simulated,
    }
    if demand["enabled"]:
        if vectors is None:
            raise ConfigError("stream.demand needs the run's vectors")
        section["demand"] = demand_migration(
            demand,
            results,
            stream,
            vectors,
            knn_truth=knn_truth,
            qrels=qrels,
            pair_rows=pair_rows,
            encode_rate=rate,
            checkpoints=np.asarray(simulated["checkpoints"]),
            k=k,
            seed=seed,
        )
    return section


def demand_migration(
    settings: Mapping[str, Any],
    results: Mapping[str, StrategyResult],
    stream: np.ndarray,
    vectors: EncodedVectors,
    *,
    knn_truth: np.ndarray | None,
    qrels: Qrels | None,
    pair_rows: np.ndarray,
    encode_rate: float,
    checkpoints: np.ndarray,
    k: int,
    seed: int,
) -> dict[str, Any]:
    """The stream section's `demand` part: per source, demand-driven migration served along
    `stream` (drift.migration.demand) as curves shaped like the stream's strategies', named
    demand/<source>@<depth>. Its old-side candidates and warm time per query are those of the
    run's rerank/<source>@<depth> (validation makes sure it ran); the adapter's pairs are held
    from the start for the sources that use the adapter. With `background` > 0 a background job
    writes into the same partial index in a seeded random order."""
    depth = int(settings["depth"])
    new_depth = depth if settings["new_depth"] is None else int(settings["new_depth"])
    background = float(settings["background"])
    order = backfill_order("random", len(vectors.x_new), seed=seed) if background else None
    strategies = {}
    for source in settings["sources"]:
        lazy = results.get(f"rerank/{source}@{depth}")
        if lazy is None or lazy.candidates is None:
            raise ConfigError(
                f"stream.demand source {source!r} at depth {depth} reuses the candidates of "
                f"rerank/{source}@{depth}, which the run did not compute"
            )
        served = serve_demand(
            stream,
            lazy.candidates,
            vectors.q_new,
            vectors.x_new,
            k=k,
            new_depth=new_depth,
            held=None if source == "status_quo" else pair_rows,
            background=background,
            order=order,
            show_progress=True,
        )
        quality = per_query_quality(
            served.ids,
            None if knn_truth is None else knn_truth[stream],
            None if qrels is None else [qrels[q] for q in stream],
        )
        strategies[f"demand/{source}@{depth}"] = served_curves(
            served.cold,
            quality,
            upfront=served.upfront,
            warm_seconds=lazy.timings.get("us_per_query", 0.0) / 1e6,
            n_corpus=len(vectors.x_new),
            encode_rate=encode_rate,
            points=checkpoints,
            window=int(settings["window"]),
            background=served.background if background else None,
        ) | {"lazy": f"rerank/{source}@{depth}", "partial_index_scans": served.scans}
    return {
        "config": {**settings, "new_depth": new_depth},
        "strategies": strategies,
    }


def timeline_config(
    settings: Mapping[str, Any], adapter_methods: Mapping[str, Any]
) -> TimelineConfig:
    """The `timeline` block as a TimelineConfig; its adapter names an `adapter.methods` entry,
    refitted (or frozen) with that entry's hyper-parameters and no DSM."""
    name = settings["adapter"]
    if name not in adapter_methods:
        raise ConfigError(
            f"timeline.adapter={name!r} is not in adapter.methods {sorted(adapter_methods)}"
        )
    values = {key: value for key, value in settings.items() if key not in ("enabled", "n_boot")}
    return TimelineConfig.from_dict(
        {**values, "adapter": {"kind": name, **(adapter_methods[name] or {})}}
    )


def run_analyses(
    run: RunContext,
    results: Mapping[str, StrategyResult],
    truth: Truth,
    *,
    data: RetrievalData,
    models: ModelPair,
    vectors: EncodedVectors,
    indexes: IndexPair,
    pairs: RunPairs,
) -> dict[str, Any]:
    """The `stream` and `timeline` sections of a result record, for those the config enables
    (timed as stream and timeline); {} when it enables neither."""
    cfg, timings = run.cfg, run.timings
    analyses: dict[str, Any] = {}
    if cfg["stream"]["enabled"]:
        with timings("stream"):
            analyses["stream"] = query_stream(
                cfg["stream"],
                results,
                knn_truth=truth.knn,
                qrels=truth.qrels,
                pair_rows=pairs.split.rows,
                encoder=models.corpus["new"].encoder,
                documents=data.corpus,
                n_queries=len(data.queries),
                seed=run.seed_for("stream"),
                vectors=vectors,
                k=run.k,
            )
    if cfg["timeline"]["enabled"]:
        with timings("timeline"):
            analyses["timeline"] = run_timeline(
                timeline_config(cfg["timeline"], cfg["adapter"]["methods"]),
                TimelineData(
                    x_old=vectors.x_old,
                    x_new=vectors.x_new,
                    q_old=vectors.q_old,
                    q_new=vectors.q_new,
                    old_index=indexes.old,
                    new_index=indexes.new,
                    spec=indexes.spec,
                    index_cache=indexes.cache,
                    train_rows=pairs.split.train,
                    # Its own refits never feed the gate: the gate pairs validate them too,
                    # and count among the documents both models encoded.
                    val_rows=np.union1d(pairs.split.val, pairs.split.gate),
                    excluded=query_text_mask(data),
                    k=run.k,
                    seed=run.seed_for("timeline"),
                ),
                knn_truth=truth.knn,
                qrels=truth.qrels,
                n_boot=int(cfg["timeline"]["n_boot"]),
            )
    return analyses

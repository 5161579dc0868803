"""One experiment of the paper: encode, sample pairs, fit adapters, index, answer, score.

`run_experiment(config)` takes the resolved config as a plain dict (see drift.cli.config.to_plain)
and returns the result record that drift.core.records writes to JSON. It is the only place where the
stages meet; each stage takes plain values.
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.adapters import Adapter, build_adapter
from drift.core.errors import ConfigError, DataError, VectorError
from drift.core.rankings import StrategyResult
from drift.core.records import config_hash
from drift.core.seeding import derive_seed, seed_everything
from drift.core.timing import Timings
from drift.data import load_data
from drift.data.pairs import (
    HELD_OUT_QUERIES,
    PairVectors,
    check_pair_role_name,
    held_out_queries,
    pair_vectors,
    requested_pairs,
    sample_pairs,
)
from drift.data.subsample import subsample
from drift.data.types import RetrievalData
from drift.encoders import Encoder, shared_encoder
from drift.encoders.cache import CachedEncoder, EmbeddingCache
from drift.encoders.resolver import is_offline
from drift.experiment.analyses import query_stream, timeline_config
from drift.migration.gate import pool_estimates
from drift.migration.timeline import TimelineData, run_timeline
from drift.retrieval.index import IndexCache, IndexSpec, exact_search
from drift.retrieval.mixed.plan import MIXED_FAMILIES, paper_strategy_costs, run_mixed_strategies
from drift.retrieval.strategies import run_strategies
from drift.scoring.drift_measures import drift_measures
from drift.scoring.evaluate import evaluate

log = logging.getLogger(__name__)


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


def build_adapters(adapter_cfg: dict[str, Any]) -> dict[str, Adapter]:
    """One adapter per method and DSM setting, named e.g. "procrustes" and "procrustes+dsm"."""
    adapters = {}
    for method, hparams in adapter_cfg["methods"].items():
        for dsm in adapter_cfg["dsm"]:
            name = f"{method}+dsm" if dsm else method
            adapters[name] = build_adapter(method, **(hparams or {}), dsm=bool(dsm))
    if not adapters:
        raise ConfigError("adapter.methods is empty: name at least one adapter to fit")
    return adapters


def query_text_mask(data: RetrievalData) -> np.ndarray:
    """Corpus rows whose item equals a query item: never used as adapter training pairs."""
    queries = set(data.queries)
    return np.fromiter(
        (item in queries for item in data.corpus), dtype=bool, count=len(data.corpus)
    )


def load_unlimited(
    spec: dict[str, Any], loaded: RetrievalData, seed: int, data_dir: Path
) -> RetrievalData:
    """The dataset without its own size limits (`dataset.max_corpus` / `max_queries`), where the
    queries a run holds out come from; `loaded` itself when the dataset sets none."""
    limits = {key: None for key in ("max_corpus", "max_queries") if spec.get(key) is not None}
    return load_data({**spec, **limits}, seed=seed, data_dir=data_dir) if limits else loaded


def qrels_by_row(data: RetrievalData) -> list[dict[int, int]] | None:
    if data.qrels is None:
        return None
    row_of = {doc_id: row for row, doc_id in enumerate(data.corpus_ids)}
    return [
        {row_of[d]: rel for d, rel in data.qrels.get(qid, {}).items()} for qid in data.query_ids
    ]


def run_experiment(cfg: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    seed = int(cfg["seed"])
    seed_everything(seed)
    timings = Timings()
    paths = {k: Path(v) for k, v in cfg["paths"].items()}
    offline = is_offline(cfg["offline"])
    caught: list[str] = []

    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")

        with timings("load_data"):
            loaded = load_data(cfg["dataset"], seed=seed, data_dir=paths["data_dir"])
            limits = cfg["data_limits"]
            data = subsample(
                loaded,
                max_corpus=limits["max_corpus"],
                max_queries=limits["max_queries"],
                seed=derive_seed(seed, "subsample"),
                corpus_subset=limits["corpus_subset"],
            ).validate()

        cache = EmbeddingCache(paths["embedding_cache_dir"])
        encoders: dict[str, CachedEncoder] = {}
        # Query-side encoders: the corpus encoders unless {side}_query_encoder names another
        # tower of the same model (e.g. CLIP text towers for caption queries to an image corpus).
        query_encoders: dict[str, CachedEncoder] = {}

        def load_encoder(spec: dict[str, Any]) -> CachedEncoder:
            encoder = shared_encoder(
                spec,
                device=cfg["device"],
                offline=offline,
                model_cache_dir=paths["model_cache_dir"],
            )
            return CachedEncoder(encoder, cache, chunk_size=cfg["encode"]["chunk_size"])

        for side in ("old", "new"):
            with timings(f"load_model/{side}"):
                encoders[side] = load_encoder(cfg[f"{side}_encoder"])
            query_encoders[side] = encoders[side]
            if cfg.get(f"{side}_query_encoder") is not None:
                with timings(f"load_model/{side}/query"):
                    query_encoders[side] = load_encoder(cfg[f"{side}_query_encoder"])
            check_modalities(encoders[side], query_encoders[side], data, side)

        pair_role = str(cfg["adapter"]["pair_role"])
        check_pair_role(pair_role, cfg, encoders, query_encoders)  # before any encoding
        # What the pairs are drawn from: corpus items, or the queries the run does not evaluate.
        excluded = query_text_mask(data)  # corpus items equal to a query: never pairs
        pair_pool = data.corpus
        if pair_role == "query_log":
            with timings("load_data/query_pool"):
                unlimited = load_unlimited(cfg["dataset"], loaded, seed, paths["data_dir"])
                pair_pool = held_out_queries(unlimited, data)
        del loaded

        enc = cfg["encode"]

        def encode(encoder: CachedEncoder, items: Sequence[Any], role: str) -> np.ndarray:
            return encoder.encode(
                items, role=role, batch_size=enc["batch_size"], show_progress=enc["show_progress"]
            )

        vectors: dict[str, np.ndarray] = {}
        for side in ("old", "new"):
            for part, items, role, encoder in (
                ("corpus", data.corpus, "document", encoders[side]),
                ("queries", data.queries, "query", query_encoders[side]),
            ):
                with timings(f"encode/{side}/{part}"):
                    vectors[f"{side}/{part}"] = encode(encoder, items, role)
        x_old, q_old = vectors["old/corpus"], vectors["old/queries"]
        x_new, q_new = vectors["new/corpus"], vectors["new/queries"]

        with timings("drift_measures"):
            measured_drift = drift_measures(x_old, x_new, seed=derive_seed(seed, "drift"))

        adapter_cfg = cfg["adapter"]
        warn_uncentred_procrustes(measured_drift, adapter_cfg["methods"])
        from_corpus = pair_role != "query_log"
        split = sample_pairs(
            len(pair_pool),
            requested_pairs(adapter_cfg["n_pairs"], adapter_cfg["n_pairs_fraction"], len(x_old)),
            val_fraction=float(adapter_cfg["val_fraction"]),
            gate_fraction=float(adapter_cfg["gate_fraction"]),
            seed=derive_seed(seed, "pairs"),
            excluded=excluded if from_corpus else None,
            items_name="corpus items" if from_corpus else HELD_OUT_QUERIES,
        )

        # Encodes only for query roles (the cache serves a symmetric model's corpus vectors).
        with timings("encode/pairs"):
            pairs = pair_vectors(
                split,
                pair_role,
                x_new=x_new,
                x_old=x_old,
                items=pair_pool,
                encode_new=functools.partial(encode, query_encoders["new"]),
                encode_old=functools.partial(encode, query_encoders["old"]),
            )
        adapters, unfit = fit_adapters(build_adapters(adapter_cfg), pairs, seed, timings)
        held_out = gate_pairs(pairs, adapters)
        artifacts = save_artifacts(paths["artifacts_dir"] / config_hash(cfg), adapters, held_out)
        with timings("gate"):  # what `drift gate` estimates from pairs the adapter has not seen
            gate = pool_estimates(
                {n: a for n, a in adapters.items() if n not in held_out.seen_by},
                held_out.new,
                held_out.old,
                corpus_size=len(x_old),
                n_boot=int(cfg["eval"]["n_boot"]),
                seed=derive_seed(seed, "gate"),
            )
            gate.update({name: {"skipped": held_out.why_not(name)} for name in held_out.seen_by})

        spec = IndexSpec.from_dict(cfg["index"])
        index_cache = IndexCache(paths["index_cache_dir"])
        with timings("index/old"):
            old_index, old_info = index_cache.get_or_build(x_old, spec)
        with timings("index/new"):
            new_index, new_info = index_cache.get_or_build(x_new, spec)

        k = max(cfg["eval"]["ks"])
        with timings("ground_truth"):
            _, knn_truth = exact_search(x_new, q_new, k)

        wanted = list(cfg["eval"]["strategies"])
        pair_rows = split.rows  # corpus rows, unless the pairs are held-out queries
        pair_doc_encodes = pair_rows.size if from_corpus else 0
        with timings("search"):
            strategy_results = run_strategies(
                old_index=old_index,
                new_index=new_index,
                spec=spec,
                q_old=q_old,
                q_new=q_new,
                adapters=adapters,
                k=k,
                old_corpus=x_old,
                knn_truth=knn_truth,
                include=[s for s in wanted if s not in MIXED_FAMILIES],
            )
            for name, result in strategy_results.items():
                result.cost = paper_strategy_costs(name, len(x_new), pair_doc_encodes)
                if not from_corpus and name.startswith("adapter/"):
                    result.cost["pair_query_encodes"] = int(pair_rows.size)  # by both models
            if "adapter" in wanted:
                strategy_results |= {
                    f"adapter/{name}": StrategyResult.not_applicable(f"adapter/{name}", reason)
                    for name, reason in unfit.items()
                }
        mixed = [s for s in wanted if s in MIXED_FAMILIES]
        if mixed:
            with timings("search/mixed"):
                strategy_results |= run_mixed_strategies(
                    cfg["eval"]["mixed"],
                    mixed,
                    old_index=old_index,
                    spec=spec,
                    index_cache=index_cache,
                    q_old=q_old,
                    q_new=q_new,
                    x_old=x_old,
                    x_new=x_new,
                    adapters=adapters,
                    k=k,
                    seed=derive_seed(seed, "mixed"),
                    pair_rows=pair_rows,
                )
        protocols = list(cfg["eval"]["protocols"])
        qrels = qrels_by_row(data) if "qrels" in protocols else None
        if "qrels" in protocols and qrels is None:
            log.warning("dataset %s has no qrels: the qrels protocol is skipped", data.name)
        with timings("evaluate"):
            evaluation = evaluate(
                strategy_results,
                knn_truth_ids=knn_truth if "knn" in protocols else None,
                qrels=qrels,
                ks=tuple(cfg["eval"]["ks"]),
                n_boot=int(cfg["eval"]["n_boot"]),
                seed=derive_seed(seed, "bootstrap"),
            )
        analyses: dict[str, Any] = {}
        if cfg["stream"]["enabled"]:
            with timings("stream"):
                analyses["stream"] = query_stream(
                    cfg["stream"],
                    strategy_results,
                    knn_truth=knn_truth if "knn" in protocols else None,
                    qrels=qrels,
                    pair_rows=pair_rows,
                    encoder=encoders["new"].encoder,
                    documents=data.corpus,
                    n_queries=len(data.queries),
                    seed=derive_seed(seed, "stream"),
                )
        if cfg["timeline"]["enabled"]:
            with timings("timeline"):
                analyses["timeline"] = run_timeline(
                    timeline_config(cfg["timeline"], adapter_cfg["methods"]),
                    TimelineData(
                        x_old=x_old,
                        x_new=x_new,
                        q_old=q_old,
                        q_new=q_new,
                        old_index=old_index,
                        new_index=new_index,
                        spec=spec,
                        index_cache=index_cache,
                        train_rows=split.train,
                        # Its own refits never feed the gate: the gate pairs validate them too,
                        # and count among the documents both models encoded.
                        val_rows=np.union1d(split.val, split.gate),
                        excluded=excluded,
                        k=k,
                        seed=derive_seed(seed, "timeline"),
                    ),
                    knn_truth=knn_truth if "knn" in protocols else None,
                    qrels=qrels,
                    n_boot=int(cfg["timeline"]["n_boot"]),
                )
        caught = [f"{w.category.__name__}: {w.message}" for w in warned]

    separate_query = {s: e for s, e in query_encoders.items() if e is not encoders[s]}
    real_weights = all(e.real_weights for e in [*encoders.values(), *separate_query.values()])
    return {
        "task_name": cfg["task_name"],
        "seed": seed,
        "seeds": {
            name: derive_seed(seed, name)
            for name in (
                "subsample",
                "pairs",
                "bootstrap",
                "drift",
                "gate",
                "mixed",
                "stream",
                "timeline",
            )
        },
        "real_weights": real_weights,
        "synthetic": data.synthetic,
        "offline": offline,
        "models": {side: encoder_summary(e) for side, e in encoders.items()},
        # null: queries went through the corpus encoder of that side
        "query_models": {
            side: encoder_summary(separate_query[side]) if side in separate_query else None
            for side in encoders
        },
        "dataset": data.summary(),  # meta "subsample" records full and effective sizes
        "drift": measured_drift,
        "pairs": split.summary()
        | {
            "role": pair_role,
            "fraction_requested": adapter_cfg["n_pairs_fraction"],
            "source": "corpus" if from_corpus else HELD_OUT_QUERIES,
            "n_pool": len(pair_pool),
        },
        "adapters": {name: a.describe() for name, a in adapters.items()},
        "artifacts": artifacts,
        "gate": gate,
        "index": {"spec": spec.__dict__, "old": old_info, "new": new_info},
        "cache": cache.stats,
        "timings": {**timings, "total": time.time() - started},
        "strategies": {name: r.summary() for name, r in strategy_results.items()},
        "metrics": evaluation,
        **analyses,
        "warnings": caught,
    }


def check_modalities(
    encoder: Encoder, query_encoder: Encoder, data: RetrievalData, side: str
) -> None:
    """Each encoder reads what its part of the dataset holds; a separate query encoder maps into
    the corpus encoder's space (same dimension)."""
    separate = query_encoder is not encoder
    for part, enc, modality in (
        ("items", encoder, data.corpus_modality),
        ("queries", query_encoder, data.query_modality),
    ):
        if enc.modality != modality:
            hint = ""
            if part == "queries" and not separate:
                hint = (
                    f"; set {side}_query_encoder to a {modality} encoder of the same model, e.g. "
                    f"+encoder@{side}_query_encoder=clip_vit_b32_text"
                )
            which = f"{side}_query_encoder" if part == "queries" and separate else f"{side} encoder"
            raise DataError(
                f"{which} {enc.name!r} encodes {enc.modality} items but dataset {data.name!r} "
                f"holds {modality} {part}{hint}"
            )
    if separate and query_encoder.dim != encoder.dim:
        raise ConfigError(
            f"{side}_query_encoder {query_encoder.name!r} gives {query_encoder.dim}-d vectors but "
            f"the {side} corpus encoder {encoder.name!r} gives {encoder.dim}-d: a query tower "
            "must map into the corpus encoder's space"
        )


ANISOTROPIC_MEAN_COSINE = 0.5


def warn_uncentred_procrustes(measured_drift: dict[str, Any], methods: dict[str, Any]) -> None:
    """Warn when an uncentred Procrustes map starts from (or lands in) an anisotropic space.

    Such a space's vectors share one dominant direction, which an orthogonal map must carry
    across: on MiniLM-L6 -> e5-small (mean cosine .83) uncentred OP falls to a quarter of the
    status quo and centring triples it (experiment=asymmetric_pairs).
    """
    if "procrustes" not in methods or (methods["procrustes"] or {}).get("center"):
        return  # no Procrustes, or a centred one (`procrustes: null` is the uncentred default)
    sides = {
        side: measured_drift.get(f"mean_cosine_{side}", float("nan")) for side in ("old", "new")
    }
    anisotropic = {side: v for side, v in sides.items() if v > ANISOTROPIC_MEAN_COSINE}
    if anisotropic:
        shown = ", ".join(f"{side} {value:.2f}" for side, value in anisotropic.items())
        warnings.warn(
            f"anisotropic embedding space (mean cosine between items: {shown}): uncentred "
            "Procrustes must carry the shared direction across; consider "
            "adapter.methods.procrustes.center=true (see experiment=asymmetric_pairs)",
            stacklevel=2,
        )


def check_pair_role(
    role: str,
    cfg: dict[str, Any],
    encoders: dict[str, CachedEncoder],
    query_encoders: dict[str, CachedEncoder],
) -> None:
    """Refuse query-role pairs where they mean something else than the adapter's input.

    The strategies beyond the paper and the stream count the pairs' new-model vectors as
    document vectors already paid for, and the timeline refits on document-role pairs of corpus
    rows. Held-out queries (`query_log`) are no corpus rows at all. Corpus items in the query role
    need queries and corpus to go through the same encoder, and are document vectors only for a
    symmetric model. (An asymmetric old model costs Np old-model query encodes, outside the
    new-model encode counts.)
    """
    check_pair_role_name(role)
    reusing = [s for s in cfg["eval"]["strategies"] if s in MIXED_FAMILIES]
    reusing += ["stream"] if cfg["stream"]["enabled"] else []
    reusing += ["timeline"] if cfg["timeline"]["enabled"] else []
    if role == "query_log" and reusing:
        raise ConfigError(
            f"adapter.pair_role=query_log trains on held-out queries, but {', '.join(reusing)} "
            "reuse the pairs as corpus documents already encoded by the new model; drop them "
            "(eval.strategies, stream.enabled=false, timeline.enabled=false) or use "
            "adapter.pair_role=document"
        )
    if role != "query":
        return
    separate = [side for side in encoders if query_encoders[side] is not encoders[side]]
    if separate:
        raise ConfigError(
            f"adapter.pair_role=query encodes the pair items (corpus items) in the query role, "
            f"but queries go through a separate query encoder on the {' and '.join(separate)} "
            "side; use adapter.pair_role=document"
        )
    asymmetric = [encoders[side].name for side in ("old", "new") if encoders[side].asymmetric]
    if cfg["timeline"]["enabled"] and asymmetric:
        raise ConfigError(
            f"adapter.pair_role=query with the asymmetric model {asymmetric[0]!r}: the timeline "
            "refits its adapters on backfilled documents, in the document role; set "
            "timeline.enabled=false or use adapter.pair_role=document"
        )
    if not encoders["new"].asymmetric:
        return
    reusing = [s for s in reusing if s != "timeline"]
    if reusing:
        raise ConfigError(
            f"adapter.pair_role=query with the asymmetric new model {encoders['new'].name!r}: "
            f"{', '.join(reusing)} count the pairs' new-model vectors as document vectors "
            "already paid for, which query-role vectors are not; drop them (eval.strategies, "
            "stream.enabled=false) or use adapter.pair_role=document"
        )


@dataclass(frozen=True)
class GatePairs:
    """The held-out pairs of the re-index gate, and which fitted adapters have seen them."""

    new: np.ndarray
    old: np.ndarray
    source: str  # "gate": no adapter saw them; "validation": the early-stopping adapters did
    seen_by: tuple[str, ...]

    def why_not(self, name: str) -> str:
        return (
            f"{name} stopped early on the validation pairs the gate would use; set "
            "adapter.gate_fraction > 0 to hold out pairs no adapter sees"
        )


def gate_pairs(pairs: PairVectors, adapters: Mapping[str, Adapter]) -> GatePairs:
    """The gate's own split when the run holds one out (adapter.gate_fraction > 0); otherwise
    (the paper's 80/20 split) the validation pairs, held out from every adapter that does not
    stop early on them."""
    if pairs.gate[0].shape[0]:
        return GatePairs(*pairs.gate, source="gate", seen_by=())
    seen = tuple(name for name, adapter in adapters.items() if adapter.uses_validation)
    return GatePairs(*pairs.val, source="validation", seen_by=seen)


def save_artifacts(
    folder: Path, adapters: dict[str, Adapter], held_out: GatePairs
) -> dict[str, str]:
    """Save each fitted adapter (for `drift export`) and the gate's held-out pairs with the names
    of the adapters that have seen them (for `drift gate --pairs`, which refuses those)."""
    saved = {name: str(adapter.save(folder / name)) for name, adapter in adapters.items()}
    if held_out.new.size:
        np.savez(
            folder / "gate_pairs.npz",
            new=held_out.new,
            old=held_out.old,
            seen_by=np.array(held_out.seen_by, dtype=str),
        )
        saved["gate_pairs"] = str(folder / "gate_pairs.npz")
    return saved


def fit_adapters(
    adapters: dict[str, Adapter],
    pairs: PairVectors,
    seed: int,
    timings: Timings,
) -> tuple[dict[str, Adapter], dict[str, str]]:
    """(fitted adapters, {name: why it could not be fitted}).

    An adapter the pairs cannot determine (a VectorError, e.g. low-rank affine with no more
    pairs than its rank) is reported as not applicable instead of stopping the run, so one
    point of a sweep does not end the sweep; a bad setting (ConfigError) still stops it.
    The gate's pairs (`pairs.gate`) never reach an adapter.
    """
    val_new, val_old = pairs.val
    has_val = val_new.shape[0] > 0
    fitted, unfit = {}, {}
    for name, adapter in adapters.items():
        try:
            with timings(f"fit/{name}"):
                adapter.fit(
                    *pairs.train,
                    x_new_val=val_new if has_val else None,
                    x_old_val=val_old if has_val else None,
                    seed=derive_seed(seed, f"fit/{name}"),
                )
        except VectorError as err:
            log.warning("adapter %s not fitted: %s", name, err)
            unfit[name] = f"not fitted: {err}"
            continue
        fitted[name] = adapter
    return fitted, unfit

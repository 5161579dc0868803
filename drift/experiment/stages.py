"""The steps of run_experiment that read the config and join several stages: the data with its
limits, the two models behind the cache, the pairs, the strategies and the truth they are scored
against, and their scores. Each step takes the RunContext and the values earlier steps returned;
the timing names (`load_data`, `search`, ...) are those result files and benches read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.adapters import Adapter
from drift.core.rankings import StrategyResult
from drift.core.records import config_hash
from drift.core.seeding import derive_seed
from drift.core.timing import Timings
from drift.data import load_data
from drift.data.pairs import (
    HELD_OUT_QUERIES,
    PairSplit,
    PairVectors,
    held_out_queries,
    judged_mask,
    pair_exclusions,
    pair_vectors,
    requested_pairs,
    sample_pairs,
)
from drift.data.subsample import subsample
from drift.data.types import RetrievalData
from drift.encoders import shared_encoder
from drift.encoders.cache import SIDES, CachedEncoder, EmbeddingCache, EncodedVectors, ModelPair
from drift.encoders.resolver import is_offline
from drift.experiment.checks import check_modalities
from drift.experiment.fitting import save_adapters
from drift.migration.gate import GatePairs, gate_estimates, save_gate_pairs
from drift.retrieval.index import IndexPair
from drift.retrieval.mixed.plan import MIXED_FAMILIES, paper_strategy_costs, run_mixed_strategies
from drift.retrieval.strategies import run_strategies
from drift.scoring.evaluate import evaluate
from drift.scoring.metrics import Qrels, identical_id_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What every step of one run reads besides its inputs: the resolved config, the run's seed
    (each step derives its own from it), its folders, whether models load offline, and the
    timings each step adds to."""

    cfg: Mapping[str, Any]
    seed: int
    paths: Mapping[str, Path]
    offline: bool
    timings: Timings

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RunContext:
        return cls(
            cfg=cfg,
            seed=int(cfg["seed"]),
            paths={name: Path(folder) for name, folder in cfg["paths"].items()},
            offline=is_offline(cfg["offline"]),
            timings=Timings(),
        )

    @property
    def k(self) -> int:
        """The deepest rank the run scores (the largest of `eval.ks`): answers per query."""
        return max(self.cfg["eval"]["ks"])

    def seed_for(self, purpose: str) -> int:
        """The seed of one purpose ("pairs", "bootstrap", ...), derived from the run's."""
        return derive_seed(self.seed, purpose)


# -- data ---------------------------------------------------------------------------------------
def load_run_data(run: RunContext) -> tuple[RetrievalData, RetrievalData]:
    """(the dataset as loaded, the run's seeded subset of it under `data_limits`)."""
    with run.timings("load_data"):
        loaded = load_data(run.cfg["dataset"], seed=run.seed, data_dir=run.paths["data_dir"])
        limits = run.cfg["data_limits"]
        data = subsample(
            loaded,
            max_corpus=limits["max_corpus"],
            max_queries=limits["max_queries"],
            seed=run.seed_for("subsample"),
            corpus_subset=limits["corpus_subset"],
        ).validate()
    return loaded, data


def load_unlimited(
    spec: dict[str, Any], loaded: RetrievalData, seed: int, data_dir: Path
) -> RetrievalData:
    """The dataset without its own size limits (`dataset.max_corpus` / `max_queries`), where the
    queries a run holds out come from; `loaded` itself when the dataset sets none."""
    limits = {key: None for key in ("max_corpus", "max_queries") if spec.get(key) is not None}
    return load_data({**spec, **limits}, seed=seed, data_dir=data_dir) if limits else loaded


def pair_pool(run: RunContext, loaded: RetrievalData, data: RetrievalData) -> Sequence[Any]:
    """What the pairs are drawn from: the corpus items, or for `adapter.pair_role=query_log`
    the queries the run does not evaluate."""
    if run.cfg["adapter"]["pair_role"] != "query_log":
        return data.corpus
    with run.timings("load_data/query_pool"):
        unlimited = load_unlimited(run.cfg["dataset"], loaded, run.seed, run.paths["data_dir"])
        return held_out_queries(unlimited, data)


# -- models -------------------------------------------------------------------------------------
def load_models(run: RunContext, data: RetrievalData) -> ModelPair:
    """The old and new models behind the run's embedding cache, each with its query tower where
    `{side}_query_encoder` names one, checked against what the dataset holds."""
    cfg = run.cfg
    cache = EmbeddingCache(run.paths["embedding_cache_dir"])

    def load(spec: dict[str, Any]) -> CachedEncoder:
        encoder = shared_encoder(
            spec,
            device=cfg["device"],
            offline=run.offline,
            model_cache_dir=run.paths["model_cache_dir"],
        )
        return CachedEncoder(encoder, cache, chunk_size=cfg["encode"]["chunk_size"])

    corpus: dict[str, CachedEncoder] = {}
    query: dict[str, CachedEncoder] = {}
    for side in SIDES:
        with run.timings(f"load_model/{side}"):
            corpus[side] = load(cfg[f"{side}_encoder"])
        query[side] = corpus[side]
        if cfg.get(f"{side}_query_encoder") is not None:
            with run.timings(f"load_model/{side}/query"):
                query[side] = load(cfg[f"{side}_query_encoder"])
        check_modalities(corpus[side], query[side], data, side)
    encode = cfg["encode"]
    return ModelPair(
        corpus,
        query,
        cache,
        encode["batch_size"],
        encode["show_progress"],
        encode["require_cached"],
    )


# -- pairs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunPairs:
    """A run's adapter pairs: which pool rows (`split`), their vectors, where they came from."""

    role: str
    split: PairSplit
    vectors: PairVectors
    n_pool: int
    fraction_requested: float | None
    judged_in_pairs: int  # corpus pairs an evaluated query labels relevant (0 with exclude_judged)

    @property
    def from_corpus(self) -> bool:
        """Whether the pairs are corpus rows (every role but query_log)."""
        return self.role != "query_log"

    def summary(self) -> dict[str, Any]:
        """The `pairs` section of a result record."""
        return self.split.summary() | {
            "role": self.role,
            "fraction_requested": self.fraction_requested,
            "source": "corpus" if self.from_corpus else HELD_OUT_QUERIES,
            "n_pool": self.n_pool,
            "judged_in_pairs": self.judged_in_pairs,
        }


def draw_pairs(
    run: RunContext,
    pool: Sequence[Any],
    data: RetrievalData,
    vectors: EncodedVectors,
    models: ModelPair,
) -> RunPairs:
    """Sample Np pairs from `pool` as the `adapter` block says and get both models' vectors of
    them: corpus vectors already encoded, or (query roles) query encodes through the cache
    (timed as encode/pairs). Corpus items equal to a query are never pairs, nor, with
    `adapter.exclude_judged`, those an evaluated query labels relevant."""
    settings = run.cfg["adapter"]
    role = str(settings["pair_role"])
    from_corpus = role != "query_log"
    excluded = None
    judged = np.zeros(len(data.corpus), dtype=bool)
    if from_corpus:
        judged = judged_mask(data)
        excluded = pair_exclusions(data, judged if settings["exclude_judged"] else None)
    split = sample_pairs(
        len(pool),
        requested_pairs(settings["n_pairs"], settings["n_pairs_fraction"], len(vectors.x_old)),
        val_fraction=float(settings["val_fraction"]),
        gate_fraction=float(settings["gate_fraction"]),
        seed=run.seed_for("pairs"),
        excluded=excluded,
        items_name="corpus items" if from_corpus else HELD_OUT_QUERIES,
    )
    with run.timings("encode/pairs"):
        paired = pair_vectors(
            split,
            role,
            x_new=vectors.x_new,
            x_old=vectors.x_old,
            items=pool,
            encode_new=models.query_encode("new"),
            encode_old=models.query_encode("old"),
        )
    judged_pairs = int(judged[split.rows].sum()) if from_corpus else 0
    return RunPairs(role, split, paired, len(pool), settings["n_pairs_fraction"], judged_pairs)


# -- gate ---------------------------------------------------------------------------------------
def save_artifacts(
    run: RunContext, adapters: dict[str, Adapter], held_out: GatePairs
) -> dict[str, str]:
    """Save the fitted adapters (for `drift export`) and the gate's held-out pairs (for
    `drift gate --pairs`) in the run's own folder of `paths.artifacts_dir`: {name: where}. The
    folder is made here: with no adapter fitted, the held-out pairs are its only file."""
    folder = run.paths["artifacts_dir"] / config_hash(run.cfg)
    folder.mkdir(parents=True, exist_ok=True)
    return save_adapters(folder, adapters) | save_gate_pairs(folder, held_out)


def estimate_gate(
    run: RunContext, adapters: Mapping[str, Adapter], held_out: GatePairs, corpus_size: int
) -> dict[str, Any]:
    """The `gate` section of a result record: what `drift gate` estimates from pairs the
    adapter has not seen (timed as gate)."""
    with run.timings("gate"):
        return gate_estimates(
            adapters,
            held_out,
            corpus_size=corpus_size,
            n_boot=int(run.cfg["eval"]["n_boot"]),
            seed=run.seed_for("gate"),
        )


# -- strategies and truth -----------------------------------------------------------------------
def run_all_strategies(
    run: RunContext,
    indexes: IndexPair,
    vectors: EncodedVectors,
    adapters: dict[str, Adapter],
    unfit: Mapping[str, str],
    pairs: RunPairs,
    knn_truth: np.ndarray,
) -> dict[str, StrategyResult]:
    """Every strategy `eval.strategies` names, each with its cost in new-model encodes: the
    paper's (timed as search; an adapter that could not be fitted is a not-applicable row) and
    those beyond it (search/mixed), which reuse the pairs' vectors as documents already paid.
    When `eval.mixed.adapter` could not be fitted, each of those families is one not-applicable
    row named after the family, with the reason."""
    eval_cfg, timings = run.cfg["eval"], run.timings
    wanted = list(eval_cfg["strategies"])
    pair_rows = pairs.split.rows  # corpus rows, unless the pairs are held-out queries
    with timings("search"):
        results = run_strategies(
            old_index=indexes.old,
            new_index=indexes.new,
            spec=indexes.spec,
            q_old=vectors.q_old,
            q_new=vectors.q_new,
            adapters=adapters,
            k=run.k,
            old_corpus=vectors.x_old,
            knn_truth=knn_truth,
            include=[s for s in wanted if s not in MIXED_FAMILIES],
        )
        pair_doc_encodes = pair_rows.size if pairs.from_corpus else 0
        for name, result in results.items():
            result.cost = paper_strategy_costs(name, len(vectors.x_new), pair_doc_encodes)
            if not pairs.from_corpus and name.startswith("adapter/"):
                result.cost["pair_query_encodes"] = int(pair_rows.size)  # by both models
        if "adapter" in wanted:
            results |= {
                f"adapter/{name}": StrategyResult.not_applicable(f"adapter/{name}", reason)
                for name, reason in unfit.items()
            }
    mixed = [s for s in wanted if s in MIXED_FAMILIES]
    mixed_adapter = eval_cfg["mixed"]["adapter"]
    if mixed and mixed_adapter in unfit:
        reason = f"needs eval.mixed.adapter={mixed_adapter!r}, {unfit[mixed_adapter]}"
        results |= {family: StrategyResult.not_applicable(family, reason) for family in mixed}
    elif mixed:
        with timings("search/mixed"):
            results |= run_mixed_strategies(
                eval_cfg["mixed"],
                mixed,
                old_index=indexes.old,
                spec=indexes.spec,
                index_cache=indexes.cache,
                q_old=vectors.q_old,
                q_new=vectors.q_new,
                x_old=vectors.x_old,
                x_new=vectors.x_new,
                adapters=adapters,
                k=run.k,
                seed=run.seed_for("mixed"),
                pair_rows=pair_rows,
            )
    return results


# What `eval.protocols` may name: the new model's exact top k, the dataset's relevance labels.
PROTOCOLS = ("knn", "qrels")


@dataclass(frozen=True)
class Truth:
    """What answers are scored against, per protocol `eval.protocols` asks for (None: not
    scored): the new model's exact top k (knn), the dataset's relevance labels by corpus row, and
    per query the corpus row with its own id when the dataset ignores those (mteb's
    ignore_identical_ids; drift.scoring.evaluate drops it)."""

    knn: np.ndarray | None
    qrels: Qrels | None
    identical: np.ndarray | None = None


def qrels_by_row(data: RetrievalData) -> list[dict[int, int]] | None:
    if data.qrels is None:
        return None
    row_of = {doc_id: row for row, doc_id in enumerate(data.corpus_ids)}
    return [
        {row_of[d]: rel for d, rel in data.qrels.get(qid, {}).items()} for qid in data.query_ids
    ]


def scored_truth(protocols: Sequence[str], knn_truth: np.ndarray, data: RetrievalData) -> Truth:
    """The truth of each protocol the run scores; a dataset without qrels skips that protocol,
    with a warning in the log."""
    qrels = qrels_by_row(data) if "qrels" in protocols else None
    if "qrels" in protocols and qrels is None:
        log.warning("dataset %s has no qrels: the qrels protocol is skipped", data.name)
    identical = None
    if data.meta.get("ignore_identical_ids"):
        identical = identical_id_rows(data.query_ids, data.corpus_ids)
    return Truth(knn=knn_truth if "knn" in protocols else None, qrels=qrels, identical=identical)


def evaluate_run(
    run: RunContext, results: Mapping[str, StrategyResult], truth: Truth
) -> dict[str, Any]:
    """The `metrics` section of a result record: every strategy scored under each protocol at
    `eval.ks`, with bootstrap intervals (timed as evaluate)."""
    eval_cfg = run.cfg["eval"]
    with run.timings("evaluate"):
        return evaluate(
            results,
            knn_truth_ids=truth.knn,
            qrels=truth.qrels,
            ks=tuple(eval_cfg["ks"]),
            n_boot=int(eval_cfg["n_boot"]),
            unjudged=str(eval_cfg["unjudged"]),
            identical_rows=truth.identical,
            seed=run.seed_for("bootstrap"),
        )

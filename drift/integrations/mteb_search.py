"""An embedding-model upgrade strategy as an mteb search model (mteb >= 2, `SearchProtocol`).

    import mteb
    from drift.integrations.mteb_search import DriftSearchModel, PairFit
    model = DriftSearchModel(old_encoder, new_encoder, fit=PairFit("procrustes"))
    mteb.evaluate(model, mteb.get_tasks(tasks=["SciFact"]), cache=mteb.ResultCache("results/mteb"))

or `drift mteb --task SciFact` (drift/cli/mteb.py). mteb hands the model each split's corpus
(`index`) and then its queries (`search`); the model answers with the strategy it was built for:

- adapter:      the old model's vectors of the corpus in an index; each query encoded by the new
                model, mapped by the adapter into the old space, searched there (Drift-Adapter).
- status_quo:   old-model queries into the old index: keep the old model.
- full_reindex: new-model queries into a new-model index of the whole corpus: the re-embedding the
                adapter avoids (its quality is the target).
- lazy_rerank:  the adapter's top `rerank_depth` candidates re-scored with new-model document
                vectors encoded on demand (each document once) and the new-model query.

The adapter is either given fitted (`adapter=`, e.g. `drift.adapters.load_adapter(dir)`) or fitted
at index time on pairs from the task's own corpus (`fit=PairFit(...)`): `n_pairs` seeded corpus
documents encoded by both models, as the harness's experiments do; queries are never among them.
Search is the harness's own (drift.retrieval): the same indexes and strategies its result files
score, so mteb's scores and the harness's evaluator see the same rankings
(tests/test_mteb_search.py).

mteb ranks a query's answers by score. Every strategy's scores are cosine similarities in rank
order, except lazy_rerank's tail past the re-scored candidates (the adapter's ranking, which has
no new-model score): it gets scores below every re-scored one, in the adapter's order.

The result's `ModelMeta` names both models and the strategy: name
`drift/<new>-to-<old>`, `adapted_from` the new model, `experiment_kwargs` the strategy, the
adapter kind, the pairs and the index (mteb files results under
`<cache>/results/<name>/<revision>/<experiment>/<Task>.json`); the revision is a digest of both
models' revisions and the adapter's weights.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift.adapters import build_adapter
from drift.adapters.base import Adapter
from drift.core.errors import ConfigError, DataError
from drift.core.rankings import StrategyResult
from drift.core.timing import Timings
from drift.data.mteb_tasks import _query_text
from drift.data.types import RetrievalData
from drift.encoders.base import Encoder
from drift.retrieval.index import IndexSpec, build_index
from drift.retrieval.mixed.rerank import DocumentVectors, rerank
from drift.retrieval.strategies import adapter_strategy, full_reindex, status_quo

logger = logging.getLogger(__name__)

STRATEGIES = ("adapter", "status_quo", "full_reindex", "lazy_rerank")
NEEDS_ADAPTER = ("adapter", "lazy_rerank")
ON_DEMAND = "mteb/encode/new/on_demand"  # lazy_rerank's encodes, summed over queries


@dataclass(frozen=True)
class PairFit:
    """Fit the adapter when the corpus arrives: `kind` (a registered adapter, e.g. procrustes,
    low_rank_affine, residual_mlp) with `hparams`, on `n_pairs` seeded corpus documents (all of
    them when the corpus is smaller) encoded by both models."""

    kind: str = "procrustes"
    n_pairs: int = 20_000
    seed: int = 0
    hparams: dict[str, Any] = field(default_factory=dict)


class DriftSearchModel:
    """One upgrade strategy behind mteb's `SearchProtocol` (`index`, `search`, `mteb_model_meta`).

    Args:
        old, new: the old model (whose vectors the index holds) and the new one.
        strategy: one of STRATEGIES (module docstring).
        adapter: a fitted adapter new -> old; or `fit` says how to fit one per corpus.
        fit: see PairFit; ignored by status_quo and full_reindex.
        index: the FAISS index kind and parameters (default: exact, flat).
        rerank_depth: lazy_rerank's candidates per query.
        show_progress: encoder progress bars.
    """

    def __init__(
        self,
        old: Encoder,
        new: Encoder,
        *,
        strategy: str = "adapter",
        adapter: Adapter | None = None,
        fit: PairFit | None = None,
        index: IndexSpec | None = None,
        rerank_depth: int = 100,
        show_progress: bool = False,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
        if strategy in NEEDS_ADAPTER and (adapter is None) == (fit is None):
            raise ConfigError(
                f"strategy {strategy!r} needs exactly one of a fitted adapter (adapter=) or a "
                "PairFit (fit=) to fit one on the corpus"
            )
        if adapter is not None and adapter.d_in is None:
            raise ConfigError("adapter= must be fitted (or loaded); pass fit= to fit one")
        if rerank_depth < 1:
            raise ConfigError(f"rerank_depth must be >= 1, got {rerank_depth}")
        for encoder in (old, new):
            if encoder.modality != "text":
                raise ConfigError(f"{encoder.name}: mteb search serves text encoders here")
        self.old, self.new = old, new
        self.strategy = strategy
        self.adapter = adapter if strategy in NEEDS_ADAPTER else None
        self.fit = fit if strategy in NEEDS_ADAPTER else None
        self.spec = index or IndexSpec(kind="flat")
        self.rerank_depth = rerank_depth
        self.show_progress = show_progress
        self.timings = Timings()
        # what the last `index` call built, and what lazy_rerank encoded on demand
        self._corpus_ids: list[str] = []
        self._texts: list[str] = []
        self._index: Any = None
        self._pair_rows = np.zeros(0, dtype=np.int64)
        self._documents: DocumentVectors | None = None
        self.new_doc_encodes = 0

    # -- mteb's SearchProtocol --------------------------------------------------------------
    @property
    def mteb_model_meta(self) -> Any:
        from mteb.models.model_meta import ModelMeta

        return ModelMeta(
            loader=None,
            name=f"drift/{_short(self.new.name)}-to-{_short(self.old.name)}",
            revision=self.revision(),
            release_date=None,
            languages=None,
            n_parameters=None if self.adapter is None else self.adapter.n_params,
            memory_usage_mb=None,
            max_tokens=None,
            embed_dim=self.served_dim,
            license=None,
            open_weights=True,
            public_training_code=None,
            public_training_data=None,
            framework=["NumPy", "Sentence Transformers"],
            similarity_fn_name="cosine",
            use_instructions=False,
            training_datasets=None,
            adapted_from=self.new.name,
            modalities=["text"],
            experiment_kwargs=self.describe(),
        )

    def index(
        self,
        corpus: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        encode_kwargs: dict[str, Any],
        num_proc: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Encode the split's corpus with the model(s) the strategy needs and build its index
        (fitting the adapter first when `fit` says so)."""
        _check_text_task(task_metadata)
        self._corpus_ids = [str(i) for i in corpus["id"]]
        self._texts = corpus_texts(corpus)
        where = f"{task_metadata.name}/{hf_subset}/{hf_split}"
        logger.info("mteb %s: %s over %d documents", where, self.strategy, len(self._texts))
        side = "new" if self.strategy == "full_reindex" else "old"
        encoder = self.new if side == "new" else self.old
        with self.timings(f"mteb/encode/{side}/corpus"):
            vectors = encoder.encode(self._texts, role="document", show_progress=self.show_progress)
        if self.fit is not None:
            self.adapter = self._fit_on_corpus(vectors)
        if self.strategy == "lazy_rerank":
            self._documents = self._on_demand_documents()
        with self.timings(f"mteb/index/{side}"):
            self._index = build_index(vectors, self.spec)

    def search(
        self,
        queries: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        top_k: int,
        encode_kwargs: dict[str, Any],
        top_ranked: Any = None,
        num_proc: int | None = None,
        **kwargs: Any,
    ) -> dict[str, dict[str, float]]:
        """{query id: {document id: score}}, the top `top_k` of each query by the strategy."""
        if self._index is None:
            raise DataError("search before index: mteb must hand over the corpus first")
        if top_ranked is not None:
            raise DataError(
                f"{task_metadata.name} is a re-ranking task (it gives each query's candidates); "
                "DriftSearchModel answers full-corpus retrieval tasks"
            )
        texts = [_query_text(q) for q in queries["text"]]
        result = self.answer(texts, min(int(top_k), len(self._corpus_ids)))
        assert result.ids is not None and result.scores is not None
        return to_run([str(i) for i in queries["id"]], self._corpus_ids, result.ids, result.scores)

    # -- the strategies -----------------------------------------------------------------------
    def answer(self, query_texts: Sequence[str], k: int) -> StrategyResult:
        """The strategy's ranking [nq, k] of corpus rows for the queries, by the harness's own
        strategy functions (drift.retrieval)."""
        side = "old" if self.strategy == "status_quo" else "new"
        encoder = self.old if side == "old" else self.new
        with self.timings(f"mteb/encode/{side}/queries"):
            q = encoder.encode(query_texts, role="query", show_progress=self.show_progress)
        with self.timings(f"mteb/search/{self.strategy}"):
            if self.strategy == "status_quo":
                return status_quo(self._index, q, k, self.spec)
            if self.strategy == "full_reindex":
                return full_reindex(self._index, q, k, self.spec)
            assert self.adapter is not None
            ranked = adapter_strategy(self.adapter.kind, self.adapter, self._index, q, k, self.spec)
            if self.strategy == "adapter":
                return ranked
            return self._rerank(ranked, q, k)

    def _rerank(self, ranked: StrategyResult, q_new: np.ndarray, k: int) -> StrategyResult:
        assert self.adapter is not None and self._documents is not None and ranked.ids is not None
        depth = min(self.rerank_depth, len(self._corpus_ids))
        if depth > k:
            candidates = adapter_strategy(
                self.adapter.kind, self.adapter, self._index, q_new, depth, self.spec
            ).ids
        else:
            candidates = ranked.ids[:, :depth]
        assert candidates is not None
        before = self._documents.n_encoded
        result = rerank("lazy_rerank", candidates, ranked.ids, q_new, self._documents, k)
        self.new_doc_encodes += self._documents.n_encoded - before
        return result

    def _fit_on_corpus(self, old_vectors: np.ndarray) -> Adapter:
        assert self.fit is not None
        n = len(self._texts)
        rng = np.random.default_rng(self.fit.seed)
        rows = np.sort(rng.choice(n, size=min(self.fit.n_pairs, n), replace=False))
        with self.timings("mteb/encode/new/pairs"):
            x_new = self.new.encode(
                [self._texts[i] for i in rows], role="document", show_progress=self.show_progress
            )
        with self.timings("mteb/fit"):
            adapter = build_adapter(self.fit.kind, **self.fit.hparams).fit(
                x_new, old_vectors[rows], seed=self.fit.seed
            )
        logger.info("mteb: fitted %s on %d corpus pairs", adapter.kind, rows.size)
        self._pair_rows = rows
        self._pair_vectors = x_new
        return adapter

    def _on_demand_documents(self) -> DocumentVectors:
        """New-model document vectors encoded when a query first needs them (the fitting pairs
        are held already)."""
        store = np.zeros((len(self._texts), self.new.dim), dtype=np.float32)
        filled = np.zeros(len(self._texts), dtype=bool)
        if self._pair_rows.size:
            store[self._pair_rows] = self._pair_vectors
            filled[self._pair_rows] = True

        def lookup(rows: np.ndarray) -> np.ndarray:
            cold = np.unique(rows[~filled[rows]])
            if cold.size:  # once per query: summed into the timings, not logged each time
                start = time.perf_counter()
                store[cold] = self.new.encode(
                    [self._texts[i] for i in cold], role="document", show_progress=False
                )
                filled[cold] = True
                seconds = time.perf_counter() - start
                self.timings[ON_DEMAND] = self.timings.get(ON_DEMAND, 0.0) + seconds
            return store[rows]

        self.new_doc_encodes = 0
        return DocumentVectors(lookup, len(self._texts), already_encoded=self._pair_rows)

    # -- metadata -----------------------------------------------------------------------------
    @property
    def served_dim(self) -> int:
        """The dimension of the vectors the strategy's index holds."""
        return self.new.dim if self.strategy == "full_reindex" else self.old.dim

    def describe(self) -> dict[str, Any]:
        """The strategy's settings, as mteb's `experiment_kwargs` (its result folder's name)."""
        out: dict[str, Any] = {"strategy": self.strategy, "index": self.spec.kind}
        if self.strategy in NEEDS_ADAPTER:
            out["adapter"] = self.fit.kind if self.fit is not None else self.adapter.kind
            if self.fit is not None:
                out["pairs"] = self.fit.n_pairs
                out["seed"] = self.fit.seed
                out.update({f"hp_{k}": v for k, v in sorted(self.fit.hparams.items())})
        if self.strategy == "lazy_rerank":
            out["depth"] = self.rerank_depth
        return out

    def revision(self) -> str:
        """12 hex digits of both models' names and revisions and (when given) the adapter's
        weights: what decides the answers besides `describe()`."""
        digest = hashlib.sha256()
        for part in (self.old.name, self.old.revision, self.new.name, self.new.revision):
            digest.update(part.encode() + b"\0")
        if self.fit is None and self.adapter is not None:
            for name, array in sorted(self.adapter.params().items()):
                digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()[:12]


def to_run(
    query_ids: Sequence[str], corpus_ids: Sequence[str], ids: np.ndarray, scores: np.ndarray
) -> dict[str, dict[str, float]]:
    """Rankings [nq, k] of corpus rows (-1 padded) as mteb's {query id: {doc id: score}}.

    Scores that are -inf (a re-rank's tail without a new-model score) become finite scores below
    every scored document of the query, decreasing in rank order, so sorting by score gives back
    the ranking.
    """
    if ids.shape != scores.shape or ids.shape[0] != len(query_ids):
        raise DataError(
            f"rankings {ids.shape} / scores {scores.shape} for {len(query_ids)} queries"
        )
    run: dict[str, dict[str, float]] = {}
    for qid, row_ids, row_scores in zip(query_ids, ids, scores, strict=True):
        keep = row_ids >= 0
        row_ids, row_scores = row_ids[keep], row_scores[keep].astype(np.float64)
        tail = ~np.isfinite(row_scores)
        if tail.any():
            floor = row_scores[~tail].min() if (~tail).any() else 0.0
            row_scores[tail] = floor - np.arange(1, int(tail.sum()) + 1)
        run[qid] = {corpus_ids[r]: float(s) for r, s in zip(row_ids, row_scores, strict=True)}
    return run


def corpus_texts(corpus: Any) -> list[str]:
    """Document texts as the harness's mteb loader makes them: `title + " " + text` when the
    title is non-empty (drift/data/mteb_tasks.py)."""
    texts = corpus["text"]
    titles = corpus["title"] if "title" in corpus.column_names else [""] * len(texts)
    return [f"{t} {x}" if t else x for t, x in zip(titles, texts, strict=True)]


def local_task(data: RetrievalData, split: str = "test") -> Any:
    """An mteb retrieval task (`AbsTaskRetrieval`) over a harness dataset, e.g. the offline FAQ
    or man-page sets: mteb then evaluates local data as it would a hub task. Queries without a
    judged document are left out (mteb scores only the queries its qrels name)."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    if not data.qrels:
        raise DataError(f"dataset {data.name!r} has no relevance labels; mteb needs qrels")
    if data.corpus_modality != "text" or data.query_modality != "text":
        raise DataError(f"dataset {data.name!r} is not text-to-text")
    judged = [i for i, q in enumerate(data.query_ids) if q in data.qrels]
    split_data = RetrievalSplitData(
        queries=Dataset.from_dict(
            {
                "id": [data.query_ids[i] for i in judged],
                "text": [data.queries[i] for i in judged],
            }
        ),
        corpus=Dataset.from_dict({"id": list(data.corpus_ids), "text": list(data.corpus)}),
        relevant_docs={q: dict(rel) for q, rel in data.qrels.items()},
        top_ranked=None,
    )
    metadata = TaskMetadata(
        name=f"drift-{data.name}",
        description=f"The harness's dataset {data.name!r} as an mteb retrieval task.",
        reference=None,
        dataset={"path": f"drift/{data.name}", "revision": str(data.revision)},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        date=None,
        domains=None,
        task_subtypes=None,
        license=None,
        annotations_creators=None,
        dialect=None,
        sample_creation=None,
        bibtex_citation=None,
    )

    class LocalRetrievalTask(AbsTaskRetrieval):
        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = {"default": {split: split_data}}
            self.data_loaded = True

    LocalRetrievalTask.metadata = metadata
    LocalRetrievalTask.__name__ = f"Drift_{data.name}"
    return LocalRetrievalTask()


def _check_text_task(task_metadata: Any) -> None:
    modalities = list(getattr(task_metadata, "modalities", ["text"]) or ["text"])
    if modalities != ["text"]:
        raise DataError(f"{task_metadata.name} is over {modalities}; text retrieval only here")


def _short(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]

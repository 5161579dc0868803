"""Seeded subsets of a `RetrievalData` that keep its relevance labels consistent.

By default (`corpus_subset="judged_first"`) a query subset keeps every judged document of the
kept queries in the corpus subset, so a subset never asks for a document it dropped; the price is
a corpus whose make-up changes with its size (a small one is mostly the queries' own documents).
`corpus_subset="random"` draws the corpus subset at random instead and keeps only the labels of
kept documents: queries that lose all of theirs leave the qrels protocol, and the kNN protocol
sees a corpus like the full one, only smaller. `corpus_subset="nested"` is "random" drawn as the
first N of one seeded permutation of the corpus, so with one seed every smaller subset lies inside
every larger one: a scale sweep then grows one corpus instead of drawing a new one per size (less
noise between sizes, and an encode of the largest subset serves all of them). Kept items stay in
their original order, and the result's `meta["subsample"]` records the original and effective
sizes: numbers measured on a subset are not numbers on the full set.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from drift.core.errors import ConfigError
from drift.data.types import RetrievalData

log = logging.getLogger(__name__)

CORPUS_SUBSETS = ("judged_first", "random", "nested")
UNJUDGED_SUBSETS = ("random", "nested")  # subsets drawn without regard to the labels


def subsample(
    data: RetrievalData,
    *,
    max_corpus: int | None = None,
    max_queries: int | None = None,
    seed: int = 0,
    corpus_subset: str = "judged_first",
) -> RetrievalData:
    """Return `data` cut to at most `max_queries` queries and about `max_corpus` documents.

    Queries are drawn first (only queries with labels, when the dataset has labels). The corpus
    subset ("judged_first") is every document the kept queries' qrels name, filled up to
    `max_corpus` with other documents drawn at random; when the judged documents alone exceed
    `max_corpus`, all of them are kept (and a warning says so). "random": `max_corpus` documents
    drawn at random, labels cut to them (module docstring). None means no limit. The same seed
    gives the same subset.
    """
    for key, value in (("max_corpus", max_corpus), ("max_queries", max_queries)):
        if value is not None and value < 1:
            raise ConfigError(f"{key} must be a positive integer or null, got {value}")
    if corpus_subset not in CORPUS_SUBSETS:
        raise ConfigError(
            f"data_limits.corpus_subset must be one of {', '.join(CORPUS_SUBSETS)}, "
            f"got {corpus_subset!r}"
        )
    n_corpus, n_queries = len(data.corpus), len(data.queries)
    if (max_corpus is None or max_corpus >= n_corpus) and (
        max_queries is None or max_queries >= n_queries
    ):
        return data

    qrels = data.qrels
    q_keep = _query_subset(data, max_queries, np.random.default_rng([seed, 0]))
    kept_qids = {data.query_ids[i] for i in q_keep}
    if qrels is not None:
        qrels = {q: dict(rel) for q, rel in qrels.items() if q in kept_qids}
    judged = (
        set()
        if corpus_subset in UNJUDGED_SUBSETS
        else {d for rel in (qrels or {}).values() for d in rel}
    )
    corpus_rng = np.random.default_rng([seed, 1])
    if corpus_subset == "nested":
        c_keep = _nested_subset(len(data.corpus), max_corpus, corpus_rng)
    else:
        c_keep = _corpus_subset(data.corpus_ids, judged, max_corpus, corpus_rng)
    if qrels is not None and corpus_subset in UNJUDGED_SUBSETS:
        kept_docs = {data.corpus_ids[i] for i in c_keep}
        qrels = {q: kept for q, rel in qrels.items() if (kept := _within(rel, kept_docs))}

    meta = dict(data.meta)
    meta["subsample"] = {
        "seed": seed,
        "max_corpus": max_corpus,
        "max_queries": max_queries,
        "corpus_subset": corpus_subset,
        "n_corpus_full": n_corpus,
        "n_queries_full": n_queries,
    }
    return replace(
        data,
        corpus_ids=[data.corpus_ids[i] for i in c_keep],
        corpus=[data.corpus[i] for i in c_keep],
        query_ids=[data.query_ids[i] for i in q_keep],
        queries=[data.queries[i] for i in q_keep],
        qrels=qrels,
        meta=meta,
    )


def _within(relevance: dict[str, float], documents: set[str]) -> dict[str, float]:
    return {d: r for d, r in relevance.items() if d in documents}


def _query_subset(
    data: RetrievalData, max_queries: int | None, rng: np.random.Generator
) -> np.ndarray:
    candidates = np.arange(len(data.queries))
    if data.qrels is not None:
        candidates = np.array(
            [i for i, q in enumerate(data.query_ids) if data.qrels.get(q)], dtype=np.int64
        )
    if max_queries is None or max_queries >= candidates.size:
        return candidates
    return np.sort(rng.choice(candidates, size=max_queries, replace=False))


def _nested_subset(n: int, max_corpus: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_corpus is None or max_corpus >= n:
        return np.arange(n)
    return np.sort(rng.permutation(n)[:max_corpus])


def _corpus_subset(
    corpus_ids: list[str], judged: set[str], max_corpus: int | None, rng: np.random.Generator
) -> np.ndarray:
    n = len(corpus_ids)
    if max_corpus is None or max_corpus >= n:
        return np.arange(n)
    is_judged = np.array([d in judged for d in corpus_ids], dtype=bool)
    required = np.flatnonzero(is_judged)
    if required.size >= max_corpus:
        if required.size > max_corpus:
            log.warning(
                "max_corpus=%d is below the %d documents the kept queries judge; keeping all of "
                "them",
                max_corpus,
                required.size,
            )
        return required
    others = rng.choice(np.flatnonzero(~is_judged), size=max_corpus - required.size, replace=False)
    return np.sort(np.concatenate([required, others]))

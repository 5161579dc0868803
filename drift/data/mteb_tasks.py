"""mteb retrieval tasks by name (mteb 2.x), converted to `RetrievalData`.

    dataset=mteb dataset.task=SciFact          # or dataset=scifact, dataset=nfcorpus

The task's metadata (and so its name check) works offline; its data comes from the Hugging Face
hub at the revision the task metadata pins, or from the local HF cache. When neither serves it,
the error lists the datasets that need no hub. Document text is `title + " " + text` when the
title is non-empty, as for BEIR folders.

Tasks whose queries are also corpus documents under the same id (ArguAna, QuoraRetrieval,
FiQA2018, ...) set mteb's `ignore_identical_ids`: mteb drops such a document from the query's
ranking before scoring. The flag travels in `meta` (and so into the result file's dataset
section), and drift.scoring.evaluate drops the same documents.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from drift.core.errors import DataError
from drift.data import DATASETS
from drift.data.hub import hub_error
from drift.data.subsample import subsample
from drift.data.types import RetrievalData


@DATASETS.register("mteb")
def load_mteb_task(
    *,
    task: str,
    split: str = "test",
    subset: str | None = None,
    max_corpus: int | None = None,
    max_queries: int | None = None,
    seed: int,
    data_dir: str | Path,
) -> RetrievalData:
    """Load one split of an mteb text retrieval task.

    Args:
        task: the mteb task name, e.g. "NFCorpus", "SciFact".
        split: an evaluation split of the task.
        subset: the HF subset of a multilingual task (None: "default").
        max_corpus, max_queries: a seeded subset (see drift.data.subsample).
        data_dir: unused (the HF cache holds downloads); accepted like every loader.
    """
    mteb_task = get_retrieval_task(task)
    meta = mteb_task.metadata
    if split not in meta.eval_splits:
        raise DataError(
            f"mteb task {task!r} has no split {split!r}; its splits: {meta.eval_splits}"
        )
    subset = subset or "default"
    if subset not in mteb_task.hf_subsets:
        raise DataError(
            f"mteb task {task!r} has no subset {subset!r}; its subsets: {mteb_task.hf_subsets}"
        )
    mteb_task = _get_task(task, eval_splits=[split], hf_subsets=[subset])
    try:
        mteb_task.load_data()
    except Exception as e:  # the hub and datasets raise many types; all mean "not served"
        raise hub_error(f"mteb task {task!r} ({meta.dataset['path']})", e) from e
    split_data = mteb_task.dataset[subset][split]
    corpus = split_data["corpus"]
    titles = corpus["title"] if "title" in corpus.column_names else [""] * len(corpus)
    qrels = {
        str(q): {str(d): int(s) for d, s in rel.items()}
        for q, rel in split_data["relevant_docs"].items()
    }
    queries = split_data["queries"]
    data = RetrievalData(
        name=task,
        corpus_ids=[str(i) for i in corpus["id"]],
        corpus=[f"{t} {x}" if t else x for t, x in zip(titles, corpus["text"], strict=True)],
        query_ids=[str(i) for i in queries["id"]],
        queries=[_query_text(x) for x in queries["text"]],
        qrels=qrels,
        revision=str(meta.dataset["revision"]),
        meta={
            "mteb_task": task,
            "hf_dataset": meta.dataset["path"],
            "split": split,
            "subset": subset,
            "ignore_identical_ids": bool(mteb_task.ignore_identical_ids),
        },
    ).validate()
    return subsample(data, max_corpus=max_corpus, max_queries=max_queries, seed=seed).validate()


def get_retrieval_task(name: str) -> Any:
    """The mteb task object (metadata only, works offline); DataError for unknown/unfit names."""
    mteb_task = _get_task(name)
    meta = mteb_task.metadata
    if meta.type != "Retrieval" or meta.modalities != ["text"]:
        raise DataError(
            f"mteb task {name!r} is a {meta.type} task over {meta.modalities}; drift loads text "
            "retrieval tasks (e.g. NFCorpus, SciFact)"
        )
    return mteb_task


def _get_task(name: str, **filters: Any) -> Any:
    import mteb

    try:
        return mteb.get_task(name, **filters)
    except KeyError:
        names = [t.metadata.name for t in mteb.get_tasks(task_types=["Retrieval"])]
        similar = [n for n in names if n.lower() == name.lower()]
        similar += difflib.get_close_matches(name, names, n=8, cutoff=0.6)
        similar = list(dict.fromkeys(similar))
        hint = f"similar names: {', '.join(similar)}" if similar else "no similar task names"
        raise DataError(f"unknown mteb task {name!r}; {hint}") from None


def _query_text(query: Any) -> str:
    # Conversational tasks hold a query as a list of turns.
    return query if isinstance(query, str) else " ".join(str(turn) for turn in query)

"""Text classification sets from the Hugging Face hub in the paper's kNN protocol.

The corpus is a seeded sample of the train split, the queries a seeded sample of the test split
(held-out documents); there are no qrels: ground truth is the new model's exact kNN.

    dataset=ag_news | dataset=dbpedia_14 | dataset=emotion

Needs the hub (or a local HF cache); otherwise one DataError lists the datasets that need none.
The class labels are not carried (RetrievalData has no field for them); `meta` records the label
names and the class counts of each sample.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drift.core.errors import DataError
from drift.data import DATASETS
from drift.data.hub import hub_error
from drift.data.types import RetrievalData


@DATASETS.register("classification")
def load_classification(
    *,
    path: str,
    name: str | None = None,
    config: str | None = None,
    text_fields: Sequence[str] = ("text",),
    label_field: str = "label",
    corpus_split: str = "train",
    query_split: str = "test",
    corpus_size: int | None = None,
    n_queries: int | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    sample_seed: int | None = None,
    seed: int,
    data_dir: str | Path,
) -> RetrievalData:
    """Sample a kNN retrieval task from a HF classification dataset.

    Args:
        path: the hub dataset id, e.g. "fancyzhx/ag_news".
        name: the dataset's name in results (default: the last part of `path`).
        config: the HF dataset configuration (None: its default).
        text_fields: columns joined with " " into an item's text (dbpedia_14: title, content).
        corpus_size, n_queries: sample sizes, capped by the split sizes (None: the whole split);
            `meta` records requested and effective sizes.
        revision: a hub commit; None resolves the current one (recorded as the data revision).
        cache_dir: the HF datasets cache (None: the HF default).
        sample_seed: fixes both samples (None: the run's seed).
        data_dir: unused; accepted like every loader.
    """
    name = name or path.rsplit("/", 1)[-1]
    revision = revision or _resolve_revision(path)
    corpus_ds = _load_split(path, config, corpus_split, revision, cache_dir)
    query_ds = _load_split(path, config, query_split, revision, cache_dir)
    for column in (*text_fields, label_field):
        if column not in corpus_ds.column_names:
            raise DataError(f"dataset {path!r} has no column {column!r}: {corpus_ds.column_names}")

    sample_seed = seed if sample_seed is None else sample_seed
    rng = np.random.default_rng(sample_seed)
    corpus_idx = _sample(len(corpus_ds), corpus_size, rng)
    query_idx = _sample(len(query_ds), n_queries, rng)
    corpus_ds, query_ds = corpus_ds.select(corpus_idx), query_ds.select(query_idx)
    label_feature = corpus_ds.features[label_field]
    return RetrievalData(
        name=name,
        corpus_ids=[f"{corpus_split}/{i}" for i in corpus_idx],
        corpus=_texts(corpus_ds, text_fields),
        query_ids=[f"{query_split}/{i}" for i in query_idx],
        queries=_texts(query_ds, text_fields),
        qrels=None,
        revision=revision,
        meta={
            "hf_dataset": path,
            "sample_seed": sample_seed,
            "corpus_size_requested": corpus_size,
            "n_queries_requested": n_queries,
            "label_names": list(getattr(label_feature, "names", []) or []),
            "corpus_label_counts": _counts(corpus_ds[label_field]),
            "query_label_counts": _counts(query_ds[label_field]),
        },
    ).validate()


def _resolve_revision(path: str) -> str:
    import huggingface_hub

    try:
        return str(huggingface_hub.HfApi().dataset_info(path).sha)
    except Exception as e:  # offline, unreachable, unknown id: all mean "the hub cannot serve it"
        raise hub_error(f"HF dataset {path!r}", e) from e


def _load_split(
    path: str, config: str | None, split: str, revision: str, cache_dir: str | None
) -> Any:
    import datasets

    try:
        return datasets.load_dataset(
            path, config, split=split, revision=revision, cache_dir=cache_dir
        )
    except Exception as e:  # as above
        raise hub_error(f"HF dataset {path!r} (split {split!r}, revision {revision})", e) from e


def _sample(n: int, size: int | None, rng: np.random.Generator) -> list[int]:
    if size is not None and size < 1:
        raise DataError(f"sample size must be positive or null, got {size}")
    if size is None or size >= n:
        return list(range(n))
    return np.sort(rng.choice(n, size=size, replace=False)).tolist()


def _texts(ds: Any, fields: Sequence[str]) -> list[str]:
    columns = [ds[f] for f in fields]
    return [" ".join(str(v).strip() for v in values if v) for values in zip(*columns, strict=True)]


def _counts(labels: Sequence[int]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(labels).items())}

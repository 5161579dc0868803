"""The synthetic dataset: item ids for the synthetic drift encoders (drift.encoders.synthetic).

Items are id strings; the encoders turn each id into its latent vector, so the dataset itself
holds no vectors. Queries are held-out items of the same distribution, and there are no qrels
(the kNN protocol applies).

    encoder@old_encoder=synthetic_old encoder@new_encoder=synthetic_new dataset=synthetic
"""

from __future__ import annotations

from pathlib import Path

from drift.core.errors import ConfigError
from drift.data import DATASETS
from drift.data.types import RetrievalData


@DATASETS.register("synthetic")
def load_synthetic(
    *,
    n_corpus: int,
    n_queries: int,
    data_seed: int | None = None,
    name: str = "synthetic",
    seed: int,
    data_dir: str | Path,
) -> RetrievalData:
    """Ids `s<data_seed>/doc<i>` and `s<data_seed>/query<i>`; another data_seed, other items.

    Args:
        data_seed: picks the items (None: the run's seed, so every seed sees other items).
        data_dir: unused; accepted like every loader.
    """
    if n_corpus < 1 or n_queries < 1:
        raise ConfigError(
            f"synthetic dataset needs n_corpus, n_queries >= 1, got {n_corpus}, {n_queries}"
        )
    data_seed = seed if data_seed is None else data_seed
    corpus_ids = [f"s{data_seed}/doc{i}" for i in range(n_corpus)]
    query_ids = [f"s{data_seed}/query{i}" for i in range(n_queries)]
    return RetrievalData(
        name=name,
        corpus_ids=corpus_ids,
        corpus=list(corpus_ids),
        query_ids=query_ids,
        queries=list(query_ids),
        qrels=None,
        corpus_modality="synthetic",
        query_modality="synthetic",
        revision=f"ids-v1:seed={data_seed}",
        synthetic=True,
        meta={"data_seed": data_seed},
    ).validate()

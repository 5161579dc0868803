"""A toy adapter, dataset and encoder, registered the way a user's own module registers them
(docs/extending.md); tests/test_extending.py runs them end to end through a toy experiment.

The toy encoders plant a drift the toy adapter undoes exactly: the new model is the old one with
its coordinates permuted and some of them negated (a signed permutation, seeded), and the adapter
fits a signed permutation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drift.adapters import Display, register_adapter
from drift.adapters.scaling import MapAdapter
from drift.data import DATASETS, RetrievalData
from drift.encoders import ENCODERS
from drift.encoders.base import BatchedEncoder, Role


@register_adapter("toy_signed_permutation")
class SignedPermutation(MapAdapter):
    """Sends each new dimension to the old dimension it correlates with most (x -> x @ W, W with
    one entry +-1 per row), with that correlation's sign unless `sign` is False."""

    display = Display("Toy permutation", "#117733", "h")
    hparam_columns = {"toy_sign": "sign"}

    def __init__(
        self,
        *,
        sign: bool = True,
        dsm: bool = False,
        dsm_bias: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__(dsm=dsm, dsm_bias=dsm_bias, normalize_output=normalize_output)
        self.sign = bool(sign)

    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        correlation = x_new.T.astype(np.float64) @ x_old
        target = np.abs(correlation).argmax(axis=1)
        rows = np.arange(x_new.shape[1])
        weight = np.zeros(correlation.shape, dtype=np.float32)
        weight[rows, target] = np.sign(correlation[rows, target]) if self.sign else 1.0
        return {"weight": weight}

    def _map(self, x: np.ndarray) -> np.ndarray:
        return x @ self._weights["weight"]

    def _param_names(self) -> tuple[str, ...]:
        return ("weight",)

    def _map_hparams(self) -> dict[str, Any]:
        return {"sign": self.sign}

    def _map_ops(self) -> list[dict[str, Any]]:
        return [{"op": "matmul", "weight": "weight"}]


@DATASETS.register("toy_items")
def load_toy_items(
    *, n_corpus: int, n_queries: int, seed: int, data_dir: str | Path
) -> RetrievalData:
    """Item ids `toy/doc<i>` and `toy/query<i>` for the toy encoders; no qrels (kNN protocol).
    `seed` and `data_dir` are what the run passes every loader; the items do not depend on them."""
    corpus = [f"toy/doc{i}" for i in range(n_corpus)]
    queries = [f"toy/query{i}" for i in range(n_queries)]
    return RetrievalData(
        name="toy_items",
        corpus_ids=corpus,
        corpus=list(corpus),
        query_ids=queries,
        queries=list(queries),
        corpus_modality="synthetic",
        query_modality="synthetic",
        revision="toy-v1",
        synthetic=True,
    )


@ENCODERS.register("toy_hash")
class ToyHashEncoder(BatchedEncoder):
    """A unit vector per item id, drawn from a generator seeded by a hash of (seed, id); the
    "new" role permutes and negates its coordinates (the same signed permutation for every item).
    Not a model: real_weights is False."""

    modality = "synthetic"
    real_weights = False
    preprocessing = "toy-l2norm"

    def __init__(
        self,
        role: Literal["old", "new"],
        dim: int = 16,
        seed: int = 0,
        batch_size: int = 32,
        *,
        device: str = "auto",
        offline: bool | None = None,
        model_cache_dir: str | Path | None = None,
    ) -> None:
        self.role, self.dim, self.seed = role, int(dim), int(seed)
        self.batch_size = int(batch_size)
        self.name = f"toy/{role}"
        self.revision = f"toy-v1:seed={seed},role={role}"
        planted = np.random.default_rng([seed, 1])
        self.permutation = planted.permutation(self.dim)
        self.signs = planted.choice([-1.0, 1.0], self.dim).astype(np.float32)

    def old_vectors(self, items: list[str]) -> np.ndarray:
        """The old model's rows of `items` (what the new role permutes)."""
        rows = []
        for item in items:
            digest = hashlib.sha256(f"{self.seed}/{item}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            rows.append(rng.standard_normal(self.dim))
        return np.asarray(rows, dtype=np.float32)

    def _encode_batch(self, items: list[str], role: Role) -> np.ndarray:
        x = self.old_vectors(items)
        return x if self.role == "old" else x[:, self.permutation] * self.signs

"""Which corpus items the adapter is trained on: Np items encoded by both models, never a query.

The pair items are encoded as documents (the paper's protocol) or, with `adapter.pair_role=query`,
as queries: for an asymmetric model (e5's "query: " / "passage: " prefixes) the query role puts
the pairs where the adapter is applied, at Np extra encodes; for a symmetric one both roles give
the same vectors (and the embedding cache serves them without encoding).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drift.errors import ConfigError

PAIR_ROLES = ("document", "query")


@dataclass(frozen=True)
class PairSplit:
    """Row indices into the corpus: adapter training pairs and validation pairs."""

    train: np.ndarray
    val: np.ndarray
    n_requested: int

    @property
    def rows(self) -> np.ndarray:
        """Every pair row, training then validation (the corpus items both models encoded)."""
        return np.concatenate([self.train, self.val])

    def summary(self) -> dict[str, int]:
        return {
            "n_requested": self.n_requested,
            "n_train": int(self.train.size),
            "n_val": int(self.val.size),
        }


def sample_pairs(
    n_corpus: int,
    n_pairs: int,
    *,
    val_fraction: float,
    seed: int,
    excluded: np.ndarray | None = None,
) -> PairSplit:
    """Sample `n_pairs` corpus rows (seeded) and split them into train/validation.

    Args:
        n_corpus: corpus size.
        n_pairs: Np, items encoded by both models. Capped (with a warning) by the eligible rows.
        val_fraction: share of the pairs held out for validation / early stopping (paper: 0.2).
        seed: the pair-sampling seed.
        excluded: boolean mask of corpus rows that must never be pairs (e.g. text equal to a query).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"adapter.val_fraction must be in [0, 1), got {val_fraction}")
    eligible = np.arange(n_corpus) if excluded is None else np.flatnonzero(~excluded)
    if n_pairs < 2:
        raise ConfigError(f"adapter.n_pairs must be at least 2, got {n_pairs}")
    if n_pairs > eligible.size:
        warnings.warn(
            f"adapter.n_pairs={n_pairs} exceeds the {eligible.size} eligible corpus items; "
            f"using all {eligible.size}",
            stacklevel=2,
        )
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(eligible)[: min(n_pairs, eligible.size)]
    n_val = int(round(chosen.size * val_fraction))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    return PairSplit(
        train=np.sort(chosen[n_val:]), val=np.sort(chosen[:n_val]), n_requested=n_pairs
    )


def check_pair_role_name(role: str) -> None:
    if role not in PAIR_ROLES:
        raise ConfigError(f"adapter.pair_role must be one of {PAIR_ROLES}, got {role!r}")


@dataclass(frozen=True)
class PairVectors:
    """Both models' vectors of the pair items, in `PairSplit.rows` order (training, validation)."""

    new: np.ndarray
    old: np.ndarray
    n_train: int

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.new[: self.n_train], self.old[: self.n_train]

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.new[self.n_train :], self.old[self.n_train :]


Encode = Callable[[Sequence[Any], str], np.ndarray]


def pair_vectors(
    split: PairSplit,
    role: str,
    *,
    x_new: np.ndarray,
    x_old: np.ndarray,
    items: Sequence[Any],
    encode_new: Encode,
    encode_old: Encode,
) -> PairVectors:
    """The pairs' vectors in `role`: document role reads the corpus vectors; query role encodes
    the pair items with each model's query role (`encode_*(items, role)`, through the cache)."""
    check_pair_role_name(role)
    rows = split.rows
    if role == "document":
        return PairVectors(x_new[rows], x_old[rows], int(split.train.size))
    chosen = [items[i] for i in rows]
    return PairVectors(encode_new(chosen, role), encode_old(chosen, role), int(split.train.size))

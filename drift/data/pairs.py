"""Which items the adapter is trained on: Np items encoded by both models, never an evaluated query.

`adapter.pair_role` says which items and in which role:
- `document` (the paper's protocol): corpus items, read from the corpus vectors both models
  already encoded;
- `query`: the same corpus items encoded as queries by both models. For an asymmetric model (e5's
  "query: " / "passage: " prefixes) this fits the adapter in the role where it is applied, at Np
  extra encodes; for a symmetric one both roles give the same vectors (the embedding cache serves
  them without encoding);
- `query_log`: real queries of the dataset that the run does not evaluate (those its query limit
  held out: a stand-in for past traffic), encoded as queries by both models through the query
  encoders. No corpus item is encoded by the new model; Np short queries are, by both models.

The Np pairs are split three ways: training, validation (`adapter.val_fraction`: early stopping
and best-epoch restore, so the adapters have seen it) and the gate's held-out pairs
(`adapter.gate_fraction`), which no adapter sees and which the run saves for `drift gate`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drift.core.errors import ConfigError
from drift.data.types import RetrievalData

PAIR_ROLES = ("document", "query", "query_log")
HELD_OUT_QUERIES = "held-out queries"  # the query_log pool, as messages and result files name it


@dataclass(frozen=True)
class PairSplit:
    """Row indices into the pair pool (the corpus, or held-out queries): adapter training pairs,
    validation pairs (early stopping, best-epoch restore) and gate pairs.

    The gate pairs are encoded by both models like the others, but no adapter sees them, in
    training or in validation: they are the held-out pairs `drift gate` estimates ARR on.
    """

    train: np.ndarray
    val: np.ndarray
    gate: np.ndarray
    n_requested: int

    @property
    def rows(self) -> np.ndarray:
        """Every pair row, training, validation then gate (the items both models encoded)."""
        return np.concatenate([self.train, self.val, self.gate])

    def summary(self) -> dict[str, int]:
        return {
            "n_requested": self.n_requested,
            "n_train": int(self.train.size),
            "n_val": int(self.val.size),
            "n_gate": int(self.gate.size),
        }


def _share(n: int, fraction: float) -> int:
    """round(n * fraction) rows, but at least one for a positive fraction."""
    count = int(round(n * fraction))
    return max(count, 1) if fraction > 0 else count


def requested_pairs(n_pairs: int, n_pairs_fraction: float | None, n_corpus: int) -> int:
    """Np: `adapter.n_pairs`, or `adapter.n_pairs_fraction` of the corpus when that is set (the
    paper's 20,000 pairs are 2% of 1M items), at least 2."""
    if n_pairs_fraction is None:
        return int(n_pairs)
    if not 0.0 < n_pairs_fraction <= 1.0:
        raise ConfigError(f"adapter.n_pairs_fraction must be in (0, 1], got {n_pairs_fraction}")
    return max(2, int(round(n_pairs_fraction * n_corpus)))


def sample_pairs(
    n_pool: int,
    n_pairs: int,
    *,
    val_fraction: float,
    seed: int,
    gate_fraction: float = 0.0,
    excluded: np.ndarray | None = None,
    items_name: str = "corpus items",
) -> PairSplit:
    """Sample `n_pairs` rows of the pair pool (seeded) and split them into train/validation/gate.

    Validation takes the first rows of the seeded permutation, the gate the next ones, training
    the rest: the validation rows do not depend on `gate_fraction`, and `gate_fraction=0` gives
    the train/validation split of earlier versions.

    Args:
        n_pool: size of the pool the pairs come from (the corpus, or held-out queries).
        n_pairs: Np, items encoded by both models. Capped (with a warning) by the eligible rows.
        val_fraction: share of the pairs held out for validation / early stopping (paper: 0.2).
        seed: the pair-sampling seed.
        gate_fraction: share of the pairs held out for the re-index gate, seen by no adapter.
        excluded: boolean mask of pool rows that must never be pairs (e.g. corpus items whose
            text equals a query's).
        items_name: what the pool holds, for the warning when Np exceeds it.
    """
    for name, fraction in (("val_fraction", val_fraction), ("gate_fraction", gate_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise ConfigError(f"adapter.{name} must be in [0, 1), got {fraction}")
    if val_fraction + gate_fraction >= 1.0:
        raise ConfigError(
            "adapter.val_fraction + adapter.gate_fraction must leave pairs to train on, got "
            f"{val_fraction} + {gate_fraction}"
        )
    eligible = np.arange(n_pool) if excluded is None else np.flatnonzero(~excluded)
    if n_pairs < 2:
        raise ConfigError(f"adapter.n_pairs must be at least 2, got {n_pairs}")
    if n_pairs > eligible.size:
        warnings.warn(
            f"adapter.n_pairs={n_pairs} exceeds the {eligible.size} eligible {items_name}; "
            f"using all {eligible.size}",
            stacklevel=2,
        )
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(eligible)[: min(n_pairs, eligible.size)]
    n_val, n_gate = _share(chosen.size, val_fraction), _share(chosen.size, gate_fraction)
    if chosen.size - n_val - n_gate < 2:
        raise ConfigError(
            f"only {eligible.size} eligible {items_name}: an adapter needs at least 2 training "
            f"pairs besides the {n_val} held out for validation and {n_gate} for the gate"
            + (
                "; hold out more queries with data_limits.max_queries"
                if items_name == HELD_OUT_QUERIES
                else ""
            )
        )
    return PairSplit(
        train=np.sort(chosen[n_val + n_gate :]),
        val=np.sort(chosen[:n_val]),
        gate=np.sort(chosen[n_val : n_val + n_gate]),
        n_requested=n_pairs,
    )


def check_pair_role_name(role: str) -> None:
    if role not in PAIR_ROLES:
        raise ConfigError(f"adapter.pair_role must be one of {PAIR_ROLES}, got {role!r}")


@dataclass(frozen=True)
class PairVectors:
    """Both models' vectors of the pair items, in `PairSplit.rows` order (training, validation,
    gate)."""

    new: np.ndarray
    old: np.ndarray
    n_train: int
    n_val: int

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.new[: self.n_train], self.old[: self.n_train]

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        part = slice(self.n_train, self.n_train + self.n_val)
        return self.new[part], self.old[part]

    @property
    def gate(self) -> tuple[np.ndarray, np.ndarray]:
        return self.new[self.n_train + self.n_val :], self.old[self.n_train + self.n_val :]


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
    """The pairs' vectors: the document role reads the corpus vectors (`split` rows into them);
    the query roles encode `items[rows]` (corpus items, or held-out queries for `query_log`) as
    queries with each model (`encode_*(items, "query")`, through the cache)."""
    check_pair_role_name(role)
    rows = split.rows
    sizes = {"n_train": int(split.train.size), "n_val": int(split.val.size)}
    if role == "document":
        return PairVectors(x_new[rows], x_old[rows], **sizes)
    chosen = [items[i] for i in rows]
    return PairVectors(encode_new(chosen, "query"), encode_old(chosen, "query"), **sizes)


def query_text_mask(data: RetrievalData) -> np.ndarray:
    """Corpus rows whose item equals a query item: never used as adapter training pairs."""
    queries = set(data.queries)
    return np.fromiter(
        (item in queries for item in data.corpus), dtype=bool, count=len(data.corpus)
    )


def judged_mask(data: RetrievalData) -> np.ndarray:
    """Corpus rows that an evaluated query labels relevant (grade > 0): with
    `adapter.exclude_judged`, never adapter pairs, so the evaluated queries' answers stay out of
    everything an adapter is fit or tuned on. All False for a dataset without labels."""
    judged = {doc for labels in (data.qrels or {}).values() for doc, g in labels.items() if g > 0}
    return np.fromiter(
        (doc in judged for doc in data.corpus_ids), dtype=bool, count=len(data.corpus_ids)
    )


def pair_exclusions(data: RetrievalData, judged: np.ndarray | None) -> np.ndarray:
    """Corpus rows that must never be adapter pairs: those equal to a query and the `judged`
    ones (`judged_mask`, when `adapter.exclude_judged`; None: no such exclusion)."""
    excluded = query_text_mask(data)
    return excluded if judged is None else excluded | judged


def held_out_queries(full: RetrievalData, evaluated: RetrievalData) -> list[Any]:
    """The queries of `full` a run does not evaluate, for `adapter.pair_role=query_log`.

    `evaluated` is `full` after the run's query limit (drift.data.subsample). A held-out query
    whose text equals an evaluated one is dropped too, so no evaluated query (by id or by text)
    ever trains the adapter. Raises ConfigError when nothing is held out.
    """
    kept_ids = set(evaluated.query_ids)
    kept_items = set(evaluated.queries)
    pool = [
        item
        for qid, item in zip(full.query_ids, full.queries, strict=True)
        if qid not in kept_ids and item not in kept_items
    ]
    if not pool:
        raise ConfigError(
            f"adapter.pair_role=query_log trains on queries the run does not evaluate, but all "
            f"{len(full.queries)} queries of {full.name!r} are evaluated; hold some out with "
            "data_limits.max_queries below that number (or dataset.max_queries, where the "
            "dataset config has it)"
        )
    return pool

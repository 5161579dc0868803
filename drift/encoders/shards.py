"""One shard of a run's encoding, so that several processes (or nodes) fill one embedding cache.

Shard i of n holds the distinct items whose content digest (drift.encoders.cache.item_digest,
the cache's own key) is i modulo n: a partition that does not depend on the items' order, on
which list an item appears in (a text both a document and a query falls in the same shard for
both), or on the process. Each shard encodes its items for every part a run encodes up front
(`ModelPair.parts`: both sides' corpus and queries) through the shared cache, whose writers never
collide (unique shard names, atomic commits), so the n shards together leave a cache from which a
run with the same data settings encodes nothing. `python -m drift.encode` is the entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drift.core.errors import ConfigError
from drift.core.timing import Timings
from drift.encoders.base import Modality
from drift.encoders.cache import ModelPair, item_digest


def shard_of(digest: str, num_shards: int) -> int:
    """The shard (0..num_shards-1) of an item with sha256 hex `digest`."""
    return int(digest[:16], 16) % num_shards


def check_shard(shard: int, num_shards: int) -> None:
    """ConfigError unless 0 <= shard < num_shards (both integers, num_shards >= 1)."""
    for name, value in (("shard", shard), ("num_shards", num_shards)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"encode.{name} must be an integer, got {value!r}")
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(
            f"encode.shard must be in 0..encode.num_shards-1, got shard {shard} of {num_shards}"
        )


def in_shard(items: Sequence[str], modality: Modality, shard: int, num_shards: int) -> list[str]:
    """The distinct items of `items` (first-seen order) that fall in shard `shard` of
    `num_shards`."""
    check_shard(shard, num_shards)
    chosen: dict[str, str] = {}
    for item in items:
        digest = item_digest(item, modality)
        if digest not in chosen and shard_of(digest, num_shards) == shard:
            chosen[digest] = item
    return list(chosen.values())


def encode_shard(
    models: ModelPair,
    corpus: Sequence[Any],
    queries: Sequence[Any],
    shard: int,
    num_shards: int,
    timings: Timings,
) -> dict[str, dict[str, int]]:
    """Encode shard `shard` of every part a run encodes up front into the models' cache (timed
    as encode/<side>/<part>); per part, its distinct items and how many fell in this shard."""
    counts = {}
    for part, items, role, encoder in models.parts(corpus, queries):
        mine = in_shard(items, encoder.modality, shard, num_shards)
        with timings(f"encode/{part}"):
            models.encode(encoder, mine, role)
        distinct = len({item_digest(item, encoder.modality) for item in items})
        counts[part] = {"distinct": distinct, "in_shard": len(mine)}
    return counts


def shard_device(device: str, shard: int, device_count: int) -> str:
    """The torch device of shard `shard` on a node with `device_count` GPUs: with device auto or
    cuda and more than one GPU, cuda:(shard % device_count), so the shards of one node spread over
    its GPUs; otherwise `device` unchanged (cuda:N pins every shard to GPU N)."""
    if device in ("auto", "cuda") and device_count > 1:
        return f"cuda:{shard % device_count}"
    return device

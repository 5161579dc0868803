"""Tests of drift.encoders.cache with a counting test double in place of a real model."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from drift.core import files
from drift.core.errors import CacheCorruptError, ImageReadError, VectorError
from drift.encoders import cache as cache_module
from drift.encoders.base import Encoder
from drift.encoders.cache import (
    CachedEncoder,
    EmbeddingCache,
    file_sha256,
    folder_name,
    item_digest,
)


class FakeEncoder:
    """Test double, not a model: each vector is drawn from a RNG seeded by the item's content.

    Counts its calls and items; `fail_after` raises on the call after that many calls (a job
    killed mid-encode); `nan_items` get NaN vectors; `out_dim` returns a wrong dimension; `delay`
    seconds of sleep per call let two processes overlap.
    """

    def __init__(
        self,
        *,
        dim: int = 8,
        modality: str = "synthetic",
        asymmetric: bool = False,
        fail_after: int | None = None,
        nan_items: Sequence[str] = (),
        out_dim: int | None = None,
        delay: float = 0.0,
    ):
        self.name = "test/fake-encoder"
        self.revision = "test-double"
        self.dim = dim
        self.modality = modality
        self.real_weights = False
        self.preprocessing = "none"
        self.asymmetric = asymmetric
        self.fail_after = fail_after
        self.nan_items = set(nan_items)
        self.out_dim = out_dim or dim
        self.delay = delay
        self.calls = 0
        self.items_encoded = 0

    def encode(self, items, *, role="document", batch_size=None, show_progress=False):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated kill")
        self.calls += 1
        self.items_encoded += len(items)
        time.sleep(self.delay)
        return np.stack([self.vector(item, role) for item in items])

    def vector(self, item: str, role: str = "document") -> np.ndarray:
        content = Path(item).read_bytes() if self.modality == "image" else item.encode()
        if self.asymmetric:
            content += role.encode()
        seed = int.from_bytes(hashlib.sha256(content).digest()[:8], "little")
        if item in self.nan_items:
            return np.full(self.out_dim, np.nan, dtype=np.float32)
        return np.random.default_rng(seed).standard_normal(self.out_dim).astype(np.float32)


def texts(n: int, prefix: str = "item") -> list[str]:
    return [f"{prefix} {i}" for i in range(n)]


def shard_files(cache: EmbeddingCache, encoder: Encoder, role: str = "document") -> list[Path]:
    return sorted((cache.folder(encoder, role) / "shards").glob("*.npy"))


def test_second_call_encodes_nothing(tmp_path):
    encoder, items = FakeEncoder(), texts(50)
    cache = EmbeddingCache(tmp_path)
    first = cache.encode(encoder, items, chunk_size=16, show_progress=False)
    assert (encoder.calls, encoder.items_encoded) == (4, 50)
    assert len(shard_files(cache, encoder)) == 4

    second = cache.encode(encoder, items, chunk_size=16, show_progress=False)
    again = EmbeddingCache(tmp_path).encode(encoder, items, show_progress=False)
    assert (encoder.calls, encoder.items_encoded) == (4, 50)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32 and first.shape == (50, 8)
    assert cache.stats["test/fake-encoder"] == {
        "requested": 100,
        "unique": 100,
        "hits": 50,
        "encoded": 50,
        "shards_written": 4,
        "shards_quarantined": 0,
    }


def test_order_and_duplicates_preserved(tmp_path):
    encoder = FakeEncoder()
    cache = EmbeddingCache(tmp_path)
    cache.encode(encoder, ["b", "d"], show_progress=False)
    items = ["c", "a", "b", "a", "d", "c", "c"]
    out = cache.encode(encoder, items, chunk_size=1, show_progress=False)
    np.testing.assert_array_equal(out, np.stack([encoder.vector(x) for x in items]))
    assert encoder.items_encoded == 4  # b, d, then only the missing a, c
    assert cache.stats["test/fake-encoder"]["hits"] == 2
    assert cache.encode(encoder, [], show_progress=False).shape == (0, 8)


def test_resume_after_kill_encodes_only_the_rest(tmp_path):
    items = texts(100)
    clean = EmbeddingCache(tmp_path / "clean").encode(
        FakeEncoder(), items, chunk_size=10, show_progress=False
    )

    killed = FakeEncoder(fail_after=3)
    with pytest.raises(RuntimeError, match="simulated kill"):
        EmbeddingCache(tmp_path / "run").encode(killed, items, chunk_size=10, show_progress=False)
    assert killed.items_encoded == 30

    rerun = FakeEncoder()
    resumed = EmbeddingCache(tmp_path / "run").encode(
        rerun, items, chunk_size=10, show_progress=False
    )
    assert rerun.items_encoded == 70
    np.testing.assert_array_equal(resumed, clean)


def test_vectors_without_sidecar_are_not_trusted(tmp_path, monkeypatch):
    """Killed between writing a chunk's vectors and its sidecar: the chunk is encoded again."""
    real_write = cache_module.atomic_write

    def write_then_die_on_sidecar(path, write):
        if path.suffix == ".json":
            raise KeyboardInterrupt
        real_write(path, write)

    encoder, items = FakeEncoder(), texts(10)
    monkeypatch.setattr(cache_module, "atomic_write", write_then_die_on_sidecar)
    with pytest.raises(KeyboardInterrupt):
        EmbeddingCache(tmp_path).encode(encoder, items, show_progress=False)
    monkeypatch.undo()

    cache = EmbeddingCache(tmp_path)
    assert len(shard_files(cache, encoder)) == 1  # the orphan .npy
    out = cache.encode(encoder, items, show_progress=False)
    assert encoder.items_encoded == 20
    np.testing.assert_array_equal(out, np.stack([encoder.vector(x) for x in items]))
    assert list((cache.folder(encoder) / "shards").glob(".*.tmp")) == []


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    """A writer killed mid-write leaves `.<name>.<host>-<pid>-<random>.tmp`: the next run removes
    it when no process of that pid runs on this host, and keeps a live writer's (and another
    host's) temporaries."""
    encoder = FakeEncoder()
    cache = EmbeddingCache(tmp_path)
    cache.encode(encoder, texts(3), show_progress=False)
    shards = cache.folder(encoder) / "shards"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    host = files.HOST.replace(".", "_")
    left = {
        "dead": shards / f".x.npy.{host}-{dead}-0123abcd.tmp",
        "live": shards / f".x.npy.{host}-{os.getpid()}-0123abcd.tmp",
        "other host": shards / f".x.npy.elsewhere-{dead}-0123abcd.tmp",
        "not ours": shards / ".x.npy.tmp",
    }
    for path in left.values():
        path.write_bytes(b"partial")
    partial = cache.folder(encoder) / f".manifest.json.{host}-{dead}-89abcdef.partial"
    partial.mkdir()
    EmbeddingCache(tmp_path).encode(encoder, texts(3), show_progress=False)
    assert {k for k, p in left.items() if p.exists()} == {"live", "other host", "not ours"}
    assert not partial.exists()
    written = next(shards.glob("*.npy"))
    assert written.stat().st_mode & 0o777 == files.FILE_MODE  # the umask's, not mkstemp's 0600


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def flip_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10
    path.write_bytes(bytes(data))


def break_sidecar(path: Path) -> None:
    sidecar = path.with_suffix(".json")
    sidecar.write_text(sidecar.read_text()[:40])


def nan_with_matching_sidecar(path: Path) -> None:
    """A shard whose sidecar agrees with its bytes, but whose vectors hold a NaN (written by a
    tool that bypassed the cache's own checks): only a finiteness check on reading catches it."""
    vectors = np.load(path)
    vectors[3, 1] = np.nan
    np.save(path, vectors)
    sidecar = path.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta.update(nbytes=path.stat().st_size, sha256=file_sha256(path))
    sidecar.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", [truncate, flip_bit, break_sidecar, nan_with_matching_sidecar])
def test_corrupt_shard_is_quarantined_and_reencoded(tmp_path, caplog, damage):
    encoder, items = FakeEncoder(), texts(30)
    clean = EmbeddingCache(tmp_path).encode(encoder, items, chunk_size=10, show_progress=False)
    bad = shard_files(EmbeddingCache(tmp_path), encoder)[1]
    damage(bad)

    with pytest.raises(CacheCorruptError, match=bad.stem):
        EmbeddingCache(tmp_path, strict=True).encode(encoder, items, show_progress=False)
    assert bad.exists()  # strict mode moves nothing

    cache = EmbeddingCache(tmp_path)
    with caplog.at_level(logging.WARNING, logger="drift.encoders.cache"):
        out = cache.encode(encoder, items, show_progress=False)
    assert bad.stem in caplog.text
    np.testing.assert_array_equal(out, clean)
    assert encoder.items_encoded == 40  # 30, then the 10 of the bad shard again
    assert cache.stats["test/fake-encoder"]["shards_quarantined"] == 1
    quarantine = cache.folder(encoder) / "quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == [f"{bad.stem}.json", f"{bad.stem}.npy"]
    assert not bad.exists()


def test_manifest_disagreeing_with_encoder_raises(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.encode(FakeEncoder(dim=8), ["x"], show_progress=False)
    with pytest.raises(CacheCorruptError, match=r"dim: cache has 8, encoder has 16.*delete"):
        EmbeddingCache(tmp_path).encode(FakeEncoder(dim=16), ["x"], show_progress=False)

    relabelled = FakeEncoder()
    relabelled.real_weights = True
    with pytest.raises(CacheCorruptError, match="real_weights"):
        EmbeddingCache(tmp_path).encode(relabelled, ["x"], show_progress=False)


def test_nan_output_raises_and_keeps_earlier_chunks(tmp_path):
    items = texts(30)
    encoder = FakeEncoder(nan_items=[items[25]])
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(VectorError, match=r"test/fake-encoder.*NaN.*'item 25'"):
        cache.encode(encoder, items, chunk_size=10, show_progress=False)
    assert len(shard_files(cache, encoder)) == 2

    fixed = FakeEncoder()
    EmbeddingCache(tmp_path).encode(fixed, items, chunk_size=10, show_progress=False)
    assert fixed.items_encoded == 10


def test_wrong_output_dimension_raises(tmp_path):
    cache = EmbeddingCache(tmp_path)
    with pytest.raises(VectorError, match=r"shape \(3, 5\).*\[3, 8\]"):
        cache.encode(FakeEncoder(out_dim=5), texts(3), show_progress=False)
    assert shard_files(cache, FakeEncoder()) == []


def test_images_are_keyed_by_bytes(tmp_path):
    a, a_copy, b = tmp_path / "a.png", tmp_path / "copy-of-a.png", tmp_path / "b.png"
    a.write_bytes(b"\x89PNG fake image A")
    a_copy.write_bytes(a.read_bytes())
    b.write_bytes(b"\x89PNG fake image B")
    encoder = FakeEncoder(modality="image")
    cache = EmbeddingCache(tmp_path / "cache")

    out = cache.encode(encoder, [str(a), str(a_copy), str(b)], show_progress=False)
    assert encoder.items_encoded == 2
    np.testing.assert_array_equal(out[0], out[1])

    b.write_bytes(b"\x89PNG fake image B, edited")
    changed = cache.encode(encoder, [str(a), str(b)], show_progress=False)
    assert encoder.items_encoded == 3
    np.testing.assert_array_equal(changed[1], encoder.vector(str(b)))

    with pytest.raises(ImageReadError, match="missing.png"):
        cache.encode(encoder, [str(tmp_path / "missing.png")], show_progress=False)


def test_asymmetric_roles_are_cached_separately(tmp_path):
    items = texts(5)
    cache = EmbeddingCache(tmp_path)
    asym = FakeEncoder(asymmetric=True)
    queries = cache.encode(asym, items, role="query", show_progress=False)
    documents = cache.encode(asym, items, role="document", show_progress=False)
    assert asym.items_encoded == 10
    assert cache.folder(asym, "query") != cache.folder(asym, "document")
    assert not np.array_equal(queries, documents)
    np.testing.assert_array_equal(queries, cache.encode(asym, items, role="query"))
    assert asym.items_encoded == 10

    sym = FakeEncoder()
    sym.name = "test/symmetric"
    cache.encode(sym, items, role="query", show_progress=False)
    cache.encode(sym, items, role="document", show_progress=False)
    assert sym.items_encoded == 5


def test_cached_encoder_follows_the_protocol(tmp_path):
    encoder = FakeEncoder(asymmetric=True)
    wrapped = CachedEncoder(encoder, EmbeddingCache(tmp_path), chunk_size=2)
    assert isinstance(wrapped, Encoder)
    for attr in ("name", "revision", "dim", "modality", "real_weights", "preprocessing"):
        assert getattr(wrapped, attr) == getattr(encoder, attr)
    out = wrapped.encode(texts(5), role="query")
    assert encoder.calls == 3
    np.testing.assert_array_equal(out[4], encoder.vector("item 4", "query"))


def test_folder_names_are_safe_and_distinct():
    assert folder_name("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers__all-MiniLM-L6-v2"
    )
    names = {folder_name(n) for n in ("a/b", "a__b", "a b", "a_b", "..", "")}
    assert len(names) == 6
    assert all("/" not in n and n not in ("", ".", "..") for n in names)
    assert item_digest("é", "text") == hashlib.sha256("é".encode()).hexdigest()


def encode_in_child(root: str, start: int, queue) -> None:
    encoder = FakeEncoder(delay=0.01)
    EmbeddingCache(root).encode(encoder, texts(120)[start : start + 80], chunk_size=7)
    queue.put(encoder.items_encoded)


def test_two_processes_share_one_cache(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    jobs = [ctx.Process(target=encode_in_child, args=(str(tmp_path), s, queue)) for s in (0, 40)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=60)
    assert [job.exitcode for job in jobs] == [0, 0]
    assert sorted(queue.get() for _ in jobs)[0] >= 40  # each encoded at least its own 40 items

    encoder = FakeEncoder()
    cache = EmbeddingCache(tmp_path, strict=True)
    out = cache.encode(encoder, texts(120), show_progress=False)
    assert encoder.items_encoded == 0
    np.testing.assert_array_equal(out, np.stack([encoder.vector(x) for x in texts(120)]))
    manifest = json.loads((cache.folder(encoder) / "manifest.json").read_text())
    assert manifest["dim"] == 8 and manifest["name"] == "test/fake-encoder"


def test_shards_are_verified_once_per_process(tmp_path, monkeypatch):
    encoder, items = FakeEncoder(), texts(30)
    EmbeddingCache(tmp_path).encode(encoder, items, chunk_size=10, show_progress=False)
    hashed: list[Path] = []
    real_sha256 = cache_module.file_sha256
    monkeypatch.setattr(cache_module, "file_sha256", lambda p: hashed.append(p) or real_sha256(p))
    cache = EmbeddingCache(tmp_path)
    first = cache.encode(encoder, items, show_progress=False)
    second = cache.encode(encoder, items, show_progress=False)
    assert len(hashed) == 3
    np.testing.assert_array_equal(first, second)

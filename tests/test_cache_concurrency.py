"""The embedding cache under concurrent writers and readers, as real OS processes.

Writers on the same and overlapping items, a reader polling while they commit, and writers
killed with SIGKILL at each point inside a commit (the vectors' temporary half written, the
vectors renamed but no sidecar yet, the sidecar's temporary half written, both renamed but the
folder not yet synced, the manifest linked but its temporary not yet removed). Afterwards a
strict cache (a corrupt shard raises instead of being quarantined) must serve every item with
exactly the vectors its encoder gives, encode only what no commit finished, and the folder must
hold no temporaries and no orphaned vectors.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import drift.encoders.cache as cache_module
from drift.encoders.cache import EmbeddingCache

FORK = multiprocessing.get_context("fork")
DIM = 16


class ContentEncoder:
    """Test double, not a model: each vector is drawn from a RNG seeded by the item's text;
    counts the items it encodes; sleeps `delay` seconds per call so that processes interleave."""

    name = "test/content-encoder"
    revision = "test-double"
    dim = DIM
    modality = "synthetic"
    real_weights = False
    preprocessing = "none"
    asymmetric = False

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.items_encoded = 0

    def encode(self, items, *, role="document", batch_size=None, show_progress=False):
        self.items_encoded += len(items)
        time.sleep(self.delay)
        return np.stack([vector(item) for item in items])


def vector(item: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(item.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def texts(lo: int, hi: int) -> list[str]:
    return [f"item {i}" for i in range(lo, hi)]


def expected(items: list[str]) -> np.ndarray:
    return np.stack([vector(item) for item in items])


def leftovers(root: Path) -> list[Path]:
    """Temporaries (hidden files or folders) and vectors without a sidecar under `root`."""
    hidden = [p for p in root.rglob(".*")]
    orphans = [p for p in root.rglob("shards/*.npy") if not p.with_suffix(".json").exists()]
    return hidden + orphans


def check_complete(root: Path, items: list[str]) -> ContentEncoder:
    """A strict cache serves `items` exactly; returns the encoder that filled its gaps."""
    encoder = ContentEncoder()
    out = EmbeddingCache(root, strict=True).encode(encoder, items, chunk_size=5)
    np.testing.assert_array_equal(out, expected(items))
    return encoder


# -- several writers ------------------------------------------------------------------------------
def write(root: str, lo: int, hi: int, chunk: int) -> None:
    EmbeddingCache(root).encode(ContentEncoder(delay=0.002), texts(lo, hi), chunk_size=chunk)


def test_overlapping_writers_lose_and_corrupt_nothing(tmp_path: Path) -> None:
    """Four writers: two on the same 120 items, two on halves overlapping them and each other,
    with different chunk sizes so their commits interleave."""
    ranges = [(0, 120, 7), (0, 120, 11), (60, 180, 5), (100, 200, 13)]
    jobs = [FORK.Process(target=write, args=(str(tmp_path), *r)) for r in ranges]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
    assert [job.exitcode for job in jobs] == [0] * len(jobs)
    assert check_complete(tmp_path, texts(0, 200)).items_encoded == 0
    shards = list(tmp_path.rglob("shards/*.json"))
    # every item is in at least one committed shard, some in several (the writers overlapped)
    assert sum(len(json.loads(s.read_text())["digests"]) for s in shards) >= 200
    assert list(tmp_path.rglob("quarantine/*")) == []
    assert leftovers(tmp_path) == []


def read_while_writing(root: str, stop_at: float, report) -> None:
    """Poll the cache until `stop_at`: every vector found must be whole and right (a strict
    cache raises on a shard that does not match its sidecar)."""
    items = texts(0, 150)
    reads = seen_max = 0
    encoder = ContentEncoder()
    try:
        while time.time() < stop_at:
            cache = EmbeddingCache(root, strict=True)
            missing = set(cache.missing(encoder, items))
            have = [item for item in items if item not in missing]
            if have:
                out = cache.encode(encoder, have)
                np.testing.assert_array_equal(out, expected(have))
            assert encoder.items_encoded == 0
            reads += 1
            seen_max = max(seen_max, len(have))
        report.put(("ok", reads, seen_max))
    except BaseException as err:  # report any failure to the parent instead of dying silently
        report.put(("failed", repr(err), seen_max))


def test_a_reader_never_sees_a_partial_shard(tmp_path: Path) -> None:
    EmbeddingCache(tmp_path).encode(ContentEncoder(), texts(0, 1))  # the folder and manifest
    report = FORK.Queue()
    reader = FORK.Process(target=read_while_writing, args=(str(tmp_path), time.time() + 6, report))
    reader.start()
    writers = [
        FORK.Process(target=write, args=(str(tmp_path), lo, 150, chunk))
        for lo, chunk in ((0, 3), (50, 4))
    ]
    for job in writers:
        job.start()
    for job in [*writers, reader]:
        job.join(timeout=120)
    status, reads, seen_max = report.get(timeout=5)
    assert status == "ok", reads
    assert reads > 3 and seen_max >= 1  # it did read while shards were being committed
    assert check_complete(tmp_path, texts(0, 150)).items_encoded == 0


# -- writers killed inside a commit ---------------------------------------------------------------
def hang(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    time.sleep(600)


def stop_in_write(marker: Path, suffix: str, partial: bool) -> Callable[[], None]:
    """Patch the cache so that the second commit stops inside the write of its `suffix` file:
    with `partial`, after half of the temporary's bytes; else once that file is renamed into
    place (before what follows it in the commit)."""
    real_atomic, real_data = cache_module.atomic_write, cache_module._write_data
    seen = {"count": 0}

    def data(payload):
        inner = real_data(payload)

        def write_half(path: Path) -> None:
            inner(path)
            seen["count"] += path.parent.name == "shards" and suffix in path.name
            if partial and seen["count"] == 2:
                raw = path.read_bytes()
                path.write_bytes(raw[: len(raw) // 2])
                hang(marker)

        return write_half

    def atomic(path: Path, writer):
        out = real_atomic(path, writer)
        if not partial and path.suffix == suffix and seen["count"] == 2:
            hang(marker)
        return out

    def patch() -> None:
        cache_module._write_data = data
        cache_module.atomic_write = atomic

    return patch


def stop_before_folder_sync(marker: Path) -> Callable[[], None]:
    real = cache_module.fsync_folder
    seen = {"count": 0}

    def sync(folder: Path) -> None:
        if folder.name == "shards":
            seen["count"] += 1
            if seen["count"] == 2:
                hang(marker)
        real(folder)

    def patch() -> None:
        cache_module.fsync_folder = sync

    return patch


def stop_after_manifest_link(marker: Path) -> Callable[[], None]:
    real = os.link

    def link(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if str(dst).endswith("manifest.json"):
            hang(marker)

    def patch() -> None:
        cache_module.os.link = link  # the cache's `os` is this module's os: the child's copy

    return patch


KILL_POINTS = {
    "vectors temporary half written": lambda m: stop_in_write(m, ".npy", partial=True),
    "vectors renamed, no sidecar yet": lambda m: stop_in_write(m, ".npy", partial=False),
    "sidecar temporary half written": lambda m: stop_in_write(m, ".json", partial=True),
    "sidecar renamed, folder not synced": stop_before_folder_sync,
    "manifest linked, temporary not removed": stop_after_manifest_link,
}


def killed_writer(root: str, marker: str, point: str) -> None:
    KILL_POINTS[point](Path(marker))()
    EmbeddingCache(root).encode(ContentEncoder(), texts(0, 30), chunk_size=10)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_writer_killed_inside_a_commit_leaves_nothing_trusted_wrongly(
    tmp_path: Path, point: str
) -> None:
    root, marker = tmp_path / "cache", tmp_path / "stopped"
    job = FORK.Process(target=killed_writer, args=(str(root), str(marker), point))
    job.start()
    deadline = time.time() + 60
    while not marker.exists() and job.is_alive() and time.time() < deadline:
        time.sleep(0.01)
    assert marker.exists(), f"the writer never reached {point!r} (exit {job.exitcode})"
    os.kill(job.pid, signal.SIGKILL)
    job.join(timeout=10)
    assert job.exitcode == -signal.SIGKILL

    encoder = check_complete(root, texts(0, 30))  # strict: a trusted bad shard would raise
    committed = {
        "vectors temporary half written": 10,  # the first chunk only
        "vectors renamed, no sidecar yet": 10,
        "sidecar temporary half written": 10,
        "sidecar renamed, folder not synced": 20,  # the second chunk is committed
        "manifest linked, temporary not removed": 0,
    }[point]
    assert encoder.items_encoded == 30 - committed
    assert leftovers(root) == []  # the killed writer's temporaries and orphans are gone

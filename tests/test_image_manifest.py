"""The image-folder manifest (drift.data.image_manifest): an unchanged folder is loaded without
hashing or decoding any image; a changed file is re-checked alone; a damaged manifest is rebuilt
from the files with a warning."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import drift.core.digests as digests
import drift.data.images as images
from drift.data.image_manifest import manifest_path
from drift.data.images import load_image_folder
from drift.encoders.cache import item_digest


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    for i in range(6):
        (root / f"f{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"f{i % 2}" / f"p{i}.png").write_bytes(png(i))
    (root / "f0" / "broken.png").write_bytes(b"not an image")
    return root


class Counter:
    """Counts the files hashed and decoded by the loader."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hashed: list[str] = []
        self.decoded: list[str] = []
        sha, decode = images.file_digest, images.load_image
        monkeypatch.setattr(
            images, "file_digest", lambda p: self.hashed.append(Path(p).name) or sha(p)
        )
        monkeypatch.setattr(
            images, "load_image", lambda p: self.decoded.append(Path(p).name) or decode(p)
        )
        monkeypatch.setattr(images, "load_threads", lambda: 1)

    def clear(self) -> None:
        self.hashed.clear()
        self.decoded.clear()


def load(root: Path, tmp_path: Path):
    return load_image_folder(
        path=root, n_queries=2, seed=0, data_dir=tmp_path, manifest_dir=tmp_path / "manifests"
    )


def test_unchanged_folder_is_not_hashed_again(folder, tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    first = load(folder, tmp_path)
    assert len(counter.hashed) == 7 and len(counter.decoded) == 7
    assert first.meta["manifest"]["checked"] == 7 and first.meta["manifest"]["reused"] == 0
    counter.clear()
    second = load(folder, tmp_path)
    assert counter.hashed == [] and counter.decoded == []  # touch nothing -> no hashing
    assert second.meta["manifest"]["reused"] == 7 and second.meta["manifest"]["checked"] == 0
    assert (second.revision, second.corpus, second.query_ids) == (
        first.revision,
        first.corpus,
        first.query_ids,
    )
    assert second.meta["skipped"] == first.meta["skipped"] == {"unreadable": 1}
    without = load_image_folder(path=folder, n_queries=2, seed=0, data_dir=tmp_path)
    assert without.revision == first.revision and "manifest" not in without.meta


def test_changed_file_is_rehashed_alone(folder, tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    first = load(folder, tmp_path)
    counter.clear()
    changed = folder / "f1" / "p3.png"
    changed.write_bytes(png(99))
    (folder / "f0" / "p8.png").write_bytes(png(8))  # a new file
    (folder / "f0" / "p4.png").unlink()  # a removed one
    second = load(folder, tmp_path)
    assert sorted(counter.hashed) == ["p3.png", "p8.png"]
    assert second.revision != first.revision
    entries = json.loads(manifest_path(folder, tmp_path / "manifests").read_text())["entries"]
    assert "f0/p4.png" not in entries and "f0/p8.png" in entries
    counter.clear()
    same_size = folder / "f1" / "p5.png"  # same bytes count, new mtime: re-checked too
    st = same_size.stat()
    os.utime(same_size, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    load(folder, tmp_path)
    assert counter.hashed == ["p5.png"]


def test_the_embedding_cache_reuses_the_manifests_digests(folder, tmp_path, monkeypatch):
    """After a load that took every digest from the manifest, keying the images for the cache
    reads no file; a file touched since is read and hashed again, alone."""
    load(folder, tmp_path)
    digests._KNOWN.clear()  # as in a new process: only the manifest knows the digests
    data = load(folder, tmp_path)
    assert data.meta["manifest"]["reused"] == 7
    read: list[str] = []
    real = digests.hashlib.file_digest
    monkeypatch.setattr(
        digests.hashlib, "file_digest", lambda f, name: read.append(f.name) or real(f, name)
    )
    keys = [item_digest(path, "image") for path in data.corpus]
    assert read == []
    touched = data.corpus[0]
    st = os.stat(touched)
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert [item_digest(path, "image") for path in data.corpus] == keys  # same bytes
    assert [Path(name).name for name in read] == [Path(touched).name]


@pytest.mark.parametrize("damage", ["garbage", "edited_entry", "other_root"])
def test_damaged_manifest_is_rebuilt_with_a_warning(folder, tmp_path, monkeypatch, caplog, damage):
    counter = Counter(monkeypatch)
    first = load(folder, tmp_path)
    path = manifest_path(folder, tmp_path / "manifests")
    payload = json.loads(path.read_text())
    if damage == "garbage":
        path.write_text('{"format": 1, "entr')
    elif damage == "edited_entry":  # a wrong hash would silently change the data: refused
        payload["entries"]["f0/p0.png"]["sha256"] = "0" * 64
        path.write_text(json.dumps(payload))
    else:
        payload["root"] = "/somewhere/else"
        path.write_text(json.dumps(payload))
    counter.clear()
    with caplog.at_level(logging.WARNING):
        rebuilt = load(folder, tmp_path)
    assert "discarded" in caplog.text and "rebuilding" in caplog.text
    assert len(counter.hashed) == 7
    assert rebuilt.meta["manifest"]["rebuilt_because"]
    assert rebuilt.revision == first.revision
    counter.clear()
    assert load(folder, tmp_path).meta["manifest"]["rebuilt_because"] is None
    assert counter.hashed == []

"""A verified manifest of an image folder, so a later load re-reads only the files that changed.

Loading an image folder hashes every file (the sha256 that drops duplicates and names the data's
revision) and decodes it once (to skip unreadable images): minutes at a million images, every run.
The manifest keeps, per image path under the root, the file's size and mtime_ns and what the check
found (sha256, unreadable or not). A file whose path, size and mtime_ns all match its entry is
taken from the manifest without being opened; any other is hashed and decoded, and the manifest
is rewritten (atomically) when anything changed. As with make or rsync, a file rewritten with the
same size and its old mtime restored by hand would not be noticed.

    <manifest_dir>/<folder name>-<sha256 of the root path, 16 hex>.json
        {"format": 1, "root": ..., "checksum": sha256 of the entries' canonical JSON,
         "entries": {"<path under root>": {"size", "mtime_ns", "sha256", "problem", "detail"}}}

A manifest that cannot be read, has another format or root, or fails its checksum is rebuilt from
the files, with a warning naming it and the reason: it holds nothing that the files themselves do
not, so rebuilding costs one full check (what a first load costs) and loses nothing, where an
error would stop a run for a cache the loader can repair itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from drift.core.digests import remember_file_digest
from drift.core.files import atomic_write, clean_stale

log = logging.getLogger(__name__)

FORMAT = 1
FIELDS = ("size", "mtime_ns", "sha256", "problem", "detail")


class CheckedImage(Protocol):
    """What the manifest reads and fills in (drift.data.images.Sample)."""

    id: str
    path: str
    sha256: str
    problem: str | None
    detail: str


def manifest_path(root: Path, manifest_dir: Path) -> Path:
    """The manifest file of the folder `root`."""
    resolved = str(root.resolve())
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    return manifest_dir / f"{root.resolve().name or 'root'}-{digest}.json"


def checksum(entries: dict[str, dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def read_manifest(path: Path, root: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """(entries, why they were discarded or None); no file: ({}, None)."""
    if not path.exists():
        return {}, None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        entries = payload["entries"]
        if payload.get("format") != FORMAT:
            return {}, f"format {payload.get('format')!r}, expected {FORMAT}"
        if payload.get("root") != str(root.resolve()):
            return {}, f"it describes {payload.get('root')!r}"
        if payload.get("checksum") != checksum(entries):
            return {}, "its checksum does not match its entries"
        for rel, entry in entries.items():
            if set(entry) != set(FIELDS):
                return {}, f"entry {rel!r} has fields {sorted(entry)}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return {}, f"unreadable ({type(err).__name__}: {err})"
    return entries, None


def check_with_manifest(
    samples: Sequence[CheckedImage],
    root: Path,
    manifest_dir: Path,
    check: Callable[[list[CheckedImage]], None],
) -> dict[str, Any]:
    """Fill in sha256 / problem / detail of each unproblematic sample: from the manifest where
    the file's size and mtime_ns match its entry, else by `check` (hash and decode). Returns what
    happened (for the dataset's meta): the manifest's path, images reused and checked, and why
    an existing manifest was rebuilt (None when it was not)."""
    path = manifest_path(root, manifest_dir)
    known, discarded = read_manifest(path, root)
    if discarded:
        log.warning(
            "image manifest %s discarded (%s); rebuilding it from the files", path, discarded
        )
    entries: dict[str, dict[str, Any]] = {}
    stale: list[tuple[CheckedImage, os.stat_result | None]] = []
    reused = 0
    for sample in samples:
        if sample.problem is not None:
            continue
        try:
            st: os.stat_result | None = os.stat(sample.path)
        except OSError:
            st = None  # check() reports it unreadable; nothing to record
        entry = known.get(sample.id)
        if (
            st is not None
            and entry is not None
            and (entry["size"], entry["mtime_ns"]) == (st.st_size, st.st_mtime_ns)
        ):
            sample.sha256, sample.problem, sample.detail = (
                entry["sha256"],
                entry["problem"],
                entry["detail"],
            )
            remember_file_digest(sample.path, st.st_size, st.st_mtime_ns, entry["sha256"])
            entries[sample.id] = entry
            reused += 1
        else:
            stale.append((sample, st))
    check([sample for sample, _ in stale])
    for sample, st in stale:  # the stat taken before the check: a file changed since is redone
        if st is not None and sample.sha256:
            entries[sample.id] = {
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": sample.sha256,
                "problem": sample.problem,
                "detail": sample.detail,
            }
    if entries != known:
        _write(path, root, entries)
    if stale:
        log.info("image manifest %s: %d images reused, %d checked", path, reused, len(stale))
    return {
        "path": str(path),
        "reused": reused,
        "checked": len(stale),
        "rebuilt_because": discarded,
    }


def _write(path: Path, root: Path, entries: dict[str, dict[str, Any]]) -> None:
    payload = {
        "format": FORMAT,
        "root": str(root.resolve()),
        "checksum": checksum(entries),
        "entries": entries,
    }
    text = json.dumps(payload, sort_keys=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path.parent)
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as err:  # a read-only cache: the load still works, the next one rechecks
        log.warning("cannot write image manifest %s (%s); images will be checked again", path, err)

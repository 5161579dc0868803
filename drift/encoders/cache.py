"""Content-addressed, resumable, corruption-safe embedding cache.

Vectors are keyed by the sha256 of each item's content (the text, or an image file's bytes), per
model folder:

    <root>/<model name>/<revision>/<hash of preprocessing (+ role if asymmetric)>/
        manifest.json              what wrote this folder; written once, checked on every open
        shards/<id>.npy            float32 [n, dim] vectors of one encoded chunk; <id> is
                                   <time ns>-<host>-<pid>-<random> of the writer
        shards/<id>.json           sidecar: item digests, shape, dtype, sha256 of the .npy bytes
                                   (checked, with the vectors' finiteness, when first read)
        quarantine/                shards found corrupt, moved aside (never deleted)

Each chunk is committed on its own: the .npy is written to a temp file, fsynced and renamed, then
its sidecar likewise; a shard exists only once its sidecar does. A process killed mid-encode
loses at most the chunk in flight, and the next call encodes only what is missing; a .npy whose
sidecar never came (its writer, of this host, is gone) is removed by the next process to open the
folder. Shard names are unique per writer and nothing is ever rewritten in place, so parallel
jobs can share a root: writers on overlapping items may each commit a shard holding an item,
and readers use whichever they found first (tests/test_cache_concurrency.py runs them as real
processes, killed inside the commit too).

    cache = EmbeddingCache("cache/embeddings")
    x = cache.encode(encoder, texts, role="document")   # or CachedEncoder(encoder, cache)

A run's two models behind one cache are a ModelPair; `encode_corpus_and_queries` encodes a
dataset's corpus and queries with both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from drift.core.digests import file_digest, file_sha256
from drift.core.errors import (
    CacheCorruptError,
    CacheIncompleteError,
    ConfigError,
    DataError,
    ImageReadError,
    VectorError,
)
from drift.core.files import (
    atomic_write,
    clean_stale,
    fsync_folder,
    write_temporary,
    writer_gone,
    writer_tag,
)
from drift.core.timing import Timings
from drift.encoders.base import Encoder, Modality, Role
from drift.encoders.batching import plan_batches

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODALITIES = ("text", "image", "synthetic")
ROLES = ("query", "document")
# manifest keys that must equal the encoder's attributes for a folder to be reused
MODEL_META = ("name", "revision", "dim", "modality", "preprocessing", "real_weights", "role")
# a shard's name: <time ns>-<host>-<pid>-<random> (shards of older caches lack the host)
_SHARD_NAME = re.compile(r"^\d{20}-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}$")


def item_digest(item: str, modality: Modality) -> str:
    """sha256 hex of an item's content: the UTF-8 text, or for images the file's bytes (the
    digest the image loader found, while the file's size and mtime match: drift.core.digests)."""
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    if not isinstance(item, str):
        raise DataError(f"{modality} items must be str, got {type(item).__name__}: {item!r:.80}")
    if modality != "image":
        return hashlib.sha256(item.encode("utf-8", "surrogatepass")).hexdigest()
    try:
        return file_digest(item)  # reused when the image loader already hashed this file
    except OSError as err:
        raise ImageReadError(f"cannot read image file {item!r}: {err}") from err


def folder_name(text: str) -> str:
    """A safe folder name for a model name or revision; "/" becomes "__".

    Where anything else had to change (so two names could meet), a short hash of the original
    keeps the folder unique.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text.replace("/", "__"))
    if safe.replace("__", "/") == text and text not in ("", ".", ".."):
        return safe
    return f"{safe}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def new_stats() -> dict[str, int]:
    """Counters kept per model name in `EmbeddingCache.stats`.

    requested: items asked for (duplicates included); unique: distinct items among them;
    hits: distinct items served from the cache; encoded: distinct items run through the encoder.
    """
    return dict.fromkeys(
        ("requested", "unique", "hits", "encoded", "shards_written", "shards_quarantined"), 0
    )


def _write_data(data: bytes | np.ndarray) -> Callable[[Path], None]:
    """A writer of bytes (or an array, as .npy) for drift.core.files."""

    def write(path: Path) -> None:
        with open(path, "wb") as handle:
            if isinstance(data, np.ndarray):
                np.save(handle, data, allow_pickle=False)
            else:
                handle.write(data)

    return write


def _json_bytes(payload: dict[str, Any]) -> bytes:
    return (json.dumps(payload, indent=1) + "\n").encode()


@dataclass(frozen=True)
class Shard:
    """One committed shard, as its sidecar describes it."""

    name: str
    digests: list[str]
    nbytes: int
    sha256: str


class ModelStore:
    """The shards of one model folder, as seen by this process."""

    def __init__(self, folder: Path, meta: dict[str, Any], stats: dict[str, int], strict: bool):
        self.folder = folder
        self.shard_dir = folder / "shards"
        self.dim = int(meta["dim"])
        self.label = f"{meta['name']}@{meta['revision']}"
        self.stats = stats
        self.strict = strict
        self.shards: dict[str, Shard] = {}
        self.index: dict[str, tuple[str, int]] = {}  # digest -> (shard name, row)
        self.verified: set[tuple[str, int, int, int]] = set()
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.folder, self.shard_dir):  # what killed writers left
            for path in clean_stale(folder):
                log.info("removed %s, a temporary of a writer that is gone", path)
        for path in self._orphans():
            path.unlink(missing_ok=True)
            log.info("removed %s, vectors whose writer died before committing them", path)
        self._open_manifest(meta)

    def _orphans(self) -> list[Path]:
        """Vectors files without a sidecar whose writer is gone: killed between the two renames
        of a commit, never trusted (the sidecar is the commit record), only litter."""
        orphans = []
        for npy in self.shard_dir.glob("*.npy"):
            match = _SHARD_NAME.match(npy.stem)
            if match is None or npy.with_suffix(".json").exists():
                continue
            if writer_gone(match["host"], int(match["pid"])):
                orphans.append(npy)
        return orphans

    # ---- manifest -------------------------------------------------------------------------

    def _open_manifest(self, meta: dict[str, Any]) -> None:
        """Publish the manifest if absent (atomic, never clobbering), else check it matches."""
        path = self.folder / "manifest.json"
        if not path.exists():
            payload = {"format": FORMAT_VERSION, **meta, "created": _now()}
            tmp = write_temporary(path, _write_data(_json_bytes(payload)))
            try:
                os.link(tmp, path)  # fails if another process published first
                fsync_folder(self.folder)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        fix = (
            f"delete {self.folder} to re-encode, or give the encoder a new revision or "
            "preprocessing string if the model really changed"
        )
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise CacheCorruptError(f"unreadable cache manifest {path}: {err}; {fix}") from err
        diff = {k: (found.get(k), meta[k]) for k in MODEL_META if found.get(k) != meta[k]}
        if diff:
            shown = ", ".join(
                f"{k}: cache has {a!r}, encoder has {b!r}" for k, (a, b) in diff.items()
            )
            raise CacheCorruptError(
                f"cache folder {self.folder} disagrees with the encoder ({shown}); {fix}"
            )

    # ---- reading --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up shards committed since the last look (by this or any other process)."""
        for sidecar in sorted(self.shard_dir.glob("*.json")):
            name = sidecar.stem
            if name in self.shards:
                continue
            try:
                shard = self._read_sidecar(sidecar)
            except FileNotFoundError:
                continue  # quarantined by another process in the meantime
            except (OSError, ValueError, KeyError, TypeError) as err:
                self._reject(name, f"unreadable sidecar ({type(err).__name__}: {err})")
                continue
            self.shards[name] = shard
            for row, digest in enumerate(shard.digests):
                self.index.setdefault(digest, (name, row))

    def _read_sidecar(self, path: Path) -> Shard:
        meta = json.loads(path.read_text())
        shape, digests = meta["shape"], meta["digests"]
        if meta["dtype"] != "float32" or shape != [len(digests), self.dim]:
            raise ValueError(
                f"sidecar says {meta['dtype']} {shape} for {len(digests)} digests, "
                f"expected float32 [{len(digests)}, {self.dim}]"
            )
        return Shard(path.stem, digests, int(meta["nbytes"]), str(meta["sha256"]))

    def locate(self, digests: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Where each cached digest lives, in verified shards only; corrupt shards are handled."""
        while True:
            self.refresh()
            found = {d: self.index[d] for d in digests if d in self.index}
            bad = {}
            for name in {loc[0] for loc in found.values()}:
                if not (self.shard_dir / f"{name}.json").exists():
                    self._forget(name)  # quarantined by another process
                    bad[name] = None
                    continue
                problem = self._verify(name)
                if problem:
                    bad[name] = problem
            if not bad:
                return found
            for name, problem in bad.items():
                if problem:
                    self._reject(name, problem)

    def _verify(self, name: str) -> str | None:
        """None when the shard's .npy matches its sidecar, else what is wrong with it.

        The sha256 of each shard is computed once per process (shards are never rewritten; the
        key includes size, mtime and inode in case one is replaced by hand).
        """
        shard = self.shards[name]
        path = self.shard_dir / f"{name}.npy"
        try:
            st = path.stat()
        except FileNotFoundError:
            return "vectors file is missing"
        key = (name, st.st_size, st.st_mtime_ns, st.st_ino)
        if key in self.verified:
            return None
        if st.st_size != shard.nbytes:
            return f"vectors file has {st.st_size} bytes, sidecar says {shard.nbytes}"
        if file_sha256(path) != shard.sha256:
            return "checksum mismatch"
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            return f"unreadable .npy ({err})"
        if array.dtype != np.float32 or array.shape != (len(shard.digests), self.dim):
            return (
                f"holds {array.dtype} {array.shape}, sidecar says float32 "
                f"{(len(shard.digests), self.dim)}"
            )
        if not np.isfinite(array).all():  # vectors are checked when written, and again here
            return "holds NaN or inf"
        self.verified.add(key)
        return None

    def _reject(self, name: str, problem: str) -> None:
        """Raise (strict) or move a corrupt shard to quarantine/ and forget its items."""
        where = self.shard_dir / name
        if self.strict:
            raise CacheCorruptError(
                f"corrupt cache shard {where}.npy of {self.label}: {problem}; delete {where}.npy "
                f"and {where}.json (or run without strict=True to quarantine and re-encode them)"
            )
        quarantine = self.folder / "quarantine"
        quarantine.mkdir(exist_ok=True)
        for suffix in (".json", ".npy"):  # the sidecar first: it is the commit record
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{where}{suffix}", quarantine / f"{name}{suffix}")
        log.warning(
            "corrupt cache shard %s.npy of %s (%s): moved to %s; its items will be re-encoded",
            where,
            self.label,
            problem,
            quarantine,
        )
        self.stats["shards_quarantined"] += 1
        self._forget(name)

    def _forget(self, name: str) -> None:
        """Drop a shard from this process's view (its items become misses)."""
        if self.shards.pop(name, None) is not None:
            self.index = {}
            for shard in self.shards.values():
                for row, digest in enumerate(shard.digests):
                    self.index.setdefault(digest, (shard.name, row))

    def gather(self, digests: Sequence[str], found: dict[str, tuple[str, int]]) -> np.ndarray:
        """float32 [len(digests), dim] vectors read from memmapped shards."""
        out = np.empty((len(digests), self.dim), dtype=np.float32)
        if not digests:
            return out
        shard_ids = {name: i for i, name in enumerate({loc[0] for loc in found.values()})}
        names = list(shard_ids)
        locs = [found[d] for d in digests]
        shard_of = np.fromiter((shard_ids[s] for s, _ in locs), dtype=np.int64, count=len(locs))
        row_of = np.fromiter((r for _, r in locs), dtype=np.int64, count=len(locs))
        order = np.argsort(shard_of, kind="stable")
        bounds = np.searchsorted(shard_of[order], np.arange(len(names) + 1))
        for i, name in enumerate(names):
            positions = order[bounds[i] : bounds[i + 1]]
            vectors = np.load(self.shard_dir / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            out[positions] = vectors[row_of[positions]]
        return out

    # ---- writing --------------------------------------------------------------------------

    def write(self, digests: list[str], vectors: np.ndarray) -> str:
        """Commit one shard (vectors, then its sidecar); return its name."""
        name = f"{time.time_ns():020d}-{writer_tag()}-{uuid.uuid4().hex[:8]}"
        npy = self.shard_dir / f"{name}.npy"
        atomic_write(npy, _write_data(vectors))
        nbytes, sha = npy.stat().st_size, file_sha256(npy)
        sidecar = {
            "format": FORMAT_VERSION,
            "shape": list(vectors.shape),
            "dtype": "float32",
            "nbytes": nbytes,
            "sha256": sha,
            "created": _now(),
            "digests": digests,
        }
        atomic_write(self.shard_dir / f"{name}.json", _write_data(_json_bytes(sidecar)))
        fsync_folder(self.shard_dir)
        self.shards[name] = Shard(name, digests, nbytes, sha)
        st = npy.stat()
        self.verified.add((name, st.st_size, st.st_mtime_ns, st.st_ino))
        for row, digest in enumerate(digests):
            self.index.setdefault(digest, (name, row))
        self.stats["shards_written"] += 1
        return name


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def cached_vectors(root: str | Path) -> dict[tuple[str, str], np.ndarray]:
    """Every vector committed under a cache root: {(model folder relative to root, item digest):
    float32 vector}, the first shard found winning where writers overlapped. Each shard is
    checked against its sidecar (size and sha256) first: CacheCorruptError otherwise. For
    comparing whole caches (a sharded encode against a one-process encode), not for runs."""
    root = Path(root)
    found: dict[tuple[str, str], np.ndarray] = {}
    for sidecar in sorted(root.rglob("shards/*.json")):
        meta = json.loads(sidecar.read_text())
        npy = sidecar.with_suffix(".npy")
        if npy.stat().st_size != meta["nbytes"] or file_sha256(npy) != meta["sha256"]:
            raise CacheCorruptError(f"cache shard {npy} does not match its sidecar {sidecar}")
        vectors = np.load(npy, allow_pickle=False)
        folder = sidecar.parent.parent.relative_to(root).as_posix()
        for digest, row in zip(meta["digests"], vectors, strict=True):
            found.setdefault((folder, digest), row)
    return found


class EmbeddingCache:
    """Embeddings on disk under `root`, shared safely by any number of processes.

    Args:
        root: the cache folder (created on first use).
        strict: raise CacheCorruptError on a corrupt shard instead of quarantining it and
            re-encoding its items.

    Attributes:
        stats: per model name, the counters of `new_stats` for this process (JSON-ready).
    """

    def __init__(self, root: str | Path, *, strict: bool = False):
        self.root = Path(root)
        self.strict = strict
        self.stats: dict[str, dict[str, int]] = {}
        self._stores: dict[Path, ModelStore] = {}

    def folder(self, encoder: Encoder, role: Role = "document") -> Path:
        """The model folder holding `encoder`'s vectors for `role`."""
        key = {"preprocessing": encoder.preprocessing, "role": self._key_role(encoder, role)}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        return self.root / folder_name(encoder.name) / folder_name(encoder.revision) / digest

    @staticmethod
    def _key_role(encoder: Encoder, role: Role) -> Role | None:
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; expected one of {ROLES}")
        return role if encoder.asymmetric else None

    def _store(self, encoder: Encoder, role: Role) -> ModelStore:
        folder = self.folder(encoder, role)
        store = self._stores.get(folder)
        if store is None:
            meta = {
                "name": encoder.name,
                "revision": encoder.revision,
                "dim": int(encoder.dim),
                "modality": encoder.modality,
                "preprocessing": encoder.preprocessing,
                "real_weights": bool(encoder.real_weights),
                "role": self._key_role(encoder, role),
            }
            stats = self.stats.setdefault(encoder.name, new_stats())
            store = self._stores[folder] = ModelStore(folder, meta, stats, self.strict)
        return store

    def missing(self, encoder: Encoder, items: Sequence[str], *, role: Role = "document") -> list:
        """The distinct items of `items` (in first-seen order) that `encode` would have to run
        through the encoder: not in a verified shard of its folder. Encodes nothing, and counts
        nothing in `stats`."""
        store = self._store(encoder, role)
        first: dict[str, str] = {}
        for item in items:
            first.setdefault(item_digest(item, encoder.modality), item)
        found = store.locate(list(first))
        return [item for digest, item in first.items() if digest not in found]

    def encode(
        self,
        encoder: Encoder,
        items: Sequence[str],
        *,
        role: Role = "document",
        batch_size: int | None = None,
        chunk_size: int = 1024,
        show_progress: bool = True,
    ) -> np.ndarray:
        """float32 [len(items), dim] vectors in the order of `items`; encodes only cache misses.

        Misses are encoded once per distinct item, in the batches of
        `drift.encoders.batching.plan_batches`: ordered by length across all misses (tokens where
        the encoder counts them), cut by the encoder's token budget, or by `batch_size` when the
        call gives one. Consecutive batches make a chunk of about `chunk_size` items (no batch is
        larger), committed to disk before the next starts; the progress bar moves per batch.
        """
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        store = self._store(encoder, role)
        items = list(items)
        digests = [item_digest(item, encoder.modality) for item in items]
        first: dict[str, int] = {}  # distinct digest -> its first position in items
        for pos, digest in enumerate(digests):
            first.setdefault(digest, pos)
        found = store.locate(list(first))
        missing = [d for d in first if d not in found]
        store.stats["requested"] += len(digests)
        store.stats["unique"] += len(first)
        store.stats["hits"] += len(found)

        todo = [items[first[d]] for d in missing]
        plan = plan_batches(encoder, todo, role=role, batch_size=batch_size, max_size=chunk_size)
        committed = 0
        with tqdm(
            total=len(missing),
            unit="item",
            desc=f"encode {encoder.name}",
            disable=not show_progress or not missing,
        ) as bar:
            for chunk in plan.chunks(chunk_size):
                parts = []
                for batch in chunk:
                    batch_items = [todo[i] for i in batch]
                    vectors = encoder.encode(
                        batch_items, role=role, batch_size=len(batch), show_progress=False
                    )
                    parts.append(_checked(vectors, batch_items, encoder, cached=committed))
                    bar.update(len(batch))
                rows = np.concatenate(chunk)
                chunk_digests = [missing[i] for i in rows]
                name = store.write(chunk_digests, np.concatenate(parts))
                found.update((d, (name, row)) for row, d in enumerate(chunk_digests))
                store.stats["encoded"] += len(rows)
                committed += len(rows)
        return store.gather(digests, found)


def _checked(vectors: Any, items: Sequence[str], encoder: Encoder, *, cached: int) -> np.ndarray:
    """Freshly encoded vectors as float32 [len(items), dim], or VectorError (nothing cached)."""
    x = np.asarray(vectors)
    expected = (len(items), encoder.dim)
    if x.shape != expected:
        raise VectorError(
            f"encoder {encoder.name!r} returned shape {x.shape} for {len(items)} items, expected "
            f"{list(expected)}; nothing was cached for this chunk"
        )
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        shown = ", ".join(f"{items[i]!r:.60}" for i in bad[:3])
        raise VectorError(
            f"encoder {encoder.name!r} ({encoder.revision}) returned NaN or inf for {bad.size} of "
            f"{len(items)} items (first: {shown}); nothing was cached for this chunk "
            f"(the {cached} items encoded before it in this call stay cached)"
        )
    return x


class CachedEncoder:
    """An Encoder whose `encode` goes through an EmbeddingCache; otherwise the same encoder."""

    def __init__(self, encoder: Encoder, cache: EmbeddingCache, *, chunk_size: int = 1024):
        self.encoder = encoder
        self.cache = cache
        self.chunk_size = chunk_size
        self.name = encoder.name
        self.revision = encoder.revision
        self.dim = encoder.dim
        self.modality = encoder.modality
        self.real_weights = encoder.real_weights
        self.preprocessing = encoder.preprocessing
        self.asymmetric = encoder.asymmetric

    def encode(
        self,
        items: Sequence[str],
        *,
        role: Role = "document",
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> np.ndarray:
        return self.cache.encode(
            self.encoder,
            items,
            role=role,
            batch_size=batch_size,
            chunk_size=self.chunk_size,
            show_progress=show_progress,
        )


SIDES = ("old", "new")


@dataclass(frozen=True)
class ModelPair:
    """A run's old and new model behind one cache, by side ("old", "new"): each side's corpus
    encoder and its query encoder, which is the corpus encoder itself unless the run names a
    separate query tower of the same model (CLIP text towers for captions against an image
    corpus); and how the run encodes (`encode.batch_size`, `encode.show_progress`, and
    `encode.require_cached`: refuse to encode, the cache must hold everything)."""

    corpus: Mapping[str, CachedEncoder]
    query: Mapping[str, CachedEncoder]
    cache: EmbeddingCache
    batch_size: int | None = None
    show_progress: bool = False
    require_cached: bool = False

    @property
    def separate_query(self) -> dict[str, CachedEncoder]:
        """The query encoders that are not their side's corpus encoder."""
        return {side: e for side, e in self.query.items() if e is not self.corpus[side]}

    @property
    def real_weights(self) -> bool:
        """Whether every model of the run has real (not random or synthetic) weights."""
        used = [*self.corpus.values(), *self.separate_query.values()]
        return all(encoder.real_weights for encoder in used)

    def encode(self, encoder: CachedEncoder, items: Sequence[Any], role: Role) -> np.ndarray:
        return encoder.encode(
            items, role=role, batch_size=self.batch_size, show_progress=self.show_progress
        )

    def query_encode(self, side: str) -> Callable[[Sequence[Any], Role], np.ndarray]:
        """`encode` through `side`'s query encoder (how query-role pairs are encoded)."""
        return functools.partial(self.encode, self.query[side])

    def parts(
        self, corpus: Sequence[Any], queries: Sequence[Any]
    ) -> list[tuple[str, Sequence[Any], Role, CachedEncoder]]:
        """(`<side>/<part>`, items, role, encoder) of each thing a run encodes up front: each
        side's corpus (document role, corpus encoder) and queries (query role, query encoder)."""
        return [
            (f"{side}/{part}", items, role, encoder)
            for side in SIDES
            for part, items, role, encoder in (
                ("corpus", corpus, "document", self.corpus[side]),
                ("queries", queries, "query", self.query[side]),
            )
        ]

    def check_cached(self, corpus: Sequence[Any], queries: Sequence[Any]) -> None:
        """CacheIncompleteError naming, per model and role, how many of the items a run would
        encode the cache lacks (what `encode.require_cached` asks for); nothing when none."""
        gaps = []
        for part, items, role, encoder in self.parts(corpus, queries):
            lacking = self.cache.missing(encoder.encoder, items, role=role)
            if lacking:
                gaps.append(
                    f"{encoder.name}@{encoder.revision} ({part}, role {role}): "
                    f"{len(lacking)} of {len(set(items))} distinct items, e.g. {lacking[0]!r:.60}"
                )
        if gaps:
            raise CacheIncompleteError(
                f"encode.require_cached is set but the embedding cache {self.cache.root} lacks "
                + "; ".join(gaps)
                + "; fill it with `python -m drift.encode` (same overrides, e.g. -m "
                "encode.shard=0,1 encode.num_shards=2) or set encode.require_cached=false"
            )


@dataclass(frozen=True)
class EncodedVectors:
    """Both models' vectors of a run's corpus (x_*) and of its evaluated queries (q_*)."""

    x_old: np.ndarray
    q_old: np.ndarray
    x_new: np.ndarray
    q_new: np.ndarray


def encode_corpus_and_queries(
    models: ModelPair, corpus: Sequence[Any], queries: Sequence[Any], timings: Timings
) -> EncodedVectors:
    """Each side's corpus (document role, corpus encoder) and queries (query role, query
    encoder), through the cache; timed as encode/<side>/corpus and encode/<side>/queries. With
    `models.require_cached`, CacheIncompleteError before anything is encoded unless the cache
    holds every vector."""
    if models.require_cached:
        models.check_cached(corpus, queries)
    vectors = {}
    for part, items, role, encoder in models.parts(corpus, queries):
        with timings(f"encode/{part}"):
            vectors[part] = models.encode(encoder, items, role)
    return EncodedVectors(
        x_old=vectors["old/corpus"],
        q_old=vectors["old/queries"],
        x_new=vectors["new/corpus"],
        q_new=vectors["new/queries"],
    )

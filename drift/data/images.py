"""Image corpora: folders of images with caption files, and webdataset tar shards (LAION-style).

    dataset=tuxpaint            # built by scripts/build_offline_images.py
    dataset=image_folder dataset.path=/data/photos
    dataset=webdataset dataset.shards='/data/laion/*.tar'

Two query protocols (`queries`):

  image    the paper's image protocol: a seeded `n_queries` of the images are held out of the
           corpus and are the queries; ground truth is the new image model's exact kNN. No qrels,
           unless `labels: folder` (image folders only): then every corpus image in the query
           image's folder is relevant, a labelled protocol beside the kNN one.
  caption  text -> image: the corpus keeps every image, each query is one distinct caption and
           every image with that caption is relevant (qrels). The run needs text-tower query
           encoders (old_query_encoder / new_query_encoder, e.g. the CLIP text towers).

Layouts:

  folder      <root>/**/<name>.<jpg|jpeg|png|webp|bmp|gif|tif|tiff>; the caption is the text of
              <name>.txt beside it, else the "caption" (or "text") field of <name>.json.
              An item's id is its path under the root.
  webdataset  tar shards whose members group into samples by key (the member path up to the first
              dot of its file name, as webdataset does): <key>.jpg|png|... plus <key>.txt or
              <key>.json ("caption"). The encoders read files, so each shard is extracted once into
              `extract_dir/<shard name>-<sha256 prefix>/` and checked there; a marker file
              (samples.json) makes later runs read nothing but the marker. Ids: <shard name>/<key>.

Image folders keep a manifest (`manifest_dir`, in the config under paths.cache_dir): per image
its size, mtime_ns, sha256 and whether it decoded, so a later run hashes and decodes only the
files whose path, size or mtime changed (drift.data.image_manifest).

Every image is decoded once with the encoders' own loader. One that fails (corrupt, truncated,
unreadable) is skipped and counted in `meta["skipped"]` (so the result file says how many and
which), or raises ImageReadError with `strict: true`. SVGs are skipped and counted the same way:
no image encoder reads vector art, and rasterising is a data-preparation step
(scripts/build_offline_images.py rasterises OpenMoji with cairosvg). Byte-identical images are
kept once, so a held-out query image never also sits in the corpus.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import posixpath
import tarfile
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from drift.core.digests import file_digest
from drift.core.errors import ConfigError, DataError, ImageReadError
from drift.core.files import clean_stale, temporary_folder
from drift.core.imaging import load_image, load_threads
from drift.data import DATASETS
from drift.data.image_manifest import check_with_manifest
from drift.data.types import RetrievalData

log = logging.getLogger(__name__)

QueryKind = Literal["image", "caption"]
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"})
# Why a sample is left out; the counts reach the result file under dataset.skipped.
SKIP_REASONS = {
    "unreadable": "the file cannot be read or decoded as an image",
    "svg": "vector image (SVG): rasterise it first (e.g. cairosvg)",
    "no_image": "a webdataset sample with no image member",
    "unsafe_name": "a tar member with an absolute path or '..'",
    "duplicate": "byte-identical to an image kept earlier",
}
MAX_EXAMPLES = 5  # skipped items named per reason in the result file
MARKER = "samples.json"


@dataclass
class Sample:
    """One image (or a sample that should have been one) and what is known about it.

    `problem` is a key of SKIP_REASONS when the sample is left out; `label` is the folder of an
    image-folder item (for `labels: folder`).
    """

    id: str
    path: str
    caption: str | None = None
    label: str = ""
    sha256: str = ""
    problem: str | None = None
    detail: str = ""


@dataclass
class SkipLog:
    """Counts (and a few examples) of skipped samples per reason; raises instead when strict."""

    strict: bool
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, sample: Sample) -> None:
        reason = str(sample.problem)
        if self.strict and reason != "duplicate":
            raise ImageReadError(
                f"{sample.id}: {SKIP_REASONS[reason]} ({sample.detail or sample.path}); "
                "set strict: false to skip such images and count them in the result file"
            )
        self.counts[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(f"{sample.id}: {sample.detail}" if sample.detail else sample.id)

    def meta(self) -> dict:
        return {
            "skipped": dict(sorted(self.counts.items())),
            "skipped_examples": {k: self.examples[k] for k in sorted(self.examples)},
        }


# -- loaders (registered in drift.data.DATASETS) -----------------------------------------------
@DATASETS.register("image_folder")
def load_image_folder(
    *,
    path: str | Path,
    name: str | None = None,
    queries: QueryKind = "image",
    n_queries: int = 100,
    labels: Literal["folder"] | None = None,
    split_seed: int | None = None,
    strict: bool = False,
    missing_hint: str | None = None,
    manifest_dir: str | Path | None = None,
    seed: int,
    data_dir: str | Path,
) -> RetrievalData:
    """Read a folder tree of images with caption files; a relative `path` is under `data_dir`.

    Args:
        queries: "image" (held-out images) or "caption" (captions as text queries).
        n_queries: held-out images, or distinct captions (capped by how many there are).
        labels: "folder" adds qrels to the image protocol: same folder = relevant.
        split_seed: picks the queries (None: the run's seed).
        strict: raise ImageReadError at the first unusable image instead of skipping it.
        missing_hint: what the error says to do when the folder is absent (e.g. the command
            that builds it).
        manifest_dir: where the folder's manifest is kept (None: none; every image is hashed
            and decoded on every load).
    """
    check_options(queries, n_queries, labels)
    root = _resolve(path, data_dir)
    if not root.is_dir():
        hint = f"; {missing_hint}" if missing_hint else ""
        raise DataError(f"image folder {root} does not exist{hint}")
    samples = [_folder_sample(root, file) for file in image_files(root)]
    meta = {"layout": "folder", "root": str(root), "labels": labels}
    if manifest_dir is None:
        check_images(samples)
    else:
        meta["manifest"] = check_with_manifest(samples, root, Path(manifest_dir), check_images)
    source = root / "SOURCE.json"
    if source.is_file():
        meta["source"] = json.loads(source.read_text(encoding="utf-8"))
    return build_data(
        name or root.name,
        samples,
        queries=queries,
        n_queries=n_queries,
        labels=labels,
        split_seed=seed if split_seed is None else split_seed,
        skipped=SkipLog(strict),
        meta=meta,
    )


@DATASETS.register("webdataset")
def load_webdataset(
    *,
    shards: str | Sequence[str],
    extract_dir: str | Path,
    name: str = "webdataset",
    queries: QueryKind = "image",
    n_queries: int = 100,
    split_seed: int | None = None,
    strict: bool = False,
    missing_hint: str | None = None,
    seed: int,
    data_dir: str | Path,
) -> RetrievalData:
    """Read webdataset tar shards (paths or glob patterns; relative ones are under `data_dir`).

    Args:
        extract_dir: where shards are extracted once (the encoders read image files).
        Other arguments as `load_image_folder`.
    """
    check_options(queries, n_queries, None)
    files = _expand_shards([shards] if isinstance(shards, str) else list(shards), data_dir)
    if not files:
        hint = f"; {missing_hint}" if missing_hint else ""
        raise DataError(f"no webdataset shard matches {shards!r} (under {data_dir}){hint}")
    samples, digests = [], {}
    clean_stale(Path(extract_dir))  # what killed extractions left
    for shard in files:
        digest, shard_samples = extracted_shard(shard, Path(extract_dir))
        digests[shard.name] = digest
        samples += shard_samples
    meta = {"layout": "webdataset", "shards": digests, "extract_dir": str(extract_dir)}
    return build_data(
        name,
        samples,
        queries=queries,
        n_queries=n_queries,
        labels=None,
        split_seed=seed if split_seed is None else split_seed,
        skipped=SkipLog(strict),
        meta=meta,
    )


# -- image folders -----------------------------------------------------------------------------
def image_files(root: Path, *, svg: bool = True) -> list[Path]:
    """Image files under `root` (SVGs too unless `svg` is False), in walk order (folders and
    files sorted), hidden files and folders left out."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file in sorted(files):
            ext = file.rpartition(".")[2].lower()
            if not file.startswith(".") and (ext in IMAGE_EXTENSIONS or (svg and ext == "svg")):
                found.append(Path(folder) / file)
    return found


def _folder_sample(root: Path, file: Path) -> Sample:
    rel = file.relative_to(root)
    sample = Sample(
        id=rel.as_posix(),
        path=str(file),
        caption=_caption_file(file),
        label=rel.parent.as_posix(),
    )
    if file.suffix.lower() == ".svg":
        sample.problem = "svg"
    return sample


def _caption_file(image: Path) -> str | None:
    txt, js = image.with_suffix(".txt"), image.with_suffix(".json")
    if txt.is_file():
        return _clean(txt.read_bytes().decode("utf-8", errors="replace"))
    if js.is_file():
        return _json_caption(js.read_bytes())
    return None


# -- webdataset shards -------------------------------------------------------------------------
def _expand_shards(patterns: list[str], data_dir: str | Path) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        full = _resolve(pattern, data_dir)
        matches = sorted(glob.glob(str(full))) if glob.has_magic(str(full)) else [str(full)]
        files += [Path(m) for m in matches if Path(m).is_file()]
    return list(dict.fromkeys(files))


def extracted_shard(shard: Path, extract_dir: Path) -> tuple[str, list[Sample]]:
    """(sha256 of the shard, its samples with image paths under `extract_dir`), extracting the
    shard and checking its images only when no complete extraction exists yet."""
    digest = file_digest(str(shard))
    dest = extract_dir / f"{shard.name.split('.')[0]}-{digest[:16]}"
    marker = dest / MARKER
    if not marker.is_file():
        with temporary_folder(dest) as tmp:
            samples = _extract(shard, tmp)
            check_images(samples)
            rows = [{**asdict(s), "path": _relative(s.path, tmp)} for s in samples]
            payload = {"shard": shard.name, "sha256": digest, "samples": rows}
            (tmp / MARKER).write_text(json.dumps(payload, indent=0) + "\n", encoding="utf-8")
            try:
                tmp.rename(dest)
            except OSError:  # another job finished the same shard first: keep theirs
                if not marker.is_file():
                    raise
    try:
        rows = json.loads(marker.read_text(encoding="utf-8"))["samples"]
        samples = [
            Sample(**{**row, "path": str(dest / row["path"]) if row["path"] else ""})
            for row in rows
        ]
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"{marker} is damaged ({err}); delete {dest} to extract again") from err
    return digest, samples


def _extract(shard: Path, dest: Path) -> list[Sample]:
    """Stream the tar once into the folder `dest`: write each sample's first image member,
    collect captions."""
    prefix = shard.name.split(".")[0]
    samples: dict[str, Sample] = {}
    svgs: set[str] = set()
    try:
        with tarfile.open(shard, "r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts:
                    samples[member.name] = Sample(
                        f"{prefix}/{member.name}", "", problem="unsafe_name"
                    )
                    continue
                folder, base = posixpath.split(member.name)
                stem, _, ext = base.partition(".")
                key, ext = posixpath.join(folder, stem), ext.lower()
                sample = samples.setdefault(key, Sample(f"{prefix}/{key}", ""))
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                if ext in IMAGE_EXTENSIONS and not sample.path:
                    target = dest / f"{key}.{ext}"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(handle.read())
                    sample.path = str(target)
                elif ext == "svg":
                    svgs.add(key)
                elif ext == "txt":
                    sample.caption = _clean(handle.read().decode("utf-8", errors="replace"))
                elif ext == "json" and sample.caption is None:
                    sample.caption = _json_caption(handle.read())
    except (tarfile.TarError, OSError) as err:
        raise DataError(f"webdataset shard {shard} cannot be read: {err}") from err
    for key, sample in samples.items():
        if not sample.path and sample.problem is None:
            sample.problem = "svg" if key in svgs else "no_image"
    return list(samples.values())


# -- shared: check, keep, split ------------------------------------------------------------------
def check_images(samples: list[Sample]) -> None:
    """Hash and fully decode every sample's image (threads: decoding releases the GIL); mark
    the failures `unreadable` in place."""
    todo = [s for s in samples if s.problem is None]
    with ThreadPoolExecutor(max_workers=load_threads()) as pool:
        for sample, (digest, error) in zip(todo, pool.map(_check, todo), strict=True):
            sample.sha256 = digest
            if error is not None:
                sample.problem, sample.detail = "unreadable", error


def _check(sample: Sample) -> tuple[str, str | None]:
    try:
        digest = file_digest(sample.path)  # remembered: the embedding cache reuses it
    except OSError as err:
        return "", str(err)
    try:
        load_image(sample.path)
    except ImageReadError as err:
        return digest, str(err.__cause__ or err)
    return digest, None


def keep_usable(samples: Iterable[Sample], skipped: SkipLog) -> list[Sample]:
    """The samples without problem, byte-identical duplicates dropped; the rest go to `skipped`."""
    kept, seen = [], set()
    for sample in samples:
        if sample.problem is None and sample.sha256 in seen:
            sample.problem = "duplicate"
        if sample.problem is not None:
            skipped.add(sample)
            continue
        seen.add(sample.sha256)
        kept.append(sample)
    return kept


def build_data(
    name: str,
    samples: list[Sample],
    *,
    queries: QueryKind,
    n_queries: int,
    labels: Literal["folder"] | None,
    split_seed: int,
    skipped: SkipLog,
    meta: dict,
) -> RetrievalData:
    """Turn checked samples into a validated `RetrievalData` for the chosen query protocol."""
    check_options(queries, n_queries, labels)
    kept = keep_usable(samples, skipped)
    if skipped.counts:
        log.warning(
            "dataset %s: skipped %s (counted in the result file)", name, dict(skipped.counts)
        )
    if not kept:
        raise DataError(f"dataset {name!r}: no usable image ({dict(skipped.counts)} skipped)")
    rng = np.random.default_rng(split_seed)
    meta = {
        **meta,
        "queries": queries,
        "split_seed": split_seed,
        "n_queries_requested": n_queries,
        "n_samples_found": len(samples),
        "n_images": len(kept),
        "n_captioned": sum(s.caption is not None for s in kept),
        **skipped.meta(),
    }
    revision = hashlib.sha256(
        json.dumps([(s.id, s.sha256, s.caption) for s in kept]).encode()
    ).hexdigest()[:16]
    common = {"name": name, "revision": revision, "corpus_modality": "image", "meta": meta}
    if queries == "image":
        return _image_queries(kept, n_queries, labels, rng, common)
    return _caption_queries(kept, n_queries, rng, common)


def check_options(queries: str, n_queries: int, labels: str | None) -> None:
    """ConfigError naming the first bad protocol option (before any image is read)."""
    if queries not in ("image", "caption"):
        raise ConfigError(f"queries must be 'image' or 'caption', got {queries!r}")
    if not isinstance(n_queries, int) or n_queries < 1:
        raise ConfigError(f"n_queries must be a positive integer, got {n_queries!r}")
    if labels not in (None, "folder"):
        raise ConfigError(f"labels must be null or 'folder', got {labels!r}")
    if labels is not None and queries != "image":
        raise ConfigError(
            "labels apply to image queries only; caption queries have their own qrels "
            "(set dataset.labels=null)"
        )


def _image_queries(
    kept: list[Sample],
    n_queries: int,
    labels: Literal["folder"] | None,
    rng: np.random.Generator,
    common: dict,
) -> RetrievalData:
    if n_queries >= len(kept):
        raise DataError(
            f"dataset {common['name']!r}: n_queries={n_queries} held-out images would leave no "
            f"corpus out of {len(kept)} usable images"
        )
    is_query = np.zeros(len(kept), dtype=bool)
    is_query[rng.choice(len(kept), size=n_queries, replace=False)] = True
    query_items = [s for s, q in zip(kept, is_query, strict=True) if q]
    corpus_items = [s for s, q in zip(kept, is_query, strict=True) if not q]
    qrels = None
    if labels == "folder":
        by_label: dict[str, list[str]] = {}
        for s in corpus_items:
            by_label.setdefault(s.label, []).append(s.id)
        qrels = {
            q.id: dict.fromkeys(by_label[q.label], 1) for q in query_items if q.label in by_label
        }
    common["meta"]["protocol"] = "image -> image: held-out images as queries" + (
        ", relevant = corpus images in the query image's folder" if qrels is not None else ""
    )
    return RetrievalData(
        corpus_ids=[s.id for s in corpus_items],
        corpus=[s.path for s in corpus_items],
        query_ids=[s.id for s in query_items],
        queries=[s.path for s in query_items],
        qrels=qrels,
        query_modality="image",
        **common,
    ).validate()


def _caption_queries(
    kept: list[Sample], n_queries: int, rng: np.random.Generator, common: dict
) -> RetrievalData:
    images_of: dict[str, list[str]] = {}
    for s in kept:
        if s.caption:
            images_of.setdefault(s.caption, []).append(s.id)
    if not images_of:
        raise DataError(f"dataset {common['name']!r}: no image has a caption to query with")
    captions = list(images_of)
    chosen = np.sort(rng.choice(len(captions), size=min(n_queries, len(captions)), replace=False))
    query_ids = [f"caption/{images_of[captions[i]][0]}" for i in chosen]
    common["meta"]["protocol"] = (
        "text -> image: captions as queries, relevant = every image with that caption"
    )
    common["meta"]["n_distinct_captions"] = len(captions)
    return RetrievalData(
        corpus_ids=[s.id for s in kept],
        corpus=[s.path for s in kept],
        query_ids=query_ids,
        queries=[captions[i] for i in chosen],
        qrels={
            q: dict.fromkeys(images_of[captions[i]], 1)
            for q, i in zip(query_ids, chosen, strict=True)
        },
        query_modality="text",
        **common,
    ).validate()


# -- small helpers -----------------------------------------------------------------------------
def _resolve(path: str | Path, data_dir: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(data_dir) / path


def _clean(text: str) -> str | None:
    return " ".join(text.split()) or None


def _json_caption(raw: bytes) -> str | None:
    try:
        row = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    value = row.get("caption", row.get("text"))
    return _clean(value) if isinstance(value, str) else None


def _relative(path: str, folder: Path) -> str:
    return Path(path).relative_to(folder).as_posix() if path else ""

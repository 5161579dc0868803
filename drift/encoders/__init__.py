"""Encoders by config type name.

`build_encoder(spec)` turns one `conf/encoder/*.yaml` mapping into an `Encoder`: the class
registered (`ENCODERS.register`, drift/encoders/base.py) under the spec's `type`. A type's module
is imported when the type is first built, so that, e.g., a synthetic run never imports torch.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from drift.core.errors import ConfigError
from drift.encoders.base import ENCODERS, Encoder, Modality, Role

RUN_ARGUMENTS = ("device", "offline", "model_cache_dir")  # passed by the run, not the config


def build_encoder(
    spec: dict[str, Any],
    *,
    device: str = "auto",
    offline: bool | None = None,
    model_cache_dir: str | Path | None = None,
) -> Encoder:
    """Build the encoder a config mapping describes.

    Args:
        spec: the encoder config (`type` plus that type's arguments).
        device: "auto" (CUDA with fp16 when present, else CPU), "cpu", "cuda", "cuda:1", ...
        offline: True forces bundled copies, False forces the hub, None decides from
            HF_HUB_OFFLINE (see drift.encoders.resolver).
        model_cache_dir: where reassembled bundled models (e.g. mpnet) are stored once.

    Raises:
        ConfigError: unknown type, or a key the type does not take (the error lists those it
            does), or a required one missing.
    """
    spec = dict(spec)
    kind = spec.pop("type", None)
    factory = ENCODERS.get(kind)
    _check_settings(factory, spec, kind)
    return factory(**spec, device=device, offline=offline, model_cache_dir=model_cache_dir)


def _check_settings(factory: Any, spec: dict[str, Any], kind: str) -> None:
    """Raise ConfigError for a key `factory` does not take or one the run passes itself."""
    signature = inspect.signature(factory)
    valid = sorted(set(signature.parameters) - set(RUN_ARGUMENTS))
    reserved = sorted(set(RUN_ARGUMENTS) & spec.keys())
    if reserved:
        raise ConfigError(
            f"encoder config (type {kind!r}) sets {reserved}, which the run passes itself: set "
            "device, offline and paths.model_cache_dir at the top level of the config"
        )
    unknown = sorted(spec.keys() - set(signature.parameters))
    if unknown:
        raise ConfigError(
            f"encoder type {kind!r} has no setting(s) {unknown}; valid settings: {valid}"
        )
    try:
        signature.bind(**spec, **dict.fromkeys(RUN_ARGUMENTS))
    except TypeError as err:  # a required setting is missing
        raise ConfigError(f"encoder type {kind!r}: {err}; valid settings: {valid}") from err


_SHARED: dict[str, Encoder] = {}


def shared_encoder(
    spec: dict[str, Any],
    *,
    device: str = "auto",
    offline: bool | None = None,
    model_cache_dir: str | Path | None = None,
) -> Encoder:
    """`build_encoder`, but one instance per distinct config in this process.

    Encoders do not change once built, so runs in one process (a test session, an in-process
    sweep) load each model once.
    """
    key = json.dumps([spec, device, offline, str(model_cache_dir)], sort_keys=True, default=str)
    if key not in _SHARED:
        _SHARED[key] = build_encoder(
            spec, device=device, offline=offline, model_cache_dir=model_cache_dir
        )
    return _SHARED[key]


__all__ = [
    "ENCODERS",
    "Encoder",
    "Modality",
    "Role",
    "build_encoder",
    "shared_encoder",
]

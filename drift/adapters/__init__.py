"""Adapters from the new model's space into the old one's; see drift/adapters/base.py."""

from __future__ import annotations

from typing import Any

from drift.adapters.base import ADAPTERS, Adapter, load_adapter, register_adapter
from drift.core.errors import ConfigError


def build_adapter(kind: str, **hparams: Any) -> Adapter:
    """Instantiate a registered adapter by name (e.g. "procrustes", "low_rank_affine")."""
    _import_all()
    if kind not in ADAPTERS:
        raise ConfigError(
            f"unknown adapter {kind!r}; known adapters: {', '.join(sorted(ADAPTERS))}"
        )
    try:
        return ADAPTERS[kind](**hparams)
    except TypeError as err:  # an unknown or missing hyper-parameter name
        raise ConfigError(f"adapter {kind!r}: {err}") from err


def _import_all() -> None:
    # Importing the modules runs their @register_adapter decorators.
    from drift.adapters import (  # noqa: F401
        baselines,
        low_rank_affine,
        op_low_rank,
        procrustes,
        residual_mlp,
        routed,
    )


__all__ = ["Adapter", "ADAPTERS", "build_adapter", "load_adapter", "register_adapter"]

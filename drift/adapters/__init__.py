"""Adapters from the new model's space into the old one's; see drift/adapters/base.py."""

from __future__ import annotations

from typing import Any

from drift.adapters.base import ADAPTERS, Adapter, Display, load_adapter, register_adapter
from drift.core.errors import ConfigError


def build_adapter(kind: str, **hparams: Any) -> Adapter:
    """Instantiate a registered adapter by name (e.g. "procrustes", "low_rank_affine")."""
    cls = ADAPTERS.get(kind)
    try:
        return cls(**hparams)
    except TypeError as err:  # an unknown or missing hyper-parameter name
        raise ConfigError(f"adapter {kind!r}: {err}") from err


def hparam_columns() -> dict[str, tuple[str, str]]:
    """Result-table column -> (adapter kind, hyper-parameter) over every registered kind, in
    registry order (each class's `hparam_columns`).

    Raises ConfigError when two kinds claim one column.
    """
    columns: dict[str, tuple[str, str]] = {}
    for kind, cls in ADAPTERS.items():
        for column, hparam in cls.hparam_columns.items():
            if column in columns:
                raise ConfigError(
                    f"adapters {columns[column][0]!r} and {kind!r} both claim the result-table "
                    f"column {column!r}; give one of them another name"
                )
            columns[column] = (kind, hparam)
    return columns


__all__ = [
    "Adapter",
    "ADAPTERS",
    "Display",
    "build_adapter",
    "hparam_columns",
    "load_adapter",
    "register_adapter",
]

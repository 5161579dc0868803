"""One clear error for data that only the Hugging Face hub serves (mteb tasks, HF datasets)."""

from __future__ import annotations

import os

from drift.core.errors import DataError
from drift.data import OFFLINE_DATASETS

_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _offline_vars() -> list[str]:
    """The offline switches set in the environment (e.g. ["HF_HUB_OFFLINE=1"])."""
    return [
        f"{v}={os.environ[v]}"
        for v in _OFFLINE_VARS
        if os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
    ]


def hub_error(what: str, error: BaseException) -> DataError:
    """A DataError saying `what` needs the hub, why it failed, and which datasets need none."""
    switches = _offline_vars()
    reason = (
        f"offline mode is on ({', '.join(switches)}) and it is not in the local cache"
        if switches
        else "the Hugging Face hub is unreachable or could not serve it"
    )
    return DataError(
        f"cannot load {what}: {reason} ({type(error).__name__}: {error}). Datasets that need no "
        f"hub: {', '.join(OFFLINE_DATASETS)} (e.g. `dataset=offline_mix`, or `dataset=beir_local "
        f"dataset.path=DIR` for a BEIR folder on disk)."
    )

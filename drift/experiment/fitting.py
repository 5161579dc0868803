"""The adapters of a run: one per configured method and DSM setting, fitted on the training pairs
(validation pairs for early stopping), saved for `drift export`.

A config step between drift.adapters (one adapter from its settings) and the pairs of
drift.data.pairs, which drift.adapters does not import.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from drift.adapters import Adapter, build_adapter
from drift.core.errors import ConfigError, VectorError
from drift.core.seeding import derive_seed
from drift.core.timing import Timings
from drift.data.pairs import PairVectors

log = logging.getLogger(__name__)


def build_adapters(adapter_cfg: dict[str, Any]) -> dict[str, Adapter]:
    """One adapter per method and DSM setting, named e.g. "procrustes" and "procrustes+dsm"."""
    adapters = {}
    for method, hparams in adapter_cfg["methods"].items():
        for dsm in adapter_cfg["dsm"]:
            name = f"{method}+dsm" if dsm else method
            adapters[name] = build_adapter(method, **(hparams or {}), dsm=bool(dsm))
    if not adapters:
        raise ConfigError("adapter.methods is empty: name at least one adapter to fit")
    return adapters


def fit_adapters(
    adapters: dict[str, Adapter],
    pairs: PairVectors,
    seed: int,
    timings: Timings,
) -> tuple[dict[str, Adapter], dict[str, str]]:
    """(fitted adapters, {name: why it could not be fitted}).

    An adapter the pairs cannot determine (a VectorError, e.g. low-rank affine with no more
    pairs than its rank) is reported as not applicable instead of stopping the run, so one
    point of a sweep does not end the sweep; a bad setting (ConfigError) still stops it.
    The gate's pairs (`pairs.gate`) never reach an adapter.
    """
    val_new, val_old = pairs.val
    has_val = val_new.shape[0] > 0
    fitted, unfit = {}, {}
    for name, adapter in adapters.items():
        try:
            with timings(f"fit/{name}"):
                adapter.fit(
                    *pairs.train,
                    x_new_val=val_new if has_val else None,
                    x_old_val=val_old if has_val else None,
                    seed=derive_seed(seed, f"fit/{name}"),
                )
        except VectorError as err:
            log.warning("adapter %s not fitted: %s", name, err)
            unfit[name] = f"not fitted: {err}"
            continue
        fitted[name] = adapter
    return fitted, unfit


def save_adapters(folder: Path, adapters: dict[str, Adapter]) -> dict[str, str]:
    """Save each fitted adapter under `folder` (for `drift export`): {name: where}."""
    return {name: str(adapter.save(folder / name)) for name, adapter in adapters.items()}

"""Datasets by config type name: every loader returns one validated `RetrievalData`.

`load_data(spec, seed=..., data_dir=...)` turns one `conf/dataset/*.yaml` mapping into data: the
loader registered (`@DATASETS.register(type)`) under the spec's `type`. A loader's module is
imported when its type is first loaded, so a BEIR or synthetic run never imports mteb or datasets.

    type: beir            one BEIR folder (drift.data.beir)
    type: beir_mix        several BEIR folders as one task, ids prefixed by part (drift.data.beir)
    type: mteb            an mteb retrieval task by name; needs the hub (drift.data.mteb_tasks)
    type: classification  a HF text classification set in the paper's kNN protocol; needs the hub
    type: synthetic       item ids for the synthetic drift encoders (drift.data.synthetic)
    type: image_folder    images with caption files, held-out images or captions as queries
    type: webdataset      webdataset tar shards (LAION-style), same protocols (drift.data.images)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drift.core.errors import ConfigError
from drift.core.registry import Registry
from drift.data.types import RetrievalData

# config `type` -> its loader; each loader takes the spec's remaining keys as keyword arguments
# plus seed and data_dir.
DATASETS: Registry[Callable[..., RetrievalData]] = Registry(
    "dataset type",
    "types",
    builtins={
        "beir": "drift.data.beir",
        "beir_mix": "drift.data.beir",
        "mteb": "drift.data.mteb_tasks",
        "classification": "drift.data.classification",
        "synthetic": "drift.data.synthetic",
        "image_folder": "drift.data.images",
        "webdataset": "drift.data.images",
    },
)

# conf/dataset names that need no network: what an error about an unreachable hub suggests.
OFFLINE_DATASETS: tuple[str, ...] = (
    "offline_mix",
    "manpages",
    "faq",
    "pydoc",
    "synthetic",
    "beir_local",
)


def load_data(spec: dict[str, Any], *, seed: int, data_dir: str | Path) -> RetrievalData:
    """Load the dataset a config mapping describes.

    Args:
        spec: the dataset config (`type` plus that type's arguments); unknown keys are an error.
        seed: the run's seed, used by loaders that sample (subsets, corpus draws).
        data_dir: the folder relative dataset paths are resolved against (paths.data_dir).
    """
    spec = dict(spec)
    kind = spec.pop("type", None)
    loader = DATASETS.get(kind)
    reserved = sorted({"seed", "data_dir"} & spec.keys())
    if reserved:
        raise ConfigError(
            f"dataset config sets {reserved}, which the run passes itself (seed: the run's seed; "
            "data_dir: paths.data_dir); a dataset's own seed is called data_seed or sample_seed"
        )
    kwargs = {**spec, "seed": seed, "data_dir": Path(data_dir)}
    try:
        inspect.signature(loader).bind(**kwargs)
    except TypeError as e:
        raise ConfigError(f"dataset type {kind!r}: {e}") from e
    return loader(**kwargs).validate()


__all__ = ["DATASETS", "OFFLINE_DATASETS", "RetrievalData", "load_data"]

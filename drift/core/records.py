"""Result files: one JSON per run, holding everything needed to trust and redo the numbers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from drift.core.errors import DataError
from drift.core.provenance import provenance

SCHEMA_VERSION = 1


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "none"


def config_hash(config: dict[str, Any]) -> str:
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays -> Python; NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def build_record(config: dict[str, Any], outcome: dict[str, Any], debug: bool) -> dict[str, Any]:
    return to_jsonable(
        {
            "schema_version": SCHEMA_VERSION,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config_hash": config_hash(config),
            "debug": debug,
            "config": config,
            "provenance": provenance(),
            **outcome,
        }
    )


def result_path(results_dir: str | Path, record: dict[str, Any]) -> Path:
    """results_dir/<dataset>/<old>__to__<new>/<task>-seed<seed>-<config hash>.json"""
    models = record["models"]
    pair = f"{slug(models['old']['name'])}__to__{slug(models['new']['name'])}"
    name = f"{slug(record['task_name'])}-seed{record['seed']}-{record['config_hash']}.json"
    return Path(results_dir) / slug(record["dataset"]["name"]) / pair / name


def write_json_atomic(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2, allow_nan=False)
        handle.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; result files are meant to be shared
    os.replace(tmp, path)
    return path


# Config parts that differ between the seeds of one design, or say nothing about it.
NOT_DESIGN = ("seed", "paths", "logger", "encode")


def is_result(record: Any) -> bool:
    """A run's result record (rather than any other JSON file)."""
    return isinstance(record, dict) and "schema_version" in record and "metrics" in record


def read_results(roots: str | Path | Iterable[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(path relative to its root, record) for every result file under `roots`, in path order;
    other JSON files are skipped. A missing folder or unreadable JSON is a DataError."""
    roots = [roots] if isinstance(roots, str | Path) else list(roots)
    found = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise DataError(f"results folder {root} does not exist")
        for path in sorted(root.rglob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DataError(f"{path} is not valid JSON: {err}") from err
            if is_result(record):
                found.append((path.relative_to(root), record))
    return found


# Encoder settings that change how fast, not what: texts per forward pass (the embedding cache
# ignores them too).
EXECUTION_ONLY = ("batch_size",)
ENCODER_SLOTS = ("old_encoder", "new_encoder", "old_query_encoder", "new_query_encoder")
# Settings added after runs were committed, with the value those runs had in effect.
ADDED_SETTINGS = {
    "adapter": {"pair_role": "document", "gate_fraction": 0.0, "n_pairs_fraction": None},
    "data_limits": {"corpus_subset": "judged_first"},
}


def design_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run's config less what is no part of its design: the seed and what derives from it
    (the index's training seed), paths, logger, encode and the encoders' batch sizes; settings
    added since older runs were written are filled in with the value those runs had."""
    kept = {k: v for k, v in config.items() if k not in NOT_DESIGN}
    if isinstance(kept.get("index"), dict):  # ivfpq's training seed is the run seed
        kept["index"] = {k: v for k, v in kept["index"].items() if k != "seed"}
    for slot in ENCODER_SLOTS:
        if isinstance(kept.get(slot), dict):
            kept[slot] = {k: v for k, v in kept[slot].items() if k not in EXECUTION_ONLY}
    for section, defaults in ADDED_SETTINGS.items():
        if isinstance(kept.get(section), dict):
            kept[section] = {**defaults, **kept[section]}
    return {k: v for k, v in kept.items() if v != {} or config[k] == {}}  # emptied here: gone


def design_key(config: dict[str, Any]) -> str:
    """Hash of `design_config`: the runs of one design differ only in their seed."""
    blob = json.dumps(design_config(config), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def design_settings(config: dict[str, Any]) -> dict[str, str]:
    """{dotted config path: JSON value} of `design_config`."""

    def flatten(tree: dict[str, Any], prefix: str) -> dict[str, str]:
        flat = {}
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                flat.update(flatten(value, f"{prefix}{key}."))
            else:
                flat[f"{prefix}{key}"] = json.dumps(value, sort_keys=True, default=str)
        return flat

    return flatten(design_config(config), "")


def differences(configs: dict[str, dict[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Per design: (short key, value) of each setting whose value differs between the designs
    (an absent setting reads "none"); the short key is the last component of the path."""
    keys = sorted(set().union(*configs.values()))
    varying = [k for k in keys if len({c.get(k) for c in configs.values()}) > 1]
    return {
        group: [(key.rsplit(".", 1)[-1], value_text(config.get(key))) for key in varying]
        for group, config in configs.items()
    }


def value_text(value: str | None) -> str:
    """A setting's JSON value as text for names: lists joined by _, null and absent as none."""
    loaded = None if value is None else json.loads(value)
    if isinstance(loaded, list):
        return "_".join(map(str, loaded))
    return "none" if loaded is None else str(loaded)


def experiment_of(record: dict[str, Any]) -> str:
    """The experiment a run belongs to: the first tag its experiment file sets, else its task."""
    tags = list(record.get("config", {}).get("tags") or [])
    return str(tags[0]) if tags else str(record.get("task_name", ""))


def design_labels(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """{design_key: "experiment key=value ..."}: each design named by its experiment and the
    settings in which it differs from the experiment's other designs."""
    configs: dict[str, dict[str, dict[str, str]]] = {}
    for record in records:
        config = record.get("config", {})
        configs.setdefault(experiment_of(record), {})[design_key(config)] = design_settings(config)
    labels = {}
    for experiment, by_design in configs.items():
        for design, settings in differences(by_design).items():
            labels[design] = " ".join([experiment, *(f"{k}={v}" for k, v in settings)])
    return labels

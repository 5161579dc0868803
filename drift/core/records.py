"""Result files: one JSON per run, holding everything needed to trust and redo the numbers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.core.errors import DataError
from drift.core.files import atomic_write, clean_stale
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
    """Write `payload` to `path` as indented JSON (no NaN), whole or not at all and readable as
    the umask allows (drift.core.files); first remove what killed writers left beside it."""
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    clean_stale(path.parent)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


# Config parts that differ between the seeds of one design, or say nothing about it.
NOT_DESIGN = ("seed", "paths", "logger", "encode")

# Encoder settings that change how fast, not what: texts (or padded tokens) per forward pass (the
# embedding cache ignores them too).
EXECUTION_ONLY = ("batch_size", "tokens_per_batch")
# Encoder settings added after runs were committed whose null is what those runs had in effect
# (precision: null is the device's default), left out of a design when null.
ENCODER_ADDED_NULL = ("precision",)
ENCODER_SLOTS = ("old_encoder", "new_encoder", "old_query_encoder", "new_query_encoder")
# Settings added after runs were committed, with the value those runs had in effect.
ADDED_SETTINGS = {
    "adapter": {"pair_role": "document", "gate_fraction": 0.0, "n_pairs_fraction": None},
    "data_limits": {"corpus_subset": "judged_first"},
    "eval": {"unjudged": "exclude"},
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
            kept[slot] = {
                k: v
                for k, v in kept[slot].items()
                if k not in EXECUTION_ONLY and not (k in ENCODER_ADDED_NULL and v is None)
            }
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


def design_labels(records: Iterable[ResultRecord]) -> dict[str, str]:
    """{design_key: "experiment key=value ..."}: each design named by its experiment and the
    settings in which it differs from the experiment's other designs."""
    configs: dict[str, dict[str, dict[str, str]]] = {}
    for record in records:
        by_design = configs.setdefault(record.experiment, {})
        by_design[record.design_key] = design_settings(record.config)
    labels = {}
    for experiment, by_design in configs.items():
        for design, settings in differences(by_design).items():
            labels[design] = " ".join([experiment, *(f"{k}={v}" for k, v in settings)])
    return labels


# -- reading result files -------------------------------------------------------------------
# The ARR of metric m is stored as arr_<m> beside the metrics (drift/scoring/evaluate.py).
ARR_PREFIX = "arr_"
REFERENCE = "full_reindex"  # the strategy `relative` divides by


class NotAResultError(DataError):
    """A JSON file that is not a result file (ResultRecord.iter skips those)."""


def is_result(data: Any) -> bool:
    """A run's result record (rather than any other JSON)."""
    return isinstance(data, dict) and "schema_version" in data and "metrics" in data


@dataclass(frozen=True)
class ResultRecord:
    """One result file: where it is and its JSON, with what the tables, figures and `drift
    recommend` read from it. `root` is the folder it was found under: tables name the file by its
    path below that folder (`file`), so that they do not depend on where the folder lies."""

    path: Path
    data: dict[str, Any]
    root: Path | None = None

    @classmethod
    def from_path(cls, path: str | Path, root: str | Path | None = None) -> ResultRecord:
        """The result file at `path`; a DataError naming it when it cannot be read, is not JSON
        or is some other JSON file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as err:
            raise DataError(f"{path} cannot be read: {err}") from err
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path} is not valid JSON: {err}") from err
        if not is_result(data):
            raise NotAResultError(
                f"{path} is not a result file of python -m drift.run (it has no schema_version "
                "and metrics)"
            )
        return cls(path, data, None if root is None else Path(root))

    @classmethod
    def iter(cls, roots: str | Path | Iterable[str | Path]) -> list[ResultRecord]:
        """Every result file under `roots` (a folder or several, searched recursively), in path
        order per folder; other JSON files are skipped. DataError for a missing folder, a file
        that is not valid JSON, or no result file at all."""
        roots = [Path(roots)] if isinstance(roots, str | Path) else [Path(r) for r in roots]
        found = []
        for root in roots:
            if not root.is_dir():
                raise DataError(f"results folder {root} does not exist")
            for path in sorted(root.rglob("*.json")):
                try:
                    found.append(cls.from_path(path, root))
                except NotAResultError:
                    continue
        if not found:
            raise DataError(
                f"no result files under {', '.join(map(str, roots))}; make them with "
                "python -m drift.run"
            )
        return found

    # -- what a run is -------------------------------------------------------------------------
    @property
    def file(self) -> str:
        """The file's path below the folder it was found under (the path itself without one)."""
        return str(self.path if self.root is None else self.path.relative_to(self.root))

    @property
    def config(self) -> dict[str, Any]:
        return self.data.get("config", {})

    @property
    def experiment(self) -> str:
        """The experiment the run belongs to: the first tag its experiment file sets, else its
        task."""
        tags = list(self.config.get("tags") or [])
        return str(tags[0]) if tags else str(self.data.get("task_name", ""))

    @property
    def design_key(self) -> str:
        """`design_key` of the run's config: the runs of one design differ only in their seed."""
        return design_key(self.config)

    @property
    def seed(self) -> int | None:
        return self.data.get("seed")

    @property
    def debug(self) -> bool:
        """A debug (smoke) run: its numbers are not results."""
        return bool(self.data.get("debug"))

    @property
    def dataset(self) -> str:
        return str(self.data["dataset"]["name"])

    @property
    def old_model(self) -> str:
        return str(self.data["models"]["old"]["name"])

    @property
    def new_model(self) -> str:
        return str(self.data["models"]["new"]["name"])

    @property
    def pair(self) -> str:
        """The model pair, hub owners left out: "all-MiniLM-L6-v2 -> all-mpnet-base-v2"."""
        return f"{short_model(self.old_model)} -> {short_model(self.new_model)}"

    @property
    def n_corpus(self) -> int:
        return int(self.data["dataset"]["n_corpus"])

    @property
    def n_queries(self) -> int:
        return int(self.data["dataset"]["n_queries"])

    @property
    def protocols(self) -> dict[str, dict[str, Any]]:
        """{protocol: its block}: the strategies' metrics, ARR, timings and cost."""
        return self.data["metrics"]["protocols"]

    @property
    def stream(self) -> dict[str, Any] | None:
        """The query-stream section (experiment=query_stream and kin); None without one."""
        return self.data.get("stream") or None

    @property
    def timeline(self) -> dict[str, Any] | None:
        """The migration-timeline section; None without one."""
        return self.data.get("timeline") or None

    # -- flat rows -----------------------------------------------------------------------------
    def run_columns(self) -> dict[str, Any]:
        """The run-level columns of every row: its design, measured drift and provenance."""
        record, config = self.data, self.config
        old, new = record["models"]["old"], record["models"]["new"]
        pairs = record["pairs"]
        n_pairs = sum(pairs.get(part, 0) for part in ("n_train", "n_val", "n_gate"))
        from_corpus = pairs.get("source", "corpus") == "corpus"  # else held-out queries
        index = record["index"]["spec"]
        drift = record.get("drift") or {}
        overlap = next((v for k, v in drift.items() if k.startswith("knn_overlap@")), None)
        not_applicable = record["metrics"].get("not_applicable", {})
        design = design_config(config)
        return {
            "experiment": self.experiment,
            "task_name": record["task_name"],
            "tags": ",".join(config.get("tags") or []),
            "seed": record["seed"],
            "debug": bool(record["debug"]),
            "real_weights": bool(record["real_weights"]),
            "synthetic": bool(record["synthetic"]),
            "dataset": self.dataset,
            "old_model": old["name"],
            "new_model": new["name"],
            "pair": self.pair,
            "old_dim": old["dim"],
            "new_dim": new["dim"],
            "n_corpus": self.n_corpus,
            "n_queries": self.n_queries,
            "level": synthetic_level(config["new_encoder"]),
            "np_requested": pairs["n_requested"],
            "np_fraction_requested": design["adapter"]["n_pairs_fraction"],
            "np": n_pairs,
            "np_fraction": n_pairs / self.n_corpus if self.n_corpus and from_corpus else None,
            "corpus_subset": design.get("data_limits", {}).get("corpus_subset"),
            "pair_role": pairs.get("role", "document"),  # older files: the only role then
            "index_kind": index["kind"],
            "ef_search": index["ef_search"] if index["kind"] == "hnsw" else None,
            "nprobe": index["nprobe"] if index["kind"] == "ivfpq" else None,
            "drift_knn_overlap": overlap,
            "drift_cka": drift.get("linear_cka"),
            "drift_mean_cosine_old": drift.get("mean_cosine_old"),
            "drift_mean_cosine_new": drift.get("mean_cosine_new"),
            "not_applicable": "; ".join(f"{name} ({why})" for name, why in not_applicable.items()),
            "group": self.design_key,
            "config_hash": record["config_hash"],
            "created": record["created"],
            "git_commit": record.get("provenance", {}).get("git", {}).get("commit"),
            "file": self.file,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per protocol x strategy x metric (the metrics, then their ARR), each with
        `run_columns`, the strategy's timings, fit and cost, and the metric's mean over queries
        with its bootstrap CI. `relative`: the mean divided by the full re-index's in the same run
        and protocol (None without one); `family`: the strategy's family beyond the paper (rerank,
        fusion, backfill), else "paper"; the cost columns are None for a strategy that records no
        cost (the ground-truth ceiling: not deployable)."""
        run = self.run_columns()
        rows = []
        for protocol, block in self.protocols.items():
            strategies = block["strategies"]
            reference = measured_means(strategies.get(REFERENCE) or {})
            for strategy, result in strategies.items():
                common = {
                    **run,
                    "protocol": protocol,
                    "strategy": strategy,
                    **self.strategy_columns(strategy, result),
                }
                for metric, summary in [
                    *result.get("metrics", {}).items(),
                    *result.get("arr", {}).items(),
                ]:
                    value, ref = summary.get("mean"), reference.get(metric)
                    rows.append(
                        {
                            **common,
                            "metric": metric,
                            "value": value,
                            "relative": value / ref if value is not None and ref else None,
                            "ci_low": summary.get("ci_low"),
                            "ci_high": summary.get("ci_high"),
                            "n": summary.get("n"),
                        }
                    )
        return rows

    def strategy_columns(self, strategy: str, result: dict[str, Any]) -> dict[str, Any]:
        """One strategy's columns: what it is, its timings, its adapter's fit and its cost."""
        method, dsm = strategy_method(strategy)
        adapter = self.data.get("adapters", {}).get(strategy.removeprefix("adapter/"), {})
        timings = result.get("timings") or {}
        cost = result.get("cost") or {}
        deployable = "share_encoded" in cost
        return {
            "method": method,
            "dsm": dsm,
            "family": (result.get("params") or {}).get("family", "paper"),
            "us_per_query": timings.get("us_per_query"),
            "search_us_per_query": timings.get("search_us_per_query"),
            "adapter_us_per_query": timings.get("adapter_us_per_query"),
            "threads": timings.get("threads"),
            "fit_seconds": adapter.get("fit_seconds") if method else None,
            "val_cosine": adapter.get("fit_info", {}).get("cosine/val") if method else None,
            "share_encoded": float(cost["share_encoded"]) if deployable else None,
            "new_doc_encodes": int(cost["new_doc_encodes"]) if deployable else None,
            "cold_encodes_per_query": cost.get("cold_encodes_per_query"),
            "candidates_per_query": cost.get("candidates_per_query"),
        }


def measured_means(result: dict[str, Any]) -> dict[str, float]:
    """{metric or ARR name: mean} of one strategy's result, those measured."""
    summaries = {**result.get("metrics", {}), **result.get("arr", {})}
    return {k: s["mean"] for k, s in summaries.items() if s.get("mean") is not None}


def short_model(name: str) -> str:
    """Drop the hub owner: sentence-transformers/all-MiniLM-L6-v2 -> all-MiniLM-L6-v2."""
    return name if name.startswith("synthetic/") else name.rsplit("/", 1)[-1]


def synthetic_level(encoder: dict[str, Any]) -> float | None:
    return encoder.get("level") if encoder.get("type") == "synthetic" else None


def strategy_method(strategy: str) -> tuple[str | None, bool | None]:
    """Adapter method and DSM flag: adapter/low_rank_affine+dsm -> (low_rank_affine, True).

    Strategies that are not adapters give (None, None).
    """
    if not strategy.startswith("adapter/"):
        return None, None
    name = strategy.removeprefix("adapter/")
    return name.removesuffix("+dsm"), name.endswith("+dsm")

"""Weights & Biases mirror of result files (the files stay the source of truth).

`logger.kind`: none (no tracker), wandb with `mode: offline` (default for tracked runs: writes a
run folder to sync later with `wandb sync <dir>`) or `mode: online` (needs WANDB_API_KEY or
`wandb login`). Only this module imports wandb. The run is always finished, with a failure exit
code on error.

What a run logs (`logger.metrics`):
- headline (the default): per protocol and strategy, the protocol's primary metric (kNN: R@10,
  qrels: nDCG@10) and, beside it, its ARR (against full re-indexing) and microseconds per query,
  as `<protocol>/<strategy>/<metric>` in the run summary (a few dozen numbers, one chart each);
  the stage timings (`timings/<stage>`); the strategies table (one row per protocol and
  strategy, every mean: the table to sort and filter in the UI); stream and timeline tables.
- full: the headline, plus every number of the metrics section flattened (`metrics/...`: about
  3,700 for the default run), for those who want the whole dump.
Artifacts: the result JSON (type `result`) and, with `logger.log_adapters`, the fitted adapters'
folders (type `adapter`). Runs of one Hydra sweep share a group, `<group>/<sweep folder>`
(drift.run passes the sweep folder's name), so the UI shows a sweep together.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drift.core.errors import ConfigError

# logger.metrics: what a run logs as numbers (module docstring)
METRIC_MODES = ("headline", "full")


def flatten_numbers(tree: Any, prefix: str = "") -> dict[str, float]:
    """{"a": {"b": 1.0}} -> {"a/b": 1.0}; keeps only int/float leaves (bools dropped)."""
    flat: dict[str, float] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            flat.update(flatten_numbers(value, f"{prefix}/{key}" if prefix else str(key)))
    elif isinstance(tree, int | float) and not isinstance(tree, bool):
        flat[prefix] = float(tree)
    return flat


def stream_rows(stream: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The query-stream curves of a result record as long rows (one per strategy, checkpoint and
    quantity: share_encoded or a running quality metric)."""
    if not stream:
        return []
    rows = []
    for name, curve in stream["strategies"].items():
        series = {"share_encoded": curve["share_encoded"], **curve["quality"]}
        for quantity, values in series.items():
            rows += [
                {"strategy": name, "quantity": quantity, "queries": q, "value": v}
                for q, v in zip(stream["checkpoints"], values, strict=True)
            ]
    return rows


def timeline_rows(timeline: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The migration timeline of a result record as long rows (one per mode, metric and hour)."""
    if not timeline:
        return []
    rows = []
    for mode, by_metric in timeline["modes"].items():
        # a re-rank mode's own encodes (background + on demand); otherwise the background job's
        encodes = by_metric.get("new_doc_encodes", timeline.get("new_doc_encodes"))
        for metric, stats in by_metric.items():
            if not (isinstance(stats, dict) and isinstance(stats.get("mean"), list)):
                continue  # notes, refit times
            for i, hours in enumerate(timeline["hours"]):
                rows.append(
                    {
                        "mode": mode,
                        "metric": metric,
                        "hours": hours,
                        "share_migrated": timeline["share_migrated"][i],
                        "new_doc_encodes": None if encodes is None else encodes[i],
                        **{stat: stats[stat][i] for stat in ("mean", "ci_low", "ci_high")},
                    }
                )
    return rows


class NullRun:
    """Stands in for a W&B run when logging is off."""

    dir: str | None = None

    def log_record(self, record: dict[str, Any], path: Path, table: list[dict[str, Any]]) -> None:
        return None


class WandbRun:
    def __init__(self, run: Any, *, metrics: str = "headline", log_adapters: bool = True) -> None:
        self.run = run
        self.dir = run.dir
        self.metrics = metrics
        self.log_adapters = log_adapters

    def log_record(self, record: dict[str, Any], path: Path, table: list[dict[str, Any]]) -> None:
        import wandb

        numbers = {
            **headline_metrics(record["metrics"]),
            **{f"timings/{k}": v for k, v in flatten_numbers(record["timings"]).items()},
        }
        if self.metrics == "full":
            numbers.update(
                {f"metrics/{k}": v for k, v in flatten_numbers(record["metrics"]).items()}
            )
        self.run.log(numbers)
        if table:
            columns = list(dict.fromkeys(c for row in table for c in row))
            self.run.log(
                {
                    "strategies": wandb.Table(
                        columns=columns, data=[[r.get(c) for c in columns] for r in table]
                    )
                }
            )
        for section, rows in (
            ("stream", stream_rows(record.get("stream"))),
            ("timeline", timeline_rows(record.get("timeline"))),
        ):
            if rows:  # long tables: a dashboard line plot per metric, x = queries or hours
                columns = list(rows[0])
                data = [[r[c] for c in columns] for r in rows]
                self.run.log({section: wandb.Table(columns=columns, data=data)})
        artifact = wandb.Artifact(f"result-{record['config_hash']}", type="result")
        artifact.add_file(str(path))
        self.run.log_artifact(artifact)
        adapters = adapter_folders(record) if self.log_adapters else {}
        if adapters:
            artifact = wandb.Artifact(f"adapters-{record['config_hash']}", type="adapter")
            for name, folder in adapters.items():
                artifact.add_dir(str(folder), name=name)
            self.run.log_artifact(artifact)
        self.run.summary["result_file"] = str(path)


def headline_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    """`<protocol>/<strategy>/<metric>` -> mean, for each protocol's primary metric, its ARR and
    the strategy's microseconds per query: what a reader compares first."""
    out: dict[str, float] = {}
    for protocol, block in evaluation.get("protocols", {}).items():
        primary = block.get("primary_metric")
        for name, row in block.get("strategies", {}).items():
            cells = {
                primary: row.get("metrics", {}).get(primary),
                f"arr_{primary}": row.get("arr", {}).get(f"arr_{primary}"),
            }
            for metric, stats in cells.items():
                if isinstance(stats, dict) and _is_number(stats.get("mean")):
                    out[f"{protocol}/{name}/{metric}"] = float(stats["mean"])
            us = row.get("timings", {}).get("us_per_query")
            if _is_number(us):
                out[f"{protocol}/{name}/us_per_query"] = float(us)
    return out


def adapter_folders(record: dict[str, Any]) -> dict[str, Path]:
    """Adapter name -> its saved folder, for the record's fitted adapters whose folder exists
    (the record's `artifacts` also names files, e.g. the gate pairs, which are left out)."""
    folders = {}
    for name, location in (record.get("artifacts") or {}).items():
        folder = Path(str(location))
        if name in (record.get("adapters") or {}) and folder.is_dir():
            folders[name] = folder
    return folders


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def has_wandb_credentials() -> bool:
    """WANDB_API_KEY, or the ~/.netrc entry `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(logger_cfg: dict[str, Any]) -> str | None:
    """The W&B mode (offline, online) the `logger` block asks for; None for no tracker. A
    ConfigError for an unknown kind or mode, or an online mode without credentials."""
    kind = logger_cfg.get("kind", "none")
    if kind == "none":
        return None
    if kind != "wandb":
        raise ConfigError(f"logger.kind must be 'none' or 'wandb', got {kind!r}")
    mode = logger_cfg.get("mode", "offline")
    if mode not in ("offline", "online"):
        raise ConfigError(f"logger.mode must be 'offline' or 'online', got {mode!r}")
    metrics = logger_cfg.get("metrics", "headline")
    if metrics not in METRIC_MODES:
        raise ConfigError(f"logger.metrics must be one of {list(METRIC_MODES)}, got {metrics!r}")
    if mode == "online" and not has_wandb_credentials():
        raise ConfigError(
            "logger=wandb_online needs W&B credentials: WANDB_API_KEY in the environment or "
            "`wandb login` (or use logger=wandb, which writes offline runs to sync later with "
            "`wandb sync`)"
        )
    return mode


def run_group(logger_cfg: dict[str, Any], sweep: str | None = None) -> str | None:
    """The W&B group: `logger.group`, and under a Hydra sweep `<group>/<sweep folder>` so the
    sweep's runs are grouped together apart from earlier sweeps of the same experiment."""
    group = logger_cfg.get("group")
    if sweep:
        return f"{group}/{sweep}" if group else str(sweep)
    return group


@contextmanager
def tracked_run(
    logger_cfg: dict[str, Any], config: dict[str, Any], *, sweep: str | None = None
) -> Iterator[NullRun | WandbRun]:
    """Open a tracker run for the duration of an experiment, finishing it whatever happens.
    `sweep`: the Hydra sweep folder the run belongs to (drift.cli.config.sweep_folder), if any."""
    mode = wandb_mode(logger_cfg)
    if mode is None:
        yield NullRun()
        return
    import wandb

    save_dir = Path(logger_cfg["save_dir"])
    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=logger_cfg["project"],
        entity=logger_cfg.get("entity"),
        group=run_group(logger_cfg, sweep),
        tags=list(logger_cfg.get("tags") or []),
        name=logger_cfg.get("name"),
        job_type=logger_cfg.get("job_type"),
        dir=str(save_dir),
        mode=mode,
        config=config,
        reinit="finish_previous",
    )
    exit_code = 1
    try:
        yield WandbRun(
            run,
            metrics=logger_cfg.get("metrics", "headline"),
            log_adapters=bool(logger_cfg.get("log_adapters", True)),
        )
        exit_code = 0
    finally:
        run.finish(exit_code=exit_code)

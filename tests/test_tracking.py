"""What a W&B run logs (drift.experiment.tracking), read back from an offline run's own files.

The run is real (wandb, mode offline, into a tmp folder); its `.wandb` file (a LevelDB-style log of
protobuf records: wandb's datastore format) is parsed here to check the history, the group and the
artifacts, and the strategies table is read from the run's media folder.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

wandb = pytest.importorskip("wandb")

from drift.cli.config import sweep_folder  # noqa: E402
from drift.core.errors import ConfigError  # noqa: E402
from drift.experiment.tracking import (  # noqa: E402
    headline_metrics,
    run_group,
    tracked_run,
    wandb_mode,
)
from drift.scoring.evaluate import table_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECORD = next((ROOT / "results" / "offline_default" / "runs").rglob("*.json"))
BLOCK = 32768  # the datastore's block size


def datastore_records(path: Path) -> list[Any]:
    """The protobuf records of a `.wandb` file: a 7-byte file header (":W&B", magic, version),
    then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length, type: 1 full, 2 first,
    3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending, out = 7, b"", []
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if length == 0 and kind == 0:  # zero padding to the end of the block
            pos += left - 7
            continue
        pending += data[pos : pos + length]
        pos += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def finished_records(path: Path, timeout: float = 60.0) -> list[Any]:
    """The run file's records once wandb's service has written them all (its `exit` record and
    the summary after it): `finish()` returns before the service has flushed the file."""
    deadline = time.monotonic() + timeout
    while True:
        records = datastore_records(path)
        kinds = [r.WhichOneof("record_type") for r in records]
        if "exit" in kinds or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def offline_run(tmp_path: Path, monkeypatch, metrics: str) -> dict[str, Any]:
    """Log the committed offline default record through a real offline run; what it wrote."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    record = json.loads(RECORD.read_text())
    adapter = tmp_path / "adapters" / "procrustes"
    adapter.mkdir(parents=True)
    (adapter / "adapter.json").write_text("{}")
    (adapter / "weights.npz").write_bytes(b"not really")
    record["artifacts"] = {"procrustes": str(adapter), "gate_pairs": str(tmp_path / "gate.npz")}
    logger = {
        "kind": "wandb",
        "mode": "offline",
        "project": "drift-test",
        "save_dir": str(tmp_path),
        "group": "text_default",
        "metrics": metrics,
    }
    table = table_rows(record["metrics"])
    with tracked_run(logger, {"seed": 0}, sweep="2026-12-06_10-00-00-123") as tracker:
        tracker.log_record(record, RECORD, table)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    records = finished_records(next(run_dir.glob("run-*.wandb")))
    history: dict[str, Any] = {}
    artifacts: dict[str, tuple[str, list[str]]] = {}
    group = None
    for item in records:
        kind = item.WhichOneof("record_type")
        if kind == "history":
            for entry in item.history.item:
                key = "/".join(entry.nested_key) if entry.nested_key else entry.key
                history[key] = json.loads(entry.value_json)
        elif kind == "run":
            group = item.run.run_group
        elif kind == "artifact":
            paths = [m.path for m in item.artifact.manifest.contents]
            artifacts[item.artifact.name] = (item.artifact.type, paths)
    (table_file,) = (run_dir / "files" / "media" / "table").glob("strategies_*.table.json")
    return {
        "record": record,
        "table": table,
        "history": history,
        "artifacts": artifacts,
        "group": group,
        "logged_table": json.loads(table_file.read_text()),
    }


def test_a_run_logs_headlines_the_table_and_artifacts(tmp_path, monkeypatch) -> None:
    run = offline_run(tmp_path, monkeypatch, "headline")
    record, history = run["record"], run["history"]
    knn = record["metrics"]["protocols"]["knn"]["strategies"]
    qrels = record["metrics"]["protocols"]["qrels"]["strategies"]
    assert history["knn/status_quo/recall@10"] == pytest.approx(
        knn["status_quo"]["metrics"]["recall@10"]["mean"]
    )
    assert history["qrels/adapter/procrustes/ndcg@10"] == pytest.approx(
        qrels["adapter/procrustes"]["metrics"]["ndcg@10"]["mean"]
    )
    assert history["knn/adapter/procrustes/arr_recall@10"] == pytest.approx(
        knn["adapter/procrustes"]["arr"]["arr_recall@10"]["mean"]
    )
    assert history["timings/total"] == pytest.approx(record["timings"]["total"])
    numbers = [k for k in history if not k.startswith(("_", "strategies"))]
    assert not any(k.startswith("metrics/") for k in numbers)
    assert len(numbers) == len(headline_metrics(record["metrics"])) + len(record["timings"])
    assert len(numbers) < 200  # against about 3,700 in the full dump
    # the strategies table: one row per protocol and strategy, every column
    logged = run["logged_table"]
    assert len(logged["data"]) == len(run["table"])
    assert {"protocol", "strategy", "recall@10", "ndcg@10"} <= set(logged["columns"])
    # the result file and the fitted adapter folders (not the gate pairs) as artifacts
    artifacts = run["artifacts"]
    assert artifacts[f"result-{record['config_hash']}"] == ("result", [RECORD.name])
    adapter_type, adapter_files = artifacts[f"adapters-{record['config_hash']}"]
    assert adapter_type == "adapter"
    assert sorted(adapter_files) == ["procrustes/adapter.json", "procrustes/weights.npz"]
    assert run["group"] == "text_default/2026-12-06_10-00-00-123"


def test_the_full_dump_is_an_option(tmp_path, monkeypatch) -> None:
    run = offline_run(tmp_path, monkeypatch, "full")
    flat = [k for k in run["history"] if k.startswith("metrics/")]
    assert len(flat) > 3000
    assert "metrics/protocols/knn/strategies/status_quo/metrics/recall@10/mean" in flat
    assert "knn/status_quo/recall@10" in run["history"]  # the headline stays


def test_bad_logger_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="logger.metrics must be one of"):
        wandb_mode({"kind": "wandb", "mode": "offline", "metrics": "everything"})
    assert wandb_mode({"kind": "none", "metrics": "everything"}) is None


def test_groups_outside_and_inside_a_sweep() -> None:
    assert run_group({"group": "text_default"}) == "text_default"
    assert run_group({"group": "text_default"}, "2026-01-01") == "text_default/2026-01-01"
    assert run_group({"group": None}, "s") == "s"
    assert sweep_folder() is None  # not under Hydra

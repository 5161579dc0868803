"""Benchmark: wall time of the offline default experiment from an empty cache, then warm.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_default_run.py [extra hydra overrides]

Runs `python -m drift.run` (the README's main job, W&B off) twice in subprocesses against a fresh
cache folder: the first run reassembles mpnet, encodes everything and builds the indexes; the
second finds every embedding and index cached. Targets (issue 3): under 10 minutes cold, under
1 minute warm, on this machine. Writes results/bench/default_run.json with the machine, its load
average before each run, and the per-stage timings each run recorded in its own result file.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drift.core.records import ResultRecord, write_json_atomic
from drift.serving.latency import machine

ROOT = Path(__file__).resolve().parents[1]


def timed_run(overrides: list[str]) -> tuple[float, float]:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "drift.run", *overrides], cwd=ROOT, check=True, env=os.environ
    )
    return time.perf_counter() - start, load


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        base = [
            "logger=none",
            f"paths.cache_dir={tmp}/cache",
            f"paths.results_dir={tmp}/results",
            f"hydra.run.dir={tmp}/hydra",
            "encode.show_progress=false",
            *extra,
        ]
        runs = []
        for label in ("cold", "warm"):
            seconds, load = timed_run(base)
            record = ResultRecord.iter(f"{tmp}/results")[-1].data
            runs.append(
                {
                    "label": label,
                    "wall_seconds": seconds,
                    "load_average_before": load,
                    "stage_seconds": record["timings"],
                    "encoded": {m: s["encoded"] for m, s in record["cache"].items()},
                    "dataset": record["dataset"],
                }
            )
            print(f"{label}: {seconds:.1f} s (load average before: {load:.1f})", flush=True)
    out = ROOT / "results" / "bench" / "default_run.json"
    write_json_atomic(
        out,
        {
            "benchmark": "offline default experiment (make run), cold then warm",
            "command": "python -m drift.run " + " ".join(["logger=none", *extra]),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "targets_seconds": {"cold": 600, "warm": 60},
            "machine": machine(),
            "runs": runs,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Benchmark: wall time and memory peak of one `python -m drift.run` (e.g. the full-size GCIDE run).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_run.py \\
        --out results/bench/gcide_full_run.json -- dataset=gcide index=hnsw adapter=all

Runs drift.run once in a subprocess with the given Hydra overrides (W&B off) against the cache
the config names (so the first encode, measured on its own by `python -m drift.encode`'s shard
records, is not mixed in when the cache is filled), and writes a JSON with the wall time, the
child's peak resident memory (getrusage's ru_maxrss of the finished child), its CPU time, the
load average before and after, the machine, and the per-stage timings and cache counters from
the run's own result file (so a run that encoded anything says how much).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from drift.core.records import ResultRecord, write_json_atomic
from drift.serving.latency import machine

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the benchmark JSON to write")
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="keep the run's result file there (default: a temporary folder, discarded)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the run (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="drift-bench-run-") as tmp:
        results_dir = args.results_dir.resolve() if args.results_dir else Path(tmp) / "results"
        overrides = [
            "logger=none",
            f"paths.results_dir={results_dir}",
            f"hydra.run.dir={tmp}/hydra",
            "encode.show_progress=false",
            *args.overrides,
        ]
        load_before = os.getloadavg()
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "drift.run", *overrides], cwd=ROOT, check=True, env=os.environ
        )
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        newest = max(results_dir.rglob("*.json"), key=lambda path: path.stat().st_mtime)
        record = ResultRecord.from_path(newest).data  # the run's: no other file is parsed
    result = {
        "benchmark": "one drift.run: wall time and memory peak",
        "command": "python -m drift.run " + " ".join(["logger=none", *args.overrides]),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        # Linux reports ru_maxrss in KiB: the largest child's peak, here the run itself.
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "dataset": record["dataset"],
        "index": record["index"],
        "stage_seconds": record["timings"],
        "cache": record["cache"],
        "strategies": sorted(record["metrics"]["protocols"]["knn"]["strategies"]),
    }
    write_json_atomic(args.out, result)
    print(
        f"{wall:.1f} s wall, {result['cpu_seconds']:.1f} s CPU, peak RSS "
        f"{result['peak_rss_mib']:.0f} MiB; wrote {args.out}"
    )


if __name__ == "__main__":
    main()

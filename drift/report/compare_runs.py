"""Two result files of one configuration, metric by metric: did a machine change the answer?

    drift compare-runs cpu.json gpu.json --labels cpu gpu --metric recall@10 \
        --out results/gpu_check/e2e_cpu_vs_gpu.md

The same config on two machines (CPU and GPU, two package versions) should give the same
numbers up to floating point: fp16 encodes on CUDA, another BLAS. The table gives each strategy's
mean under each file and the difference; the header says what differed between the runs
(hardware, package versions, the encoders' preprocessing) and refuses files whose resolved
configs differ in anything but `paths` and `hydra` (where files went). Strategies that only one
file holds are listed under the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from drift.core.records import NOT_DESIGN, ResultRecord

# Where files went and how the run went about it (paths, logger, the encode's batching, progress
# and cache use), not what was computed: the design's exclusions (drift/core/records.py) less
# the seed, which two runs of one config share.
IGNORED_CONFIG = ("hydra", *(key for key in NOT_DESIGN if key != "seed"))


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs."""
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        if not prefix and key in IGNORED_CONFIG:
            continue
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}")
    return out


def context(record: ResultRecord) -> dict[str, str]:
    """What besides the config decides the numbers: hardware, key packages, encode precision."""
    prov = record.data.get("provenance", {})
    hardware = prov.get("hardware", {})
    packages = prov.get("packages", {})
    return {
        "device": ", ".join(hardware.get("gpu", [])) or f"CPU ({hardware.get('cpu', '?')})",
        "python": str(hardware.get("python")),
        "torch / faiss / numpy": " / ".join(
            str(packages.get(p)) for p in ("torch", faiss_package(packages), "numpy")
        ),
        "encode dtype": ", ".join(
            f"{role}: {m.get('preprocessing', '').rsplit('dtype=', 1)[-1]}"
            for role, m in record.data.get("models", {}).items()
        ),
        "commit": str(prov.get("git", {}).get("commit", "?"))[:10],
    }


def faiss_package(packages: dict[str, str]) -> str:
    """The faiss build a run recorded (CPU or GPU wheel)."""
    return next((p for p in ("faiss-gpu-cu12", "faiss-gpu") if p in packages), "faiss-cpu")


def means(record: ResultRecord, protocol: str, metric: str) -> dict[str, float]:
    return {
        row["strategy"]: row["value"]
        for row in record.rows()
        if row["protocol"] == protocol and row["metric"] == metric
    }


def compare(
    records: Sequence[ResultRecord], labels: Sequence[str], metric: str
) -> tuple[str, float]:
    """The markdown report and the largest absolute difference over strategies and protocols."""
    a, b = records
    lines = ["| | " + " | ".join(labels) + " |", "|---|---|---|"]
    ctx = [context(r) for r in records]
    lines += [f"| {key} | {ctx[0][key]} | {ctx[1][key]} |" for key in ctx[0]]
    worst = 0.0
    protocols = [p for p in a.protocols if p in b.protocols]
    for protocol in protocols:
        ma, mb = means(a, protocol, metric), means(b, protocol, metric)
        lines += [
            "",
            f"### {protocol}: {metric}",
            "",
            f"| strategy | {labels[0]} | {labels[1]} | {labels[1]} - {labels[0]} |",
            "|---|---:|---:|---:|",
        ]
        for strategy in [s for s in ma if s in mb]:
            diff = mb[strategy] - ma[strategy]
            worst = math.nan if math.isnan(diff) or math.isnan(worst) else max(worst, abs(diff))
            lines.append(f"| {strategy} | {ma[strategy]:.3f} | {mb[strategy]:.3f} | {diff:+.3f} |")
        only = sorted(set(ma) ^ set(mb))
        if only:
            lines += ["", f"In one file only: {', '.join(only)}"]
    lines += ["", f"Largest |difference| over strategies and protocols: {worst:.3f}"]
    return "\n".join(lines) + "\n", worst

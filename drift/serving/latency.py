"""Latency measurement shared by the benches, in the manner of faiss's benchmarks.

`measure(fn, batch=b)` calls `fn` a few times to warm up (caches, lazy allocations, BLAS thread
pools), then repeatedly until both `min_runs` calls and `min_time_s` seconds have passed, timing
each call on its own with `time.perf_counter_ns`. It reports the median and p99 of the per-call
times (and per item: divided by the batch size) with the run count. The timer's own cost (about
0.1 us per call) is included in every figure, as it would be in any Python caller.

`machine()` records what such numbers depend on: CPU model, core count, and the thread counts of
numpy's BLAS, torch and faiss's OpenMP.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.core.errors import ConfigError
from drift.core.provenance import hardware


@dataclass(frozen=True)
class Measurement:
    """Per-call timings of one function at one batch size (times in microseconds)."""

    batch: int
    runs: int
    warmup_runs: int
    total_s: float
    median_us: float
    p99_us: float
    min_us: float

    @property
    def per_item_median_us(self) -> float:
        return self.median_us / self.batch

    @property
    def per_item_p99_us(self) -> float:
        return self.p99_us / self.batch

    def to_dict(self) -> dict[str, float | int]:
        return {
            **asdict(self),
            "per_item_median_us": self.per_item_median_us,
            "per_item_p99_us": self.per_item_p99_us,
        }


def measure(
    fn: Callable[[], object],
    *,
    batch: int,
    min_time_s: float = 0.2,
    min_runs: int = 20,
    warmup_runs: int = 5,
    max_runs: int = 1_000_000,
) -> Measurement:
    """Time `fn()` (which processes `batch` items per call); see the module docstring."""
    if batch < 1 or min_runs < 1 or warmup_runs < 0 or max_runs < min_runs or min_time_s < 0:
        raise ConfigError(
            f"measure: need batch >= 1, min_runs >= 1, warmup_runs >= 0, max_runs >= min_runs "
            f"and min_time_s >= 0; got {batch}, {min_runs}, {warmup_runs}, {max_runs}, {min_time_s}"
        )
    for _ in range(warmup_runs):
        fn()
    clock = time.perf_counter_ns
    times: list[int] = []
    deadline = clock() + int(min_time_s * 1e9)
    start = clock()
    while len(times) < max_runs:
        t0 = clock()
        fn()
        t1 = clock()
        times.append(t1 - t0)
        if len(times) >= min_runs and t1 >= deadline:
            break
    total_s = (clock() - start) / 1e9
    us = np.asarray(times, dtype=np.float64) / 1e3
    return Measurement(
        batch=batch,
        runs=len(times),
        warmup_runs=warmup_runs,
        total_s=total_s,
        median_us=float(np.median(us)),
        p99_us=float(np.percentile(us, 99)),
        min_us=float(us.min()),
    )


def thread_counts() -> dict[str, Any]:
    """Threads each numeric library would use now (only libraries already imported are asked)."""
    counts: dict[str, Any] = {}
    try:
        from threadpoolctl import threadpool_info

        counts["blas"] = [
            {
                "library": p.get("internal_api"),
                "file": Path(p.get("filepath", "")).name,
                "threads": p.get("num_threads"),
            }
            for p in threadpool_info()
        ]
    except ImportError:
        counts["blas"] = "threadpoolctl not installed"
    if "torch" in sys.modules:
        counts["torch"] = sys.modules["torch"].get_num_threads()
    if "faiss" in sys.modules:
        counts["faiss_omp"] = sys.modules["faiss"].omp_get_max_threads()
    return counts


def set_threads(n: int) -> None:
    """Use `n` threads in torch, faiss and every BLAS/OpenMP library loaded by then (numpy's,
    scipy's, torch's), for the whole process. onnxruntime sessions take their own setting."""
    if n < 1:
        raise ConfigError(f"thread count must be >= 1, got {n}")
    for name, setter in (("torch", "set_num_threads"), ("faiss", "omp_set_num_threads")):
        try:
            module = __import__(name)  # imported first, so their libraries are limited below
        except ImportError:
            continue
        getattr(module, setter)(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
    except ImportError:
        pass


def machine() -> dict[str, Any]:
    """CPU model, core count, platform and the numeric libraries' thread counts."""
    return {**hardware(), "threads": thread_counts()}

"""The arithmetic and memory floor of an adapter's apply on this machine, measured in the same run.

A query through an adapter does `cost(ops).flops` floating-point operations and reads the adapter's
weights. Its floor at batch b is the larger of

- compute: b * flops at the float32 SGEMM rate of a large square product (`rates`: numpy's BLAS on
  SGEMM_SIZE x SGEMM_SIZE, "peak-ish": the best this BLAS does, not the core's theoretical peak);
- memory: the weight bytes once per call at the copy bandwidth of a buffer the weights' size
  (cache-resident between calls: the level that holds them, L2 or L3) -- and, reported beside
  it, at the copy bandwidth of a buffer far larger than the caches (DRAM: the cold case, when
  other work has evicted the weights).

so a single query (b = 1) is memory-bound and a large batch compute-bound. The floors' rates come
from the fastest call of each measurement (a bound: the best this machine did, not its typical
speed under other work); `rates` also times the bare numpy matvec of the adapter's shape, median
and fastest (the SGEMV rate a single query actually gets). `best_rates` keeps the better of two
measurements (a run measures at its start and end).

    rates = measure_rates(768, 384)
    floor = floor_us(cost(served.ops, shapes, 768), batch=1, weight_bytes=..., rates=rates)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from drift.serving.latency import measure

# Square float32 product for the arithmetic rate: 2 GFLOP, about 20 ms a call on one core, short
# enough that the fastest of many calls ran uninterrupted on a shared machine (a 2048 product,
# 0.2-0.4 s a call there, measured half the rate under load).
SGEMM_SIZE = 1024
DRAM_BYTES = 64 * 2**20  # copy buffer far larger than any cache here (L3: 32 MiB)
# FLOPs per element of the erf-based GELU: the rational erfc approximation is ten multiply-adds, an
# exp and a few multiplies; an estimate (a transcendental is not one operation), stated as such.
GELU_FLOPS = 30


def cost(
    ops: Sequence[Mapping[str, Any]], shapes: Mapping[str, Sequence[int]], d_in: int
) -> dict[str, int]:
    """FLOPs and weight values one query needs through `ops` (drift/serving/runtime.py's
    vocabulary): a matmul [1, a] @ [a, b] is 2ab FLOPs, an add or mul one per element, the L2
    normalisation three per element (square, add, scale), GELU `GELU_FLOPS`."""
    flops, values, dim = 0, 0, d_in
    for op in ops:
        kind = op["op"]
        if kind == "matmul":
            a, b = shapes[op["weight"]]
            flops, values, dim = flops + 2 * a * b, values + a * b, b
        elif kind in ("add", "mul"):
            flops, values = flops + dim, values + int(np.prod(shapes[op["value"]]))
        elif kind == "gelu":
            flops += GELU_FLOPS * dim
        elif kind == "l2_normalize":
            flops += 3 * dim
        elif kind == "sum":
            parts = [cost(branch, shapes, dim) for branch in op["branches"]]
            flops += sum(p["flops"] for p in parts) + dim * (len(parts) - 1)
            values += sum(p["weight_values"] for p in parts)
            dim = parts[0]["d_out"]
    return {"flops": flops, "weight_values": values, "d_out": dim}


def _copy_bandwidth(n_bytes: int, timing: Mapping[str, Any]) -> float:
    """Bytes moved per second (read + written) by np.copyto of an `n_bytes` float32 buffer."""
    src = np.ones(max(n_bytes // 4, 1), dtype=np.float32)
    dst = np.empty_like(src)
    m = measure(lambda: np.copyto(dst, src), batch=1, **timing)
    return 2 * src.nbytes / (m.min_us * 1e-6)


def measure_rates(
    d_in: int,
    d_out: int,
    *,
    timing: Mapping[str, Any] | None = None,
    sgemm_size: int = SGEMM_SIZE,
    dram_bytes: int = DRAM_BYTES,
    seed: int = 0,
) -> dict[str, float]:
    """This machine's rates for the floors, with the thread settings in force: SGEMM GFLOP/s and
    copy bandwidth (GB/s, bytes read + written) of a d_in x d_out float32 buffer and of a
    `dram_bytes` one, each from its fastest call; the bare [1, d_in] @ [d_in, d_out] matvec
    (median and fastest us, GFLOP/s at the median)."""
    timing = dict(timing or {"min_time_s": 0.2, "min_runs": 20, "warmup_runs": 5})
    rng = np.random.default_rng(seed)
    square = rng.standard_normal((sgemm_size, sgemm_size)).astype(np.float32)
    sgemm = measure(lambda: square @ square, batch=1, **{**timing, "min_runs": 5})
    weight = rng.standard_normal((d_in, d_out)).astype(np.float32)
    queries = itertools.cycle(rng.standard_normal((256, 1, d_in)).astype(np.float32))
    matvec = measure(lambda: next(queries) @ weight, batch=1, **timing)
    return {
        "sgemm_size": sgemm_size,
        "sgemm_gflops": 2 * sgemm_size**3 / sgemm.min_us / 1e3,
        "sgemm_gflops_median": 2 * sgemm_size**3 / sgemm.median_us / 1e3,
        "matvec_shape": [d_in, d_out],
        "matvec_us": matvec.median_us,
        "matvec_min_us": matvec.min_us,
        "matvec_gflops": 2 * d_in * d_out / matvec.median_us / 1e3,
        "copy_bytes_weights": weight.nbytes,
        "copy_gbps_weights": _copy_bandwidth(weight.nbytes, timing) / 1e9,
        "copy_bytes_dram": dram_bytes,
        "copy_gbps_dram": _copy_bandwidth(dram_bytes, {**timing, "min_runs": 5}) / 1e9,
    }


def best_rates(*measured: Mapping[str, Any]) -> dict[str, Any]:
    """Per rate, the best of several `measure_rates` results (the highest GFLOP/s and GB/s, the
    lowest times)."""
    best = dict(measured[0])
    for other in measured[1:]:
        for key, value in other.items():
            if key.endswith(("gflops", "gbps")):
                best[key] = max(best[key], value)
            elif key.endswith("_us"):
                best[key] = min(best[key], value)
    return best


def floor_us(
    flops: int, weight_bytes: int, batch: int, rates: Mapping[str, float]
) -> dict[str, float | str]:
    """Per-query floors (us) at `batch` queries per call: compute (FLOPs at the SGEMM rate),
    memory (weight bytes once per call at the weights-sized copy bandwidth; and at the DRAM copy
    bandwidth, reported only), the floor (the larger of compute and memory) and which binds."""
    compute = flops / (rates["sgemm_gflops"] * 1e3)
    memory = weight_bytes / (rates["copy_gbps_weights"] * 1e3) / batch
    memory_dram = weight_bytes / (rates["copy_gbps_dram"] * 1e3) / batch
    return {
        "compute_us": compute,
        "memory_us": memory,
        "memory_dram_us": memory_dram,
        "floor_us": max(compute, memory),
        "binds": "memory" if memory > compute else "compute",
    }

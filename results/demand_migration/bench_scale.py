"""Time serve_demand at the GCIDE scale on synthetic vectors (a timing, not a quality result).

N = 117,029 unit vectors of 768 dimensions, 5,000 queries (each near a random document), old
candidates: each query's top 50 under a noisy copy of the query; a stream of 20,000 queries
(make_stream, seed 0); K' = 50, k = 10, the default ranking prefix.

    python results/demand_migration/bench_scale.py zipf uniform
"""

from __future__ import annotations

import sys
import time

import numpy as np

from drift.migration.demand import serve_demand
from drift.migration.stream import make_stream

N, N_QUERIES, LENGTH, DIM, DEPTH = 117_029, 5_000, 20_000, 768, 50


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main(popularities: list[str]) -> None:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    x_new = unit(rng.standard_normal((N, DIM), dtype=np.float32))
    noise = rng.standard_normal((N_QUERIES, DIM), dtype=np.float32) / np.sqrt(DIM)
    q_new = unit(x_new[rng.integers(0, N, N_QUERIES)] + 0.8 * noise)
    q_old = q_new + rng.standard_normal((N_QUERIES, DIM), dtype=np.float32) / np.sqrt(DIM)
    candidates = np.empty((N_QUERIES, DEPTH), dtype=np.int64)
    for first in range(0, N_QUERIES, 500):
        scores = q_old[first : first + 500] @ x_new.T
        candidates[first : first + 500] = np.argpartition(-scores, DEPTH, axis=1)[:, :DEPTH]
    print(f"setup: {time.perf_counter() - start:.1f} s", flush=True)
    for popularity in popularities:
        stream = make_stream(N_QUERIES, LENGTH, popularity=popularity, seed=0)
        start = time.perf_counter()
        served = serve_demand(stream, candidates, q_new, x_new, k=10, new_depth=DEPTH)
        seconds = time.perf_counter() - start
        encodes = int(served.cold.sum())
        print(
            f"{popularity}: {seconds:.1f} s for {LENGTH:,} queries "
            f"({np.unique(stream).size:,} distinct); {encodes:,} encodes ({encodes / N:.1%}); "
            f"{served.scans} searches scanned H",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["zipf", "uniform"])

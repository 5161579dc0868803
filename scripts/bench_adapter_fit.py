"""Benchmark: how long each adapter takes to fit at the paper's scale (synthetic data).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_adapter_fit.py            # writes the JSON
    .venv/bin/python scripts/bench_adapter_fit.py --repeats 1 --out /tmp/a.json  # quicker look
    .venv/bin/python scripts/bench_adapter_fit.py --threads 1 --out /tmp/t1.json   # one thread

Np = 20,000 pairs split 80/20 (16,000 to fit, 4,000 for validation, as the paper's protocol),
768 -> 384 dims (MPNet -> MiniLM), unit vectors. The data is SYNTHETIC: seeded Gaussian new
vectors with a decaying spectrum; old vectors = normalise(a linear part x_new @ W, W a random
semi-orthogonal 768 x 384 map, plus an equally large nonlinear part |z| @ V, z = sqrt(d_new)
x_new @ U along 32 random directions U, V random orthonormal rows), so that there is something
beyond a linear map for the MLP to learn. (The first version's planted map, normalise(tanh(2
sqrt(d_new) x_new @ W)), bends all 384 directions: with 16,000 pairs no MLP recipe tried learnt it
(training cosine rose, validation cosine fell from the ridge start), so the MLP's time was that of
early stopping at epoch 0.) The validation cosines are those of this planted map, not of any
real model pair.

Each adapter is fitted `--repeats` times (median reported) with its default hyperparameters, ridge
and LA also with the configs' penalty grid (one fit per value, the best on validation kept); the
residual MLP is also timed with early stopping off (all `max_epochs` epochs) for its worst case,
since with early stopping its time depends on when the validation loss stops improving. Its rows
record the best epoch and whether training improved on its linear start (best epoch > 0). Writes
results/bench/adapter_fit.json with the CPU model, thread counts, load average and versions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import torch

from drift.adapters import build_adapter
from drift.core.vectors import l2_normalize

ROOT = Path(__file__).resolve().parents[1]

# The penalty grid of conf/adapter/all.yaml (drift/adapters/penalty.py chooses on validation).
PENALTY_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]
# (label, adapter kind, hparams): the defaults (fixed penalties), the closed forms with the
# configs' penalty grid, and the MLP without early stopping.
CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("procrustes", "procrustes", {}),
    ("ridge", "ridge", {}),
    ("ridge/grid", "ridge", {"alpha": PENALTY_GRID}),
    ("low_rank_affine", "low_rank_affine", {}),
    ("low_rank_affine/grid", "low_rank_affine", {"alpha": PENALTY_GRID}),
    ("residual_mlp", "residual_mlp", {}),
    ("residual_mlp/all_epochs", "residual_mlp", {"patience": 30, "max_epochs": 30}),
]


def synthetic_pairs(
    n: int, d_new: int, d_old: int, seed: int, bent: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded synthetic pairs from a planted linear + nonlinear map (see the module docstring)."""
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(1.0 + np.arange(d_new) / 32.0)
    x_new = l2_normalize(rng.standard_normal((n, d_new)) * spectrum)
    w = np.linalg.qr(rng.standard_normal((d_new, d_old)))[0]
    u = np.linalg.qr(rng.standard_normal((d_new, bent)))[0]
    v = np.linalg.qr(rng.standard_normal((d_old, bent)))[0].T
    linear = x_new @ w
    nonlinear = np.abs(np.sqrt(d_new) * x_new @ u) @ v
    x_old = l2_normalize(linear / linear.std() + nonlinear / nonlinear.std())
    return x_new, x_old


def environment() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {k: info.get(k) for k in ("internal_api", "num_threads", "version")}
            for info in threadpool_info()
        ]
    except ImportError:
        blas = "threadpoolctl not installed"
    git = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return {
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "blas_threadpools": blas,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "git_commit": git.stdout.strip() or None,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def bench(label: str, kind: str, hparams: dict[str, Any], data, repeats: int) -> dict[str, Any]:
    x_train, y_train, x_val, y_val = data
    seconds, adapter = [], None
    for repeat in range(repeats):
        adapter = build_adapter(kind, **hparams)
        adapter.fit(x_train, y_train, x_new_val=x_val, x_old_val=y_val, seed=repeat)
        seconds.append(adapter.fit_seconds)
        print(f"{label}: repeat {repeat}: {adapter.fit_seconds:.2f} s", flush=True)
    info = adapter.fit_info
    row = {
        "adapter": label,
        "kind": kind,
        "hparams": adapter.hparams(),
        "n_params": adapter.n_params,
        "fit/seconds_median": statistics.median(seconds),
        "fit/seconds_all": seconds,
        "cosine/val_synthetic": info["cosine/val"],
    }
    if "alpha" in info:  # a penalty grid: the value chosen on validation
        row["alpha_chosen"] = info["alpha"]["chosen"]
    if "epochs_run" in info:  # the MLP (the last repeat's training)
        row["fit/epochs_run"] = info["epochs_run"]
        row["fit/best_epoch"] = info["best_epoch"]
        row["fit/trained_past_start"] = info["best_epoch"] > 0
        row["cosine/val_synthetic_start"] = 1.0 - info["val_curve"][0]  # its ridge start
        row["fit/seconds_per_epoch"] = statistics.median(seconds) / info["epochs_run"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-pairs", type=int, default=20_000)
    parser.add_argument("--d-new", type=int, default=768)
    parser.add_argument("--d-old", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results/bench/adapter_fit.json")
    parser.add_argument(
        "--threads",
        type=int,
        help="cap torch and BLAS threads (default: leave them as they are); on a busy machine "
        "fewer threads than cores can be faster",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            print("threadpoolctl not installed: BLAS threads left as they are")

    x_new, x_old = synthetic_pairs(args.n_pairs, args.d_new, args.d_old, args.seed)
    n_train = int(0.8 * args.n_pairs)
    data = (x_new[:n_train], x_old[:n_train], x_new[n_train:], x_old[n_train:])
    load_before = os.getloadavg()
    rows = [bench(label, kind, hp, data, args.repeats) for label, kind, hp in CONFIGS]
    result = {
        "benchmark": "adapter_fit",
        "data": {
            "synthetic": True,
            "description": "x_new: seeded unit Gaussian vectors, spectrum 1/sqrt(1 + i/32); "
            "x_old = normalise(x_new @ W / std + |sqrt(d_new) x_new @ U| @ V / std), W random "
            "semi-orthogonal, U: 32 random orthonormal directions, V: 32 random orthonormal rows",
            "n_pairs": args.n_pairs,
            "n_train": n_train,
            "n_val": args.n_pairs - n_train,
            "d_new": args.d_new,
            "d_old": args.d_old,
            "seed": args.seed,
        },
        "repeats": args.repeats,
        "not_run": {"identity": f"needs d_new == d_old (here {args.d_new} -> {args.d_old})"},
        "targets_seconds": {"procrustes": 2.0, "residual_mlp": 60.0},
        "environment": {
            **environment(),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": os.getloadavg(),
        },
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    for row in rows:
        trained = f"  best epoch {row['fit/best_epoch']}" if "fit/best_epoch" in row else ""
        print(
            f"{row['adapter']:>24}: {row['fit/seconds_median']:7.2f} s  "
            f"{row['n_params']:>8} params  val cos {row['cosine/val_synthetic']:.4f}{trained}"
        )


if __name__ == "__main__":
    main()

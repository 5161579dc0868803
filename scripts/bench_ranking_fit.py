"""Benchmark: how long the ranking adapters take to fit at the paper's scale (synthetic data).

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_ranking_fit.py --threads 2   # writes the JSON
    .venv/bin/python scripts/bench_ranking_fit.py --n-pairs 4000 --out /tmp/r.json  # quicker look

Np = 20,000 pairs split 80/20 (16,000 training pseudo-queries, 4,000 validation), 768 -> 384
dims, the SYNTHETIC planted map of scripts/bench_adapter_fit.py (seeded; not a real model pair).
Each ranking adapter (drift/adapters/ranking.py) is fitted once with the settings of
conf/adapter/ranking.yaml but one temperature (a grid of g values costs g fits), and once more
with early stopping off (all `--epochs` epochs) for the worst case. A fit's time is its
neighbour search (each training item's top 10 among the 16,000 by the new model), the epochs
(each a full softmax over the 16,000 training items' old vectors per pseudo-query) and one
validation recall per epoch. Target (issue 21): under 60 s on 2 cores. Writes
results/bench/ranking_fit.json with the CPU model, thread counts and load average.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import torch

from drift.adapters import build_adapter
from drift.core.files import atomic_write

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 60.0


def _adapter_fit_bench():
    """scripts/bench_adapter_fit.py as a module: its synthetic pairs and environment record."""
    spec = importlib.util.spec_from_file_location(
        "bench_adapter_fit", ROOT / "scripts/bench_adapter_fit.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configs(epochs: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, hparams): the experiment's settings (conf/adapter/ranking.yaml: its
    temperature grid, probed), the same at one temperature, then all epochs."""
    common = {"temperature": 0.05, "lr": 0.05, "max_epochs": 30, "patience": 3}
    grid = {**common, "temperature": [0.02, 0.05, 0.1], "probe_epochs": 2}
    rows = [
        ("ranking_linear/grid", "ranking_linear", grid),
        ("ranking_low_rank/grid", "ranking_low_rank", {**grid, "rank": 64}),
        ("ranking_mlp/grid", "ranking_mlp", {**grid, "hidden": 256}),
        ("ranking_linear", "ranking_linear", common),
        ("ranking_low_rank", "ranking_low_rank", {**common, "rank": 64}),
        ("ranking_mlp", "ranking_mlp", {**common, "hidden": 256}),
    ]
    if epochs == 0:
        return rows
    every_epoch = {"max_epochs": epochs, "patience": epochs}
    single = [row for row in rows if not row[0].endswith("/grid")]
    return rows + [
        (f"{label}/{epochs}_epochs", k, {**hp, **every_epoch}) for label, k, hp in single
    ]


def bench(label: str, kind: str, hparams: dict[str, Any], data) -> dict[str, Any]:
    x_train, y_train, x_val, y_val = data
    adapter = build_adapter(kind, **hparams)
    adapter.fit(x_train, y_train, x_new_val=x_val, x_old_val=y_val, seed=0)
    info = adapter.fit_info
    print(f"{label}: {adapter.fit_seconds:.1f} s, {info['epochs_run']} epochs", flush=True)
    return {
        "adapter": label,
        "kind": kind,
        "hparams": adapter.hparams(),
        "n_params": adapter.n_params,
        "fit/seconds": adapter.fit_seconds,
        "fit/epochs_run": info["epochs_run"],
        "fit/best_epoch": info["best_epoch"],
        "fit/temperature_used": info["temperature_used"],
        "fit/seconds_per_epoch": adapter.fit_seconds / max(info["epochs_run"], 1),
        "recall@10/val_synthetic": info["best_val_recall"],
        "recall@10/val_synthetic_op_start": info["val_curve"][0],
        "under_target": adapter.fit_seconds < TARGET_SECONDS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-pairs", type=int, default=20_000)
    parser.add_argument("--d-new", type=int, default=768)
    parser.add_argument("--d-old", type=int, default=384)
    parser.add_argument(
        "--epochs", type=int, default=10, help="epochs of the worst-case rows (0: none)"
    )
    parser.add_argument("--threads", type=int, help="cap torch and BLAS threads (e.g. 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "results/bench/ranking_fit.json")
    args = parser.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    base = _adapter_fit_bench()
    x_new, x_old = base.synthetic_pairs(args.n_pairs, args.d_new, args.d_old, seed=0)
    n_train = int(0.8 * args.n_pairs)
    data = (x_new[:n_train], x_old[:n_train], x_new[n_train:], x_old[n_train:])
    load_before = os.getloadavg()
    rows = [bench(label, kind, hp, data) for label, kind, hp in configs(args.epochs)]
    result = {
        "benchmark": "ranking_fit",
        "data": {
            "synthetic": True,
            "description": "the planted linear + nonlinear map of scripts/bench_adapter_fit.py",
            "n_pairs": args.n_pairs,
            "n_train": n_train,
            "n_val": args.n_pairs - n_train,
            "d_new": args.d_new,
            "d_old": args.d_old,
            "seed": 0,
        },
        "target_seconds": TARGET_SECONDS,
        "environment": {
            **base.environment(),
            "loadavg_1_5_15_before": load_before,
            "loadavg_1_5_15_after": os.getloadavg(),
        },
        "results": rows,
    }
    text = json.dumps(result, indent=2) + "\n"
    atomic_write(args.out, lambda tmp: tmp.write_text(text))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

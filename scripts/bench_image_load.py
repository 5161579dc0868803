"""Benchmark: image encode throughput with images decoded in one thread vs a pool, side by side.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_image_load.py \
        --images data/offline_images/tuxpaint --out results/bench/image_load.json

Each image encoder (conf/encoder/*.yaml) on `--device` encodes the same `--n` images with
drift.core.imaging.MAX_LOAD_THREADS = 1 (decoding and transforms in the calling thread, as before
the pool) and at the default (one thread per core, at most 8), after one warm-up call of each;
`--repeats` rounds, each timing both settings in a seeded random order; median images/s with the
range, and whether both settings gave identical vectors (they must: only the decoding moves).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np

import drift.core.imaging
from drift.cli.config import encoder_config
from drift.core.provenance import provenance
from drift.data.images import image_files
from drift.encoders import build_encoder

ROOT = Path(__file__).resolve().parents[1]


def encode_images_per_s(encoder, paths: list[str], threads: int) -> tuple[float, np.ndarray]:
    drift.core.imaging.MAX_LOAD_THREADS = threads
    start = time.perf_counter()
    vectors = encoder.encode(paths)
    return len(paths) / (time.perf_counter() - start), vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--encoders", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results/bench/image_load.json")
    args = parser.parse_args()
    paths = [str(p) for p in sorted(image_files(args.images, svg=False))[: args.n]]
    if not paths:
        raise SystemExit(f"no images under {args.images}")
    default = drift.core.imaging.MAX_LOAD_THREADS
    settings = {"threads=1": 1, f"threads<={default}": default}
    order_rng = random.Random(args.seed)
    report: dict = {
        "args": {key: str(value) for key, value in vars(args).items()},
        "n_images": len(paths),
        "device": args.device,
        "encoders": {},
    }
    for name in args.encoders:
        encoder = build_encoder(encoder_config(name), device=args.device)
        rates: dict[str, list[float]] = {key: [] for key in settings}
        vectors = {key: encode_images_per_s(encoder, paths, t)[1] for key, t in settings.items()}
        for _ in range(args.repeats):
            for key in order_rng.sample(list(settings), len(settings)):
                rates[key].append(encode_images_per_s(encoder, paths, settings[key])[0])
        report["encoders"][name] = {
            "preprocessing": encoder.preprocessing,
            "images_per_s": {
                key: {
                    "median": round(statistics.median(r), 1),
                    "range": [round(min(r), 1), round(max(r), 1)],
                }
                for key, r in rates.items()
            },
            "speedup": round(
                statistics.median(rates[list(settings)[1]]) / statistics.median(rates["threads=1"]),
                2,
            ),
            "identical_vectors": bool(np.array_equal(*vectors.values())),
        }
    drift.core.imaging.MAX_LOAD_THREADS = default
    report["load_threads"] = drift.core.imaging.load_threads()
    report["provenance"] = provenance()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["encoders"], indent=2))


if __name__ == "__main__":
    main()

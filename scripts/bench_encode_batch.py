"""Benchmark: text encode throughput per batch size, on this machine, over the default corpus.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encode_batch.py            # ~8 min, 2 cores
    .venv/bin/python scripts/bench_encode_batch.py --docs 16 --out /tmp/e.json  # quick look

The documents are a seeded sample of the offline default's corpus (`make run`'s data: real
man pages, FAQ answers and pydoc entries, lengths from a few tokens to far past each model's
window), encoded by the default pair (all-MiniLM-L6-v2, all-mpnet-base-v2: real weights) on
`--device` at each batch size, after one warm-up call, `--repeats` times (median reported).
The encoders sort each call's texts by length before batching (sentence-transformers does), so
what the batch size changes is mostly padding and how much activation memory a forward pass
touches. 256 documents per call by default: what one cache chunk hands the encoder in a run
(encode.chunk_size), so the length sorting works on as many texts as it does there. The CPU
batch sizes in conf/encoder/*.yaml are chosen from this file.

Writes results/bench/encode_batch.json: docs/s per model and batch size, token-length stats,
the machine, load average before and after, and provenance.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from drift.config import compose, to_plain
from drift.data import load_data
from drift.data.subsample import subsample
from drift.encoders import shared_encoder
from drift.experiment import resolve_offline
from drift.latency import machine
from drift.provenance import provenance
from drift.results import write_json_atomic
from drift.seeding import derive_seed

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("old_encoder", "new_encoder")


def default_corpus_sample(n_docs: int, seed: int) -> tuple[dict[str, Any], list[str]]:
    """The resolved default config and `n_docs` documents of its corpus subset, seeded."""
    cfg = to_plain(compose())
    data = load_data(cfg["dataset"], seed=cfg["seed"], data_dir=cfg["paths"]["data_dir"])
    limits = cfg["data_limits"]
    data = subsample(
        data,
        max_corpus=limits["max_corpus"],
        max_queries=limits["max_queries"],
        seed=derive_seed(cfg["seed"], "subsample"),
    )
    rows = np.random.default_rng(seed).choice(len(data.corpus), n_docs, replace=False)
    return cfg, [data.corpus[i] for i in rows]


def throughput(encoder: Any, docs: list[str], batch_size: int, repeats: int) -> dict[str, Any]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode(docs, role="document", batch_size=batch_size)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {"batch_size": batch_size, "seconds_all": seconds, "docs_per_s": len(docs) / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=256, help="documents per timed call")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results/bench/encode_batch.json")
    args = parser.parse_args()

    load = {"loadavg_before": os.getloadavg()}
    cfg, docs = default_corpus_sample(args.docs, args.seed)
    models = []
    for side in SIDES:
        encoder = shared_encoder(
            cfg[side],
            device=args.device,
            offline=resolve_offline(cfg["offline"]),
            model_cache_dir=cfg["paths"]["model_cache_dir"],
        )
        tokens = np.array(encoder.token_counts(docs))
        encoder.encode(docs[: min(8, len(docs))], role="document")  # warm-up
        rows = []
        for batch_size in args.batch_sizes:
            row = throughput(encoder, docs, batch_size, args.repeats)
            print(f"{encoder.name} batch {batch_size}: {row['docs_per_s']:.2f} docs/s", flush=True)
            rows.append(row)
        best = max(rows, key=lambda r: r["docs_per_s"])
        models.append(
            {
                "side": side,
                "model": encoder.name,
                "device": args.device,
                "max_seq_length": encoder.max_seq_length,
                "tokens": {
                    "mean": float(tokens.mean()),
                    "median": float(np.median(tokens)),
                    "p90": float(np.percentile(tokens, 90)),
                    "share_truncated": float((tokens > (encoder.max_seq_length or np.inf)).mean()),
                },
                "by_batch_size": rows,
                "best_batch_size": best["batch_size"],
            }
        )
    write_json_atomic(
        args.out,
        {
            "benchmark": "encode_batch",
            "docs": args.docs,
            "repeats": args.repeats,
            "seed": args.seed,
            "dataset": cfg["dataset"]["name"],
            "models": models,
            "machine": {**machine(), **load, "loadavg_after": os.getloadavg()},
            "provenance": provenance(),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

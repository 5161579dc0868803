"""Benchmark: text encode throughput per batch size, on this machine, over the default corpus.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encode_batch.py            # ~25 min, 2 cores
    .venv/bin/python scripts/bench_encode_batch.py --docs 16 --out /tmp/e.json  # quick look
    python scripts/bench_encode_batch.py --device cuda --sides old_encoder \
        --batch-sizes 8 16 32 64 128 256 --repeats 5 --out results/bench/encode_batch_gpu.json

The documents are a seeded sample of the offline default's corpus (`make run`'s data: real
man pages, FAQ answers and pydoc entries, lengths from a few tokens to far past each model's
window), encoded by the default pair (all-MiniLM-L6-v2, all-mpnet-base-v2: real weights; or the
`--sides` named) on `--device` at each batch size, after one warm-up call: `--repeats` rounds,
each timing every size once in a seeded random order (median docs/s reported, with the range;
on a GPU each size's first round also pays for kernel selection, which the median leaves out).
The encoders sort each call's texts by length before batching (sentence-transformers does), so
what the batch size changes is mostly padding and how much activation memory a forward pass
touches. 256 documents per call by default: what one cache chunk hands the encoder in a run
(encode.chunk_size), so the length sorting works on as many texts as it does there. The batch
sizes in conf/encoder/*.yaml are chosen from this file (CPU) and encode_batch_h200_minilm.json.

Writes results/bench/encode_batch.json: docs/s per model and batch size, token-length stats,
the machine, load average before and after, and provenance.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from drift.cli.config import compose, to_plain
from drift.core.provenance import provenance
from drift.core.records import write_json_atomic
from drift.core.seeding import derive_seed
from drift.data import load_data
from drift.data.subsample import subsample
from drift.encoders import shared_encoder
from drift.encoders.common import resolve_torch_device
from drift.encoders.resolver import is_offline
from drift.serving.latency import machine

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
    if not 1 <= n_docs <= len(data.corpus):
        sys.exit(f"--docs must be between 1 and the default corpus's {len(data.corpus)} documents")
    rows = np.random.default_rng(seed).choice(len(data.corpus), n_docs, replace=False)
    return cfg, [data.corpus[i] for i in rows]


def throughputs(
    encoder: Any, docs: list[str], batch_sizes: list[int], repeats: int, seed: int
) -> list[dict[str, Any]]:
    """docs/s per batch size: `repeats` rounds, each timing every size once in a seeded random
    order (so a drift in the machine's load does not favour the sizes timed first)."""
    seconds: dict[int, list[float]] = {size: [] for size in batch_sizes}
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        for size in rng.permutation(batch_sizes):
            start = time.perf_counter()
            encoder.encode(docs, role="document", batch_size=int(size))
            seconds[int(size)].append(time.perf_counter() - start)
    rows = []
    for size, times in seconds.items():
        rates = sorted(len(docs) / t for t in times)
        rows.append(
            {
                "batch_size": size,
                "seconds_all": times,
                "docs_per_s": len(docs) / statistics.median(times),
                "docs_per_s_min": rates[0],
                "docs_per_s_max": rates[-1],
            }
        )
        print(
            f"{encoder.name} batch {size}: {rows[-1]['docs_per_s']:.2f} docs/s "
            f"(range {rates[0]:.2f}-{rates[-1]:.2f})",
            flush=True,
        )
    return rows


def token_stats(encoder: Any, docs: list[str]) -> dict[str, float] | None:
    """Token counts of the documents against the encoder's window (encoders that tokenise)."""
    if not hasattr(encoder, "token_counts"):
        return None
    tokens = np.array(encoder.token_counts(docs))
    return {
        "mean": float(tokens.mean()),
        "median": float(np.median(tokens)),
        "p90": float(np.percentile(tokens, 90)),
        "share_truncated": float((tokens > (encoder.max_seq_length or np.inf)).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=256, help="documents per timed call")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results/bench/encode_batch.json")
    args = parser.parse_args()

    load = {"loadavg_before": os.getloadavg()}
    cfg, docs = default_corpus_sample(args.docs, args.seed)
    device = resolve_torch_device(args.device).device
    models = []
    for side in args.sides:
        encoder = shared_encoder(
            cfg[side],
            device=device,
            offline=is_offline(cfg["offline"]),
            model_cache_dir=cfg["paths"]["model_cache_dir"],
        )
        encoder.encode(docs[: min(8, len(docs))], role="document")  # warm-up
        rows = throughputs(encoder, docs, args.batch_sizes, args.repeats, args.seed)
        best = max(rows, key=lambda r: r["docs_per_s"])
        models.append(
            {
                "side": side,
                "model": encoder.name,
                "device": device,
                "max_seq_length": getattr(encoder, "max_seq_length", None),
                "tokens": token_stats(encoder, docs),
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

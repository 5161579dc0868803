"""Benchmark: what an encoder precision (bf16 on CPU, fp16 on CUDA) changes against fp32: the
vectors (cosine to fp32), the neighbours (top-10 overlap) and retrieval quality, and the speed.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encode_precision.py --precision bf16
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encode_precision.py --precision bf16 \
        --allow-emulated --corpus 200 --queries 60     # fidelity only, on a CPU without bf16
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encode_precision.py --precision bf16 \
        --dataset gcide --corpus 1000 --queries 300 \
        --out results/bench/encode_precision_bf16_cpu_gcide.json
    python scripts/bench_encode_precision.py --device cuda --precision fp16

Data: the offline default's (or `--dataset`'s) seeded subset (`--corpus` documents keeping the
relevant document of each of `--queries` queries; data/offline_text). For each model of the
default pair it encodes corpus and queries in fp32 and in `--precision` (encoder setting
`precision`, so each has its own cache folder in a run), then reports per model: cosine of each
vector to its fp32 vector (min,
p01, mean), the mean overlap of each query's exact top-10 corpus neighbours, Recall@10 and
nDCG@10 against the qrels under both, and the encode time of each (docs/s; the load average is
recorded). On a CPU without bf16 instructions the run refuses bf16 unless `--allow-emulated`:
torch then emulates it, which gives the same numbers to within rounding but no speed-up, so the
file says `"native": false` and its speeds are no result.
Writes results/bench/encode_precision_<precision>_<device>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import drift.encoders.common as common
from drift.cli.config import compose, to_plain
from drift.core.provenance import provenance
from drift.core.records import write_json_atomic
from drift.core.seeding import derive_seed
from drift.data import load_data
from drift.data.subsample import subsample
from drift.encoders import build_encoder
from drift.encoders.resolver import is_offline
from drift.retrieval.index import exact_search
from drift.scoring.metrics import knn_metrics, qrels_metrics
from drift.serving.latency import machine

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("old_encoder", "new_encoder")


def timed(encoder: Any, items: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = encoder.encode(items, role="document")
    return out, time.perf_counter() - start


def fidelity(ref: np.ndarray, other: np.ndarray) -> dict[str, float]:
    cos = (ref * other).sum(axis=1)
    return {"min": float(cos.min()), "p01": float(np.percentile(cos, 1)), "mean": float(cos.mean())}


def write_results(
    out: Path,
    args: argparse.Namespace,
    native: bool,
    data: Any,
    models: list[dict[str, Any]],
    *,
    complete: bool,
) -> None:
    write_json_atomic(
        out,
        {
            "benchmark": "encode_precision",
            "command": " ".join(["python scripts/bench_encode_precision.py", *sys.argv[1:]]),
            "complete": complete,
            "precision": args.precision,
            "device": args.device,
            "native": native,
            "note": None
            if native
            else "bf16 emulated by torch on a CPU without bf16 instructions: the fidelity "
            "numbers hold, the speeds are no result",
            "corpus": len(data.corpus),
            "queries": len(data.queries),
            "dataset": data.name,
            "models": models,
            "machine": machine(),
            "provenance": provenance(),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--corpus", type=int, default=600)
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--allow-emulated", action="store_true")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument(
        "--dataset", help="dataset config (conf/dataset), e.g. gcide; default: the run's default"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    native = args.device != "cpu" or bool(common.cpu_flags() & set(common.BF16_CPU_FLAGS))
    if args.precision == "bf16" and not native:
        if not args.allow_emulated:
            common.check_cpu_bf16()  # the clear error
        common.cpu_flags = lambda: {"avx512_bf16"}  # emulated: fidelity only

    cfg = to_plain(compose([f"dataset={args.dataset}"] if args.dataset else []))
    data = load_data(cfg["dataset"], seed=cfg["seed"], data_dir=cfg["paths"]["data_dir"])
    data = subsample(
        data,
        max_corpus=args.corpus,
        max_queries=args.queries,
        seed=derive_seed(cfg["seed"], "subsample"),
    )
    row_of = {doc: i for i, doc in enumerate(data.corpus_ids)}
    qrels = [
        {row_of[d]: g for d, g in data.qrels[q].items() if d in row_of} for q in data.query_ids
    ]
    build = {
        "device": args.device,
        "offline": is_offline(cfg["offline"]),
        "model_cache_dir": cfg["paths"]["model_cache_dir"],
    }
    device = "cpu" if args.device == "cpu" else "cuda"
    out = (
        args.out or ROOT / "results" / "bench" / f"encode_precision_{args.precision}_{device}.json"
    )
    models: list[dict[str, Any]] = []
    for side in args.sides:
        load_before = os.getloadavg()
        runs = {}
        for precision in ("fp32", args.precision):
            encoder = build_encoder({**cfg[side], "precision": precision}, **build)
            encoder.encode(data.queries[:4])  # warm-up
            x, x_s = timed(encoder, data.corpus)
            q, q_s = timed(encoder, data.queries)
            _, ids = exact_search(x, q, 10, device="cpu")
            metrics = qrels_metrics(ids, qrels, ks=[10])
            runs[precision] = {
                "x": x,
                "q": q,
                "ids": ids,
                "summary": {
                    "preprocessing": encoder.preprocessing,
                    "corpus_docs_per_s": len(data.corpus) / x_s,
                    "queries_per_s": len(data.queries) / q_s,
                    "recall@10": float(np.nanmean(metrics["recall@10"])),
                    "ndcg@10": float(np.nanmean(metrics["ndcg@10"])),
                },
            }
            print(side, precision, runs[precision]["summary"], flush=True)
        ref, low = runs["fp32"], runs[args.precision]
        overlap = knn_metrics(low["ids"], ref["ids"], ks=(10,))["recall@10"]  # top-10 overlap
        models.append(
            {
                "side": side,
                "model": cfg[side]["model_id"],
                "cosine_to_fp32": {
                    "corpus": fidelity(ref["x"], low["x"]),
                    "queries": fidelity(ref["q"], low["q"]),
                },
                "top10_overlap_mean": float(np.mean(overlap)),
                "top10_overlap_min": float(np.min(overlap)),
                "fp32": ref["summary"],
                args.precision: low["summary"],
                "speedup_corpus": low["summary"]["corpus_docs_per_s"]
                / ref["summary"]["corpus_docs_per_s"],
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            }
        )
        write_results(out, args, native, data, models, complete=side == args.sides[-1])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

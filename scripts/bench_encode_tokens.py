"""Benchmark: the harness's text encode against a bare sentence-transformers encode at its best
batch size and against the model's arithmetic floor, per model and text length.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encode_tokens.py --quick   # ~5 min, 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encode_tokens.py           # the full run

Texts: every corpus document and query of the offline default's three real sets (man pages, FAQ,
pydoc; data/offline_text, built by scripts/build_offline_text.py), bucketed by their token count
under all-MiniLM-L6-v2's tokenizer: short (10-40 tokens), medium (80-160) and long (300 and
more, which each model truncates to its window: 256 for MiniLM, 384 for mpnet); a seeded sample
of `--docs` texts per bucket. For each model (the default pair, real bundled weights) and bucket,
in `--repeats` rounds (each in a seeded random order, so a drift in the machine's load does not
favour what runs first), it times:

  harness   EmbeddingCache.encode into an empty cache folder: token counts, length-ordered
            batches within the encoder's token budget (conf/encoder/*.yaml tokens_per_batch),
            chunk commits with checksums: what a run pays;
  bare      SentenceTransformer.encode(texts, batch_size=b) for each b of `--batch-sizes`; the
            best median is "bare best";
  floor     2 x (non-embedding parameters) FLOPs per token plus attention (4 x layers x tokens x
            hidden per token), over the texts' real (unpadded, truncated) token counts, divided by
            an SGEMM rate measured in the same run (torch.matmul of float32 [2048, hidden] x
            [hidden, 4 hidden] on the same threads): the time no implementation of the model can
            beat on this CPU.

Reported per model and bucket: median docs/s and tokens/s of each (range over the rounds), the
harness as a ratio of bare best (target >= 0.95) and of the floor, and the minimum cosine between
the harness's vectors and those of the pre-length-aware path (encode calls of 256 texts at the
encoder's fixed batch size), which must stay >= 0.99999. The load average before and after each
model is recorded: ratios are side by side in one run, absolute rates depend on the load.
Writes results/bench/encode_tokens[_quick].json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from drift.cli.config import compose, to_plain
from drift.core.provenance import provenance
from drift.core.records import write_json_atomic
from drift.data import load_data
from drift.encoders import build_encoder
from drift.encoders.cache import EmbeddingCache
from drift.encoders.resolver import is_offline
from drift.serving.latency import machine

ROOT = Path(__file__).resolve().parents[1]
SIDES = ("old_encoder", "new_encoder")
# token range (MiniLM-L6 tokenizer, special tokens included) of each length bucket
BUCKETS = {"short": (10, 40), "medium": (80, 160), "long": (300, 1_000_000)}
OLD_CHUNK = 256  # encode.chunk_size: texts per encoder call before length-aware batching


def texts_by_bucket(cfg: dict[str, Any], tokenizer_encoder: Any, n: int, seed: int):
    """`n` seeded texts per bucket from the offline default's corpus and queries (all of them)."""
    spec = {**cfg["dataset"], "max_corpus": None, "max_queries": None}
    data = load_data(spec, seed=cfg["seed"], data_dir=cfg["paths"]["data_dir"])
    pool = list(dict.fromkeys([*data.corpus, *data.queries]))
    counts = np.array(tokenizer_encoder.token_counts(pool))
    rng = np.random.default_rng(seed)
    out = {}
    for name, (low, high) in BUCKETS.items():
        idx = np.flatnonzero((counts >= low) & (counts <= high))
        if len(idx) < n:
            raise SystemExit(f"only {len(idx)} texts of {low}-{high} tokens; lower --docs")
        out[name] = [pool[i] for i in rng.choice(idx, n, replace=False)]
    return out


def sgemm_gflops(hidden: int, seconds: float = 1.0) -> float:
    """float32 matmul rate (GFLOP/s) of [2048, hidden] x [hidden, 4 hidden] on torch's threads."""
    import torch

    a, b = torch.randn(2048, hidden), torch.randn(hidden, 4 * hidden)
    flops = 2 * 2048 * hidden * 4 * hidden
    torch.matmul(a, b)
    rates = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 5:
        start = time.perf_counter()
        torch.matmul(a, b)
        rates.append(flops / (time.perf_counter() - start) / 1e9)
    return float(statistics.median(rates))


def model_shape(st_model: Any) -> dict[str, int]:
    """Non-embedding parameters, layers and hidden size of a sentence-transformers BERT-like
    model (the first module's transformers model)."""
    auto = st_model[0].auto_model
    params = sum(p.numel() for name, p in auto.named_parameters() if "embeddings" not in name)
    return {
        "non_embedding_params": int(params),
        "layers": int(auto.config.num_hidden_layers),
        "hidden": int(auto.config.hidden_size),
    }


def floor_seconds(shape: dict[str, int], tokens: np.ndarray, gflops: float) -> float:
    flops = (
        2 * shape["non_embedding_params"] * tokens.sum()
        + 4 * shape["layers"] * shape["hidden"] * (tokens.astype(np.float64) ** 2).sum()
    )
    return float(flops / (gflops * 1e9))


def rate_row(n_docs: int, n_tokens: int, seconds: list[float]) -> dict[str, Any]:
    median = statistics.median(seconds)
    return {
        "seconds_all": seconds,
        "docs_per_s": n_docs / median,
        "tokens_per_s": n_tokens / median,
        "docs_per_s_range": [n_docs / max(seconds), n_docs / min(seconds)],
    }


def bench_bucket(
    encoder: Any, texts: list[str], batch_sizes: list[int], repeats: int, seed: int
) -> dict[str, Any]:
    """Interleaved rounds of the harness and the bare encode at each batch size."""
    tokens = np.array(encoder.token_lengths(texts, "document"))
    runs = ["harness", *(f"bare/{b}" for b in batch_sizes)]
    seconds: dict[str, list[float]] = {r: [] for r in runs}
    rng = np.random.default_rng(seed)
    harness = None
    for _ in range(repeats):
        for run in rng.permutation(runs):
            with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
                start = time.perf_counter()
                if run == "harness":
                    harness = EmbeddingCache(tmp).encode(
                        encoder, texts, chunk_size=OLD_CHUNK, show_progress=False
                    )
                else:
                    encoder._model.encode(
                        texts,
                        batch_size=int(run.split("/")[1]),
                        convert_to_numpy=True,
                        normalize_embeddings=True,
                    )
                seconds[str(run)].append(time.perf_counter() - start)
    reference = np.concatenate(
        [
            encoder.encode(texts[i : i + OLD_CHUNK], batch_size=encoder.batch_size)
            for i in range(0, len(texts), OLD_CHUNK)
        ]
    )
    rows = {run: rate_row(len(texts), int(tokens.sum()), secs) for run, secs in seconds.items()}
    bare = {r: rows[r] for r in runs[1:]}
    best = max(bare, key=lambda r: bare[r]["docs_per_s"])
    return {
        "tokens": {
            "mean": float(tokens.mean()),
            "min": int(tokens.min()),
            "max": int(tokens.max()),
            "total": int(tokens.sum()),
        },
        "harness": rows["harness"],
        "bare": {r.split("/")[1]: v for r, v in bare.items()},
        "bare_best_batch_size": int(best.split("/")[1]),
        "harness_over_bare_best": rows["harness"]["docs_per_s"] / bare[best]["docs_per_s"],
        "harness_min_cosine_to_fixed_batches": float((harness * reference).sum(axis=1).min()),
    }


def write_results(
    out: Path,
    args: argparse.Namespace,
    docs: int,
    sizes: list[int],
    repeats: int,
    models: list[dict[str, Any]],
    *,
    complete: bool,
) -> None:
    write_json_atomic(
        out,
        {
            "benchmark": "encode_tokens",
            "command": " ".join(["python scripts/bench_encode_tokens.py", *sys.argv[1:]]),
            "complete": complete,
            "docs_per_bucket": docs,
            "bucket_tokens": {k: list(v) for k, v in BUCKETS.items()},
            "batch_sizes": sizes,
            "repeats": repeats,
            "seed": args.seed,
            "models": models,
            "machine": machine(),
            "provenance": provenance(),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts, sizes and rounds")
    parser.add_argument("--docs", type=int, help="texts per bucket (default 256; quick: 32)")
    parser.add_argument("--batch-sizes", type=int, nargs="+")
    parser.add_argument("--repeats", type=int, help="rounds (default 3; quick: 2)")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    parser.add_argument("--buckets", nargs="+", choices=list(BUCKETS), default=list(BUCKETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    docs = args.docs or (32 if args.quick else 256)
    sizes = args.batch_sizes or ([4, 16, 64] if args.quick else [2, 4, 8, 16, 32, 64, 128])
    repeats = args.repeats or (2 if args.quick else 3)
    name = "encode_tokens_quick.json" if args.quick else "encode_tokens.json"
    out = args.out or ROOT / "results" / "bench" / name

    cfg = to_plain(compose())
    build = {
        "device": "cpu",
        "offline": is_offline(cfg["offline"]),
        "model_cache_dir": cfg["paths"]["model_cache_dir"],
    }
    encoders = {side: build_encoder(cfg[side], **build) for side in args.sides}
    first = next(iter(encoders.values()))
    corpora = texts_by_bucket(cfg, first, docs, args.seed)
    models = []
    for side, encoder in encoders.items():
        load_before = os.getloadavg()
        shape = model_shape(encoder._model)
        gflops_before = sgemm_gflops(shape["hidden"])
        encoder.encode(corpora["short"][:8])  # warm-up
        buckets = {}
        for bucket in args.buckets:
            row = bench_bucket(encoder, corpora[bucket], sizes, repeats, args.seed)
            buckets[bucket] = row
            print(
                f"{encoder.name} {bucket}: harness {row['harness']['docs_per_s']:.1f} docs/s, "
                f"bare best (batch {row['bare_best_batch_size']}) "
                f"{row['bare'][str(row['bare_best_batch_size'])]['docs_per_s']:.1f}: "
                f"{row['harness_over_bare_best']:.2f}x; min cosine "
                f"{row['harness_min_cosine_to_fixed_batches']:.7f}",
                flush=True,
            )
        gflops = (gflops_before + sgemm_gflops(shape["hidden"])) / 2
        for bucket, row in buckets.items():
            tokens = np.array(encoder.token_lengths(corpora[bucket], "document"))
            floor = floor_seconds(shape, tokens, gflops)
            row["floor"] = {
                "seconds": floor,
                "docs_per_s": docs / floor,
                "tokens_per_s": int(tokens.sum()) / floor,
            }
            row["harness_over_floor"] = row["harness"]["docs_per_s"] / row["floor"]["docs_per_s"]
        models.append(
            {
                "side": side,
                "model": encoder.name,
                "revision": encoder.revision,
                "max_seq_length": encoder.max_seq_length,
                "tokens_per_batch": encoder.tokens_per_batch,
                "fixed_batch_size": encoder.batch_size,
                "shape": shape,
                "sgemm_gflops": {"before": gflops_before, "mean": gflops},
                "buckets": buckets,
                "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(),
            }
        )
        write_results(out, args, docs, sizes, repeats, models, complete=False)  # so far
    write_results(out, args, docs, sizes, repeats, models, complete=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

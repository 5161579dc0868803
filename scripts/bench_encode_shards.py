"""Benchmark: two encode shards in parallel against one process with the same total threads.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encode_shards.py          # ~10 min, 2 cores
    .venv/bin/python scripts/bench_encode_shards.py --docs 40 --queries 10 --repeats 1 \
        --out /tmp/shards.json                                               # quick look

Real offline models (the default pair, all-MiniLM-L6-v2 -> all-mpnet-base-v2) on a seeded
subset of the offline corpus (`--docs` documents, `--queries` questions). Each round, in
alternating order:

- one process: `python -m drift.encode` (one shard of one) with `--threads` threads;
- two shards: `python -m drift.encode -m hydra/launcher=submitit_local encode.shard=0,1
  encode.num_shards=2`, each job with threads/2 threads (the same total),

each into a fresh cache. Wall times include what each process pays (interpreter, imports,
loading both models: twice for two shards); the encode-stage seconds come from the shard records.
Then the run check: `python -m drift.run` on the two-shard cache (it must encode nothing) and on a
fresh cache (it encodes everything itself), the same settings otherwise; items encoded are
counted from the records, and the scores of the two result files compared.

Writes results/bench/encode_shards.json: per round the wall and encode seconds and texts/s of
each way, their ratio, the encode counts, the run check, the load average before and after, the
machine and provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from drift.core.provenance import REPO_ROOT, provenance
from drift.core.records import write_json_atomic
from drift.encoders.cache import cached_vectors
from drift.serving.latency import machine

COMMON = [
    "encoder@old_encoder=minilm_l6",
    "encoder@new_encoder=mpnet",
    "dataset=offline_mix",
    "logger=none",
    "encode.show_progress=false",
    "device=cpu",
]
RUN = [  # a short run: the paper's strategies, one adapter, few bootstrap samples
    "adapter=procrustes",
    "adapter.n_pairs=150",
    "eval.strategies=[full_reindex,status_quo,adapter]",
    "eval.n_boot=200",
    "index=flat",
]


def drift(module: str, args: list[str], threads: int, work: Path) -> tuple[float, str]:
    """Run `python -m <module> args` offline with `threads` BLAS/OpenMP/torch threads; (wall
    seconds, output)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env |= dict.fromkeys(
        ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), str(threads)
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={work / 'hydra'}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{module} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def records(folder: Path, pattern: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob(pattern))]


def encode_way(way: str, data: list[str], threads: int, work: Path) -> dict[str, Any]:
    """Encode the subset one way ("one" process or "two" shards) into `work`; its numbers."""
    where = [f"paths.embedding_cache_dir={work / 'cache'}", f"paths.results_dir={work / 'results'}"]
    if way == "one":
        wall, _ = drift("drift.encode", [*COMMON, *data, *where], threads, work)
    else:
        sweep = ["-m", "hydra/launcher=submitit_local", f"hydra.sweep.dir={work / 'sweep'}"]
        shards = ["encode.shard=0,1", "encode.num_shards=2"]
        wall, _ = drift(
            "drift.encode", [*sweep, *shards, *COMMON, *data, *where], threads // 2, work
        )
    shard_records = records(work / "results" / "encode", "*.json")
    encoded = sum(s["encoded"] for r in shard_records for s in r["cache"].values())
    encode_s = [
        sum(v for k, v in r["timings"].items() if k.startswith("encode/")) for r in shard_records
    ]
    return {
        "processes": len(shard_records),
        "threads_each": threads if way == "one" else threads // 2,
        "wall_s": round(wall, 2),
        "encode_stage_s": [round(s, 2) for s in encode_s],  # per process, both models
        "texts_encoded": encoded,  # model encodes of distinct texts, both models together
        "texts_per_s_wall": round(encoded / wall, 2),
        "texts_per_s_encode": round(encoded / max(encode_s), 2),  # the slowest shard finishes last
    }


def quality(record: dict[str, Any]) -> dict[str, Any]:
    return {
        protocol: {name: row["metrics"] for name, row in block["strategies"].items()}
        for protocol, block in record["metrics"]["protocols"].items()
    }


def run_check(data: list[str], threads: int, sharded: Path, fresh: Path) -> dict[str, Any]:
    """drift.run on the two-shard cache and on a fresh cache: what each encodes, their scores."""
    out = {}
    for name, work in (("after_two_shards", sharded), ("fresh_cache", fresh)):
        where = [
            f"paths.embedding_cache_dir={work / 'cache'}",
            f"paths.results_dir={work / 'results'}",
            f"paths.index_cache_dir={work / 'indexes'}",
            f"paths.artifacts_dir={work / 'adapters'}",
        ]
        wall, _ = drift("drift.run", [*COMMON, *RUN, *data, *where], threads, work)
        (record,) = records(work / "results" / "offline_mix", "*/*.json")  # not encode/
        out[name] = {
            "wall_s": round(wall, 2),
            "encoded_by_the_run": {m: s["encoded"] for m, s in record["cache"].items()},
            "quality": quality(record),
        }
    shards = records(sharded / "results" / "encode", "*.json")
    out["encoded_by_the_shards"] = {
        model: sum(r["cache"][model]["encoded"] for r in shards) for model in shards[0]["cache"]
    }
    out["distinct_texts_per_model"] = {
        part: shards[0]["parts"][part]["distinct"] for part in shards[0]["parts"]
    }
    out["same_scores"] = out["after_two_shards"]["quality"] == out["fresh_cache"]["quality"]
    differences = sorted(
        (
            abs(row["mean"] - out["fresh_cache"]["quality"][protocol][name][metric]["mean"]),
            f"{protocol}/{name}/{metric}",
        )
        for protocol, block in out["after_two_shards"]["quality"].items()
        for name, metrics in block.items()
        for metric, row in metrics.items()
    )
    out["largest_mean_score_difference"] = differences[-1][0]
    # where the last bits of the vectors moved a ranking: (difference, protocol/strategy/metric)
    out["largest_mean_score_differences"] = [[round(d, 6), where] for d, where in differences[-5:]]
    out["metrics_compared"] = len(differences)
    out["metrics_equal"] = sum(d == 0 for d, _ in differences)
    merged = cached_vectors(sharded / "cache")
    fresh_vectors = cached_vectors(fresh / "cache")
    same = sum(merged[k].tobytes() == v.tobytes() for k, v in fresh_vectors.items() if k in merged)
    out["vectors_bitwise_equal"] = f"{same} of {len(fresh_vectors)}"
    for name in ("after_two_shards", "fresh_cache"):
        out[name].pop("quality")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2, help="total threads of each way")
    parser.add_argument("--repeats", type=int, default=2, help="0: the run check alone")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results/bench/encode_shards.json")
    args = parser.parse_args()
    data = [f"data_limits.max_corpus={args.docs}", f"data_limits.max_queries={args.queries}"]
    load_before = os.getloadavg()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench_shards-") as tmp:
        for r in range(args.repeats):
            order = ("one", "two") if r % 2 == 0 else ("two", "one")
            ways = {
                way: encode_way(way, data, args.threads, Path(tmp) / f"{r}-{way}") for way in order
            }
            ways["ratio_two_over_one_wall"] = round(
                ways["one"]["wall_s"] / ways["two"]["wall_s"], 3
            )
            ways["order"] = list(order)
            rounds.append(ways)
            print(json.dumps(ways))
        sharded = Path(tmp) / "0-two"
        if not rounds:  # --repeats 0: only the run check, after a two-shard encode of its own
            check_encode = encode_way("two", data, args.threads, sharded)
        check = run_check(data, args.threads, sharded, Path(tmp) / "fresh")
        if not rounds:
            check["two_shard_encode"] = check_encode
    report = {
        "what": "python -m drift.encode: 2 parallel shards (submitit_local) vs 1 process, same "
        "total threads, real offline models (all-MiniLM-L6-v2 -> all-mpnet-base-v2), CPU",
        "command": " ".join(["python scripts/bench_encode_shards.py", *sys.argv[1:]]),
        "docs": args.docs,
        "queries": args.queries,
        "threads_total": args.threads,
        "rounds": rounds,
        "ratio_two_over_one_wall_median": (
            statistics.median(r["ratio_two_over_one_wall"] for r in rounds) if rounds else None
        ),
        "run_check": check,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
        "provenance": provenance(),
    }
    write_json_atomic(args.out, report)
    print(
        json.dumps(
            {k: v for k, v in report.items() if k not in ("provenance", "machine")}, indent=1
        )
    )


if __name__ == "__main__":
    main()

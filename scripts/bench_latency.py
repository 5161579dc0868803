"""Adapter apply time per query vs HNSW search time per query, on this machine's CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_latency.py          # ~5 min on 2 cores
    .venv/bin/python scripts/bench_latency.py --quick --out /tmp/bench  # smoke run, not a result
    .venv/bin/python scripts/bench_latency.py --resummarise results/bench/latency.json  # no timing
    .venv/bin/python scripts/bench_latency.py --print-floor results/bench/latency_floor.json
    HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_latency.py --floor  # ~4 min, latency_floor.json

Data (all synthetic, seeded): per old dimension, 100k indexed vectors plus 4096 held-out query
vectors from faiss's SyntheticDataset generator, L2-normalised (--corpus-kind uniform: uniform on
the sphere instead, HNSW's worst case); the "new model" view of an item is unit(x_old @ M + noise).

For each dimension pair (768->384, 1024->768, 768->768) and each adapter (OP, LA r=64, MLP-256,
each with and without DSM), the adapter is fitted on pairs of indexed items (fit quality does not
change the arithmetic; the MLP trains one epoch), exported with drift.serving.export, and timed on
the held-out new-model queries at batch 1, 16 and 256 with these backends, float32 on the CPU:

- numpy:       the exported artifact's `drift_serving.apply` (what a Python service would run)
- harness:     `Adapter.transform` (adds input checks: NaN/inf scan, dtype and shape)
- torch:       the same operations in torch (inference_mode; numpy in, numpy out)
- onnxruntime: the exported model.onnx
- faiss:       faiss.LinearTransform (+ NormalizationTransform) applied from Python, affine only

In the same run: HNSW search (M=32, efConstruction=200, efSearch=50, k=10, inner product) of
the held-out old-space queries (index cached under cache/index); and, at 768->384, the search
with the adapter inside the index (faiss.IndexPreTransform) against numpy apply + search.
Timings run on one thread by default (--threads; indexes are built with all threads first), as
a serving worker per core would. Every timing follows drift.serving.latency (warm-up, repeat until a
minimum time, median and p99, run count). All vectors are synthetic: the numbers are costs, not
retrieval quality.

Writes results/bench/latency.json and results/bench/latency.png.

--floor (and nothing else; no HNSW): weight precision, the fused apply and the floor. OP, LA
(r=64) and MLP-256 at 768->384, fitted as above and exported as float32, float16 and bfloat16
artifacts, timed at batch 1, 32 and 1024 per backend (numpy operation by operation, numpy fused,
numpy fused into a preallocated output, onnxruntime, the faiss transforms, torch in float32, torch
computing in the stored half precision, and for OP the bare matmul), each as a ratio to its floor
(drift.serving.floor: FLOPs at the SGEMM rate, weight bytes at the copy bandwidth, measured at
the start and end of the same run); and, on the offline default's fitted OP, LA and MLP and its
held-out pairs (when the cache has them), each precision's kNN Recall@10, top-10 overlap and
cosine to float32. Writes results/bench/latency_floor.json with the load average at start and end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from drift.adapters import Adapter, build_adapter
from drift.core.provenance import provenance
from drift.core.records import to_jsonable, write_json_atomic
from drift.core.vectors import l2_normalize
from drift.retrieval.index import IndexCache, IndexSpec
from drift.serving import runtime as serving
from drift.serving.export import export_adapter, faiss_pretransform, faiss_transforms
from drift.serving.latency import machine, measure, set_threads

DIM_PAIRS = ((768, 384), (1024, 768), (768, 768))
BATCHES = (1, 16, 256)
SGEMM_SIZE = 1024  # square float32 matmul that measures the BLAS's arithmetic ceiling
ADAPTERS: dict[str, tuple[str, dict[str, Any]]] = {
    "OP": ("procrustes", {"dsm": False}),
    "OP+DSM": ("procrustes", {"dsm": True}),
    "LA": ("low_rank_affine", {"rank": 64, "dsm": False}),
    "LA+DSM": ("low_rank_affine", {"rank": 64, "dsm": True}),
    "MLP": ("residual_mlp", {"hidden": 256, "dsm": False, "max_epochs": 1, "patience": 1}),
    "MLP+DSM": ("residual_mlp", {"hidden": 256, "dsm": True, "max_epochs": 1, "patience": 1}),
    "Ranking (linear)": ("ranking_linear", {"max_epochs": 1, "patience": 1}),
    "Ranking (low-rank)": ("ranking_low_rank", {"rank": 64, "max_epochs": 1, "patience": 1}),
    "Ranking (MLP)": ("ranking_mlp", {"hidden": 256, "max_epochs": 1, "patience": 1}),
}
BACKENDS = ("numpy", "harness", "torch", "onnxruntime", "faiss")
TARGETS_US = {"single_query": 10.0, "batched_per_query": 2.0, "share_of_search": 0.10}
QUERY_POOL = 4096  # distinct query rows cycled through, so no call reuses the previous input
K = 10


def unit(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return l2_normalize(rng.standard_normal((n, d)).astype(np.float32))


def old_space(kind: str, n: int, d: int, seed: int) -> np.ndarray:
    """n seeded synthetic unit vectors standing for old-model embeddings.

    "structured": faiss's SyntheticDataset (about 10 intrinsic dimensions through a sine, "not
    completely random but still challenging to index"), L2-normalised; HNSW recall and search
    time on it are close to those on real sentence embeddings. "uniform": uniform on the sphere,
    HNSW's worst case (low recall at efSearch 50, several times the search time).
    """
    if kind == "uniform":
        return unit(n, d, np.random.default_rng(seed))
    from faiss.contrib.datasets import SyntheticDataset

    return l2_normalize(SyntheticDataset(d, 0, n, 0, metric="IP", seed=seed).get_database())


def new_model_view(x_old: np.ndarray, d_new: int, seed: int) -> np.ndarray:
    """The same items as a seeded "new model" sees them: unit(x_old @ M + noise).

    M is drawn first from `seed`, so every call with one seed uses the same M.
    """
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((x_old.shape[1], d_new)).astype(np.float32)
    mixed = x_old @ mix
    noise = rng.standard_normal(mixed.shape).astype(np.float32)
    return l2_normalize(mixed + 0.1 * float(mixed.std()) * noise)


def torch_apply(
    served: serving.ServingAdapter, dtype: str = "float32"
) -> Callable[[np.ndarray], np.ndarray]:
    """The artifact's operations in torch on the CPU, numpy float32 in and out; `dtype`: the
    weights and the arithmetic in float16 or bfloat16 instead (input cast in, output cast out)."""
    import torch

    torch_dtype = getattr(torch, dtype)
    weights = {k: torch.from_numpy(v).to(torch_dtype) for k, v in served.weights.items()}

    def run(ops: list[dict[str, Any]], x: torch.Tensor) -> torch.Tensor:
        for op in ops:
            kind = op["op"]
            if kind == "matmul":
                x = x @ weights[op["weight"]]
            elif kind == "add":
                x = x + weights[op["value"]]
            elif kind == "mul":
                x = x * weights[op["value"]]
            elif kind == "gelu":
                x = torch.nn.functional.gelu(x)
            elif kind == "l2_normalize":
                x = torch.nn.functional.normalize(x, dim=1, eps=op["eps"])
            else:
                outs = [run(branch, x) for branch in op["branches"]]
                x = outs[0]
                for other in outs[1:]:
                    x = x + other
        return x

    def apply(queries: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = run(served.ops, torch.from_numpy(queries).to(torch_dtype))
            return out.to(torch.float32).numpy()

    return apply


def faiss_apply(served: serving.ServingAdapter) -> Callable[[np.ndarray], np.ndarray] | None:
    """The adapter as faiss VectorTransforms applied from Python (None when not affine)."""
    if served.affine() is None:
        return None
    transforms = faiss_transforms(served)

    def apply(queries: np.ndarray) -> np.ndarray:
        for transform in transforms:
            queries = transform.apply(queries)
        return queries

    return apply


def onnx_apply(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda queries: session.run(["mapped"], {"queries": queries})[0]


def cycling(batches: list[np.ndarray], fn: Callable[[np.ndarray], object]) -> Callable[[], object]:
    it = itertools.cycle(batches)
    return lambda: fn(next(it))


def batches_of(pool: np.ndarray, batch: int) -> list[np.ndarray]:
    return [pool[i : i + batch] for i in range(0, pool.shape[0] - batch + 1, batch)]


def bench_adapters(
    args, timing: dict[str, Any], workdir: Path, built: dict
) -> tuple[list[dict], dict, np.ndarray]:
    """Fit, export and time every adapter; pairs are indexed items seen by both "models", the
    query pool is the new-model view of held-out items."""
    rows: list[dict[str, Any]] = []
    served_768_384: dict[str, serving.ServingAdapter] = {}
    pools = {}
    for d_new, d_old in DIM_PAIRS:
        pair = f"{d_new}->{d_old}"
        _, _, corpus, old_queries = built[d_old]
        x_old = corpus[: args.n_fit]
        x_new = new_model_view(x_old, d_new, seed=args.seed + d_new + d_old)
        pool = pools[pair] = new_model_view(old_queries, d_new, seed=args.seed + d_new + d_old)
        for label, (kind, hparams) in ADAPTERS.items():
            adapter: Adapter = build_adapter(kind, **hparams).fit(x_new, x_old, seed=args.seed)
            out = export_adapter(
                adapter,
                workdir / f"{pair}-{label}",
                old_model=f"synthetic-{d_old}",
                new_model=f"synthetic-{d_new}",
                metrics={"note": "latency bench, synthetic"},
            )
            served = serving.load(out)
            if pair == "768->384":
                served_768_384[label] = served
            backends = {
                "numpy": served.apply,
                "harness": adapter.transform,
                "torch": torch_apply(served),
                "onnxruntime": onnx_apply(out / "model.onnx", args.threads),
                "faiss": faiss_apply(served),
            }
            for backend, fn in backends.items():
                if fn is None:
                    continue
                for batch in BATCHES:
                    m = measure(cycling(batches_of(pool, batch), fn), batch=batch, **timing)
                    rows.append(
                        {
                            "pair": pair,
                            "d_new": d_new,
                            "d_old": d_old,
                            "adapter": label,
                            "kind": kind,
                            "dsm": hparams.get("dsm", False),
                            "n_params": adapter.n_params,
                            "backend": backend,
                            **m.to_dict(),
                        }
                    )
            print(f"  {pair} {label:8s} fitted+exported+timed", flush=True)
    return rows, served_768_384, pools["768->384"]


def numpy_floor(args, timing: dict[str, Any]) -> dict[str, Any]:
    """What a batch-1 numpy call costs before any arithmetic, beside the bare 768x384 matmul;
    and the most float32 arithmetic numpy's BLAS does here (a square 1024 SGEMM), the ceiling
    for any batched dense adapter."""
    rng = np.random.default_rng(args.seed)
    square = rng.standard_normal((SGEMM_SIZE, SGEMM_SIZE)).astype(np.float32)
    sgemm_us = measure(lambda: square @ square, batch=1, **timing).median_us
    tiny_w = rng.standard_normal((8, 8)).astype(np.float32)
    tiny = batches_of(unit(QUERY_POOL, 8, rng), 1)
    w = rng.standard_normal((768, 384)).astype(np.float32)
    full = batches_of(unit(QUERY_POOL, 768, rng), 1)
    return {
        "matmul_1x8_8x8_us": measure(
            cycling(tiny, lambda q: q @ tiny_w), batch=1, **timing
        ).median_us,
        "matmul_1x768_768x384_us": measure(
            cycling(full, lambda q: q @ w), batch=1, **timing
        ).median_us,
        "weight_bytes_768x384": w.nbytes,
        "sgemm_peak_gflops": 2 * SGEMM_SIZE**3 / sgemm_us / 1e3,
    }


def build_indexes(args, cache: IndexCache) -> tuple[IndexSpec, dict[int, tuple]]:
    """Per old dimension: synthetic corpus and held-out queries, and the corpus's HNSW index
    (cached on disk)."""
    spec = IndexSpec(
        kind="hnsw", m=32, ef_construction=args.ef_construction, ef_search=50, device="cpu"
    )
    built = {}
    for d in sorted({d_old for _, d_old in DIM_PAIRS}):
        vectors = old_space(args.corpus_kind, args.corpus + QUERY_POOL, d, seed=args.seed + d)
        corpus, queries = vectors[: args.corpus], vectors[args.corpus :]
        start = time.perf_counter()
        index, info = cache.get_or_build(corpus, spec)
        print(
            f"  HNSW d={d} n={args.corpus}: {'cached' if info['cached'] else 'built'} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        index.hnsw.efSearch = spec.ef_search
        built[d] = (index, info, corpus, queries)
    return spec, built


def bench_hnsw(args, timing: dict[str, Any], spec: IndexSpec, built: dict) -> list[dict]:
    rows = []
    for d, (index, info, corpus, queries) in built.items():
        truth = faiss.IndexFlatIP(d)
        truth.add(corpus)
        _, exact = truth.search(queries[:1000], K)
        _, approx = index.search(queries[:1000], K)
        recall = float(
            np.mean([len(set(a) & set(e)) / K for a, e in zip(approx, exact, strict=True)])
        )
        for batch in BATCHES:
            m = measure(
                cycling(batches_of(queries, batch), lambda q, i=index: i.search(q, K)),
                batch=batch,
                **timing,
            )
            rows.append(
                {
                    "d": d,
                    "n": args.corpus,
                    "m": spec.m,
                    "ef_construction": spec.ef_construction,
                    "ef_search": spec.ef_search,
                    "k": K,
                    "recall@10_vs_exact": recall,
                    "build_seconds": info["build_seconds"],
                    "cached": info["cached"],
                    "build_items_per_s": args.corpus / info["build_seconds"],
                    **m.to_dict(),
                }
            )
    return rows


def bench_in_index(
    timing: dict[str, Any], served: dict[str, serving.ServingAdapter], pool: np.ndarray, index
) -> list[dict]:
    """768->384: search time with the adapter in the path, three ways, for the affine adapters."""
    rows = []
    for label, adapter in served.items():
        if adapter.affine() is None:
            continue
        wrapped = faiss_pretransform(adapter, index)
        mapped = adapter.apply(pool)
        ways = {
            "search_only (pre-mapped queries)": (mapped, lambda q: index.search(q, K)),
            "numpy apply + search": (pool, lambda q, a=adapter: index.search(a.apply(q), K)),
            "IndexPreTransform search": (pool, lambda q, w=wrapped: w.search(q, K)),
        }
        for way, (queries, fn) in ways.items():
            for batch in (1, 256):
                m = measure(cycling(batches_of(queries, batch), fn), batch=batch, **timing)
                rows.append({"pair": "768->384", "adapter": label, "way": way, **m.to_dict()})
    return rows


def add_ratios(rows: list[dict], hnsw: list[dict]) -> None:
    per_query = {(h["d"], h["batch"]): h["per_item_median_us"] for h in hnsw}
    for row in rows:
        search_us = per_query[(row["d_old"], row["batch"])]
        row["hnsw_per_query_median_us"] = search_us
        row["ratio_to_hnsw_search"] = row["per_item_median_us"] / search_us


TIMED_ADAPTERS = ("OP", "OP+DSM", "LA", "LA+DSM")  # the per-query time targets
SHARE_ADAPTERS = (*TIMED_ADAPTERS, "MLP", "MLP+DSM")  # the share-of-search target: every adapter
SUMMARY_BACKENDS = ("numpy", "faiss", "torch", "onnxruntime")
SUMMARY_PAIR = "768->384"


def row_of(rows: list[dict], adapter: str, backend: str, batch: int) -> dict:
    """The 768->384 timing row of one adapter, backend and batch size."""
    return next(
        r
        for r in rows
        if r["pair"] == SUMMARY_PAIR
        and r["adapter"] == adapter
        and r["backend"] == backend
        and r["batch"] == batch
    )


def summarise(rows: list[dict], floor: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets at 768->384: per-query time (OP and LA: its targets name them) and the
    share of HNSW search time (every adapter, the MLP included), per backend and batch size.

    Reads only the timing rows (with their ratios to search) and the numpy floor, so it can be
    recomputed from a written latency.json (--resummarise).
    """
    summary: dict[str, Any] = {"targets": TARGETS_US, "checks": []}
    for row in rows:
        if row["pair"] != SUMMARY_PAIR or row["adapter"] not in SHARE_ADAPTERS:
            continue
        if row["backend"] not in SUMMARY_BACKENDS:
            continue
        timed = row["adapter"] in TIMED_ADAPTERS
        target = (
            TARGETS_US["single_query"] if row["batch"] == 1 else TARGETS_US["batched_per_query"]
        )
        summary["checks"].append(
            {
                "adapter": row["adapter"],
                "backend": row["backend"],
                "batch": row["batch"],
                "per_query_median_us": row["per_item_median_us"],
                "target_us": target if timed else None,  # no time target for the MLP
                "meets_target": row["per_item_median_us"] < target if timed else None,
                "ratio_to_hnsw_search": row["ratio_to_hnsw_search"],
                "meets_share_of_search": row["ratio_to_hnsw_search"]
                < TARGETS_US["share_of_search"],
            }
        )
    summary["share_of_search_batch1"] = {
        label: {
            c["backend"]: c["ratio_to_hnsw_search"]
            for c in summary["checks"]
            if c["adapter"] == label and c["batch"] == 1
        }
        for label in SHARE_ADAPTERS
    }
    op1 = row_of(rows, "OP", "numpy", 1)
    op_batched = row_of(rows, "OP", "numpy", max(BATCHES))
    flops = 2 * 768 * 384  # one query through a dense 768x384 map
    summary["op_batched_compute"] = {
        "batch": op_batched["batch"],
        "flops_per_query": flops,
        "achieved_gflops": flops / op_batched["per_item_median_us"] / 1e3,
        "sgemm_peak_gflops": floor["sgemm_peak_gflops"],
        "per_query_us_at_sgemm_peak": flops / floor["sgemm_peak_gflops"] / 1e3,
    }
    summary["numpy_batch1_overhead"] = {
        "op_apply_us": op1["median_us"],
        "bare_matmul_us": floor["matmul_1x768_768x384_us"],
        "call_floor_us": floor["matmul_1x8_8x8_us"],
        "share_not_arithmetic": 1.0 - floor["matmul_1x768_768x384_us"] / op1["median_us"],
    }
    return summary


def resummarise(path: Path) -> dict[str, Any]:
    """Recompute the summary block of a written latency.json from its rows; nothing is timed and
    every other block is kept as it is."""
    record = json.loads(path.read_text())
    record["summary"] = summarise(record["adapters"], record["numpy_floor"])
    write_json_atomic(path, to_jsonable(record))
    return record


def plot(rows: list[dict], hnsw: list[dict], path: Path, title_note: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    search = {(h["d"], h["batch"]): h["per_item_median_us"] for h in hnsw}
    labels = list(ADAPTERS)
    fig, axes = plt.subplots(len(DIM_PAIRS), len(BATCHES), figsize=(17, 13), sharey=True)
    width = 0.8 / len(BACKENDS)
    for i, (d_new, d_old) in enumerate(DIM_PAIRS):
        for j, batch in enumerate(BATCHES):
            ax = axes[i, j]
            for b, backend in enumerate(BACKENDS):
                values = [
                    next(
                        (
                            r["per_item_median_us"]
                            for r in rows
                            if r["d_new"] == d_new
                            and r["d_old"] == d_old
                            and r["adapter"] == lab
                            and r["backend"] == backend
                            and r["batch"] == batch
                        ),
                        np.nan,
                    )
                    for lab in labels
                ]
                ax.barh(
                    np.arange(len(labels)) + (b - len(BACKENDS) / 2 + 0.5) * width,
                    values,
                    height=width,
                    label=backend,
                )
            s = search[(d_old, batch)]
            ax.axvline(s, color="black", lw=1.5, label="HNSW search / query")
            ax.axvline(0.1 * s, color="black", lw=1, ls="--", label="10% of HNSW search")
            target = TARGETS_US["single_query"] if batch == 1 else TARGETS_US["batched_per_query"]
            ax.axvline(target, color="red", lw=1, ls=":", label="target (10 us / 2 us)")
            ax.set_xscale("log")
            ax.set_xlim(right=2 * s)
            ax.set_yticks(np.arange(len(labels)), labels)
            ax.set_title(f"{d_new} -> {d_old}, batch {batch}")
            ax.set_xlabel("time per query (µs, median, log scale)")
            if j == 0:
                ax.set_ylabel("adapter")
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=5)
    fig.suptitle(f"Adapter apply vs HNSW search time per query (float32, CPU); {title_note}")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- --floor: weight precision, the fused apply and the floor ---------------------------------
FLOOR_ADAPTERS = ("OP", "LA", "MLP")
FLOOR_BATCHES = (1, 32, 1024)
FLOOR_PAIR = (768, 384)
# torch computing in float16 / bfloat16 on this CPU (no AVX512-BF16/FP16) ran 2-50x slower than
# float32 at batch 1 and 32; at batch 1024 one measurement would take minutes, so it is left out.
HALF_COMPUTE_BATCHES = (1, 32)
REAL_KINDS = {"OP": "procrustes", "LA": "low_rank_affine", "MLP": "residual_mlp"}
HALF = ("float16", "bfloat16")


def floor_backends(
    served: serving.ServingAdapter, folder: Path, threads: int
) -> dict[str, Callable[[np.ndarray], np.ndarray] | None]:
    """What --floor times for one exported artifact (every one computes in float32 unless its
    name says otherwise)."""
    backends: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {
        "numpy_ops": served.apply_ops,  # operation by operation, as the runtime did before
        "numpy": served.apply,  # fused: folded output stage, in-place normalisation
        "numpy_out": served.apply,  # fused, into a preallocated output (see bench_floor)
        "torch": torch_apply(served),
        "onnxruntime": onnx_apply(folder / "model.onnx", threads),
        "faiss": faiss_apply(served),  # LinearTransform + NormalizationTransform, float32 only
    }
    if served.precision != "float32":
        backends[f"torch_{served.precision}_compute"] = torch_apply(served, served.precision)
    if served.meta["kind"] == "procrustes":  # the bare matvec of OP's shape, no adapter code
        weight = served.weights["weight"]
        backends["bare_matmul"] = lambda q, w=weight: q @ w
    return backends


def floor_cases(args, workdir: Path) -> list[dict[str, Any]]:
    """768->384: OP, LA and MLP fitted on synthetic pairs (as the main bench) and exported at each
    weight precision; one case per (adapter, precision, backend, batch): its row fields and the
    call to time (cycling through distinct query batches)."""
    from drift.serving.floor import cost

    d_new, d_old = FLOOR_PAIR
    data = old_space(args.corpus_kind, args.n_fit + QUERY_POOL, d_old, seed=args.seed + d_old)
    views = new_model_view(data, d_new, seed=args.seed + d_new + d_old)
    x_old, x_new, pool = data[: args.n_fit], views[: args.n_fit], views[args.n_fit :]
    cases = []
    for label in FLOOR_ADAPTERS:
        kind, hparams = ADAPTERS[label]
        adapter = build_adapter(kind, **hparams).fit(x_new, x_old, seed=args.seed)
        for precision in serving.PRECISIONS:
            folder = export_adapter(
                adapter,
                workdir / f"{label}-{precision}",
                old_model=f"synthetic-{d_old}",
                new_model=f"synthetic-{d_new}",
                precision=precision,
            )
            served = serving.load(folder)
            work = cost(served.ops, served.meta["weights"]["shapes"], d_new)
            for backend, fn in floor_backends(served, folder, args.threads).items():
                if fn is None:
                    continue
                for batch in FLOOR_BATCHES:
                    if backend.endswith("_compute") and batch not in HALF_COMPUTE_BATCHES:
                        continue
                    call = fn
                    if backend == "numpy_out":
                        out = np.empty((batch, d_old), dtype=np.float32)
                        call = partial(served.apply, out=out)
                    row = {
                        "adapter": label,
                        "kind": kind,
                        "precision": precision,
                        "backend": backend,
                        "batch": batch,
                        "flops_per_query": work["flops"],
                        "weight_bytes": work["weight_values"] * (2 if precision in HALF else 4),
                        "weight_bytes_float32": 4 * work["weight_values"],
                        "file_bytes": served.meta["weights"]["bytes"],
                    }
                    cases.append({"row": row, "call": cycling(batches_of(pool, batch), call)})
        print(f"  {label:4s} fitted and exported at {', '.join(serving.PRECISIONS)}", flush=True)
    return cases


def bench_floor(
    args, timing: dict[str, Any], cases: list[dict[str, Any]]
) -> tuple[list[dict], list[dict]]:
    """Every case timed once per round, the rounds one after the other (so a burst of other work
    slows one round of every case, not every round of one case), with this machine's rates
    measured at the start of each round and at the end; a row's median and p99 are the medians
    over the rounds of each round's median and p99 (its min the fastest call of all)."""
    from drift.serving.floor import measure_rates

    rates, measured = [], [[] for _ in cases]
    for round_ in range(args.rounds):
        rates.append(measure_rates(*FLOOR_PAIR, timing=timing, seed=args.seed))
        for case, times in zip(cases, measured, strict=True):
            times.append(measure(case["call"], batch=case["row"]["batch"], **timing))
        print(f"  round {round_ + 1} of {args.rounds} timed", flush=True)
    rates.append(measure_rates(*FLOOR_PAIR, timing=timing, seed=args.seed))
    rows = []
    for case, times in zip(cases, measured, strict=True):
        batch = case["row"]["batch"]
        median = float(np.median([m.median_us for m in times]))
        p99 = float(np.median([m.p99_us for m in times]))
        rows.append(
            {
                **case["row"],
                "rounds": len(times),
                "runs": sum(m.runs for m in times),
                "median_us": median,
                "p99_us": p99,
                "min_us": min(m.min_us for m in times),
                "per_item_median_us": median / batch,
                "per_item_p99_us": p99 / batch,
                "round_medians_us": [m.median_us for m in times],
            }
        )
    return rows, rates


def add_floors(rows: list[dict], rates: dict[str, Any]) -> None:
    """Each row's floor at its batch (drift.serving.floor.floor_us) and its ratio to it, with its
    weights as stored and as float32."""
    from drift.serving.floor import floor_us

    for row in rows:
        floor = floor_us(row["flops_per_query"], row["weight_bytes"], row["batch"], rates)
        floor32 = floor_us(row["flops_per_query"], row["weight_bytes_float32"], row["batch"], rates)
        row["floor"] = floor
        row["ratio_to_floor"] = row["per_item_median_us"] / floor["floor_us"]
        row["floor_float32_weights_us"] = floor32["floor_us"]
        row["ratio_to_float32_floor"] = row["per_item_median_us"] / floor32["floor_us"]


def real_adapters_dir(spec: str) -> Path | None:
    """The offline default run's adapter folder (from its committed result file's artifacts) for
    "auto", else `spec`; None when it is not in this checkout's cache."""
    if spec != "auto":
        return Path(spec) if Path(spec).is_dir() else None
    for result in sorted(Path("results/offline_default/runs").glob("**/text_default-seed0-*.json")):
        gate = json.loads(result.read_text()).get("artifacts", {}).get("gate_pairs")
        if gate and Path(gate).is_file():
            return Path(gate).parent
    return None


def real_fidelity(folder: Path | None, workdir: Path) -> dict[str, Any]:
    """Per adapter and weight precision on real vectors (the offline default's fitted OP, LA and
    MLP and its held-out pairs, MiniLM-L6 <- mpnet): the outputs against float32's (max abs
    difference, cosine), and kNN Recall@10 under the paper's protocol within the held-out pool
    (the mapped query's top 10 among the pool's old-model vectors against the new-model query's
    top 10 among its new-model vectors), with the overlap of each precision's top 10 with
    float32's."""
    from drift.adapters.base import load_adapter
    from drift.retrieval.index import exact_search
    from drift.scoring.metrics import knn_metrics
    from drift.serving.precision import fidelity

    if folder is None:
        return {"skipped": "the offline default's adapters are not in this checkout's cache"}
    with np.load(folder / "gate_pairs.npz") as pairs:
        new, old = pairs["new"], pairs["old"]
    _, truth = exact_search(new, new, K, device="cpu")
    out: dict[str, Any] = {"adapters_dir": str(folder), "n_pool": int(new.shape[0]), "rows": []}
    for label, kind in REAL_KINDS.items():
        adapter = load_adapter(folder / kind)
        reference = ids32 = None
        for precision in serving.PRECISIONS:
            served = serving.load(
                export_adapter(
                    adapter,
                    workdir / f"real-{kind}-{precision}",
                    old_model="sentence-transformers/all-MiniLM-L6-v2",
                    new_model="sentence-transformers/all-mpnet-base-v2",
                    precision=precision,
                    onnx=False,
                )
            )
            mapped = served.apply(new)
            _, ids = exact_search(old, mapped, K, device="cpu")
            if reference is None:
                reference, ids32 = mapped, ids
            out["rows"].append(
                {
                    "adapter": label,
                    "kind": kind,
                    "precision": precision,
                    "file_bytes": served.meta["weights"]["bytes"],
                    "knn_recall@10": float(knn_metrics(ids, truth, ks=(K,))["recall@10"].mean()),
                    "top10_overlap_with_float32": float(
                        knn_metrics(ids, ids32, ks=(K,))["recall@10"].mean()
                    ),
                    **{f"{k}_vs_float32": v for k, v in fidelity(reference, mapped).items()},
                }
            )
    return out


def run_floor(args, timing: dict[str, Any]) -> None:
    """--floor: results/bench/latency_floor.json (see FLOOR_* and bench_floor)."""
    from drift.serving.floor import best_rates

    started, load_before = time.time(), os.getloadavg()
    if args.threads:
        set_threads(args.threads)
    print(f"load average at start: {load_before}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cases = floor_cases(args, Path(tmp))
        rows, measured_rates = bench_floor(args, timing, cases)
        del cases  # the onnxruntime sessions and artifacts, before the folder goes
        real = real_fidelity(real_adapters_dir(args.real_adapters), Path(tmp))
    rates = best_rates(*measured_rates)
    add_floors(rows, rates)
    record = {
        "schema": "drift.bench.latency_floor/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "note": "Timings: adapters fitted on seeded synthetic pairs (costs, not quality). "
        "Fidelity and recall: the offline default's fitted adapters on its held-out pairs. Every "
        "backend computes in float32 unless its name ends in _compute; ratio_to_floor uses the "
        "weight bytes at the stored precision, ratio_to_float32_floor at float32.",
        "settings": {**vars(args), **timing, "batches": FLOOR_BATCHES, "pair": FLOOR_PAIR},
        "timing_note": "each case measured once per round (min_time_s each), rounds one after "
        "the other; median/p99: medians over rounds of each round's median/p99",
        "machine": {**machine(), "loadavg_start": load_before, "loadavg_end": os.getloadavg()},
        "provenance": provenance(),
        "wall_seconds": time.time() - started,
        "rates": rates,
        "rates_measured": measured_rates,
        "rows": rows,
        "fidelity_real": real,
    }
    out = Path(args.out) / "latency_floor.json"
    write_json_atomic(out, to_jsonable(record))
    print_floor(record)
    print(f"wrote {out} ({record['wall_seconds']:.0f} s)")


# The table's columns: (heading, backend; "{precision}" is the row's weight precision).
FLOOR_TABLE = (
    ("numpy, op by op", "numpy_ops"),
    ("numpy, fused", "numpy"),
    ("onnxruntime", "onnxruntime"),
    ("faiss", "faiss"),
    ("torch", "torch"),
    ("torch computing in the stored precision", "torch_{precision}_compute"),
    ("bare matmul", "bare_matmul"),
)


def print_floor(record: dict[str, Any]) -> None:
    """The run as Markdown tables (what docs/serving.md shows): per adapter, precision and batch,
    the floor per query and each backend's median us per query with its ratio to that floor
    (numpy_out, the fused path into a preallocated output, is in the JSON only)."""
    r, load = record["rates"], record["machine"]
    print(
        f"\nrates (best of {len(record['rates_measured'])} measurements): SGEMM "
        f"{r['sgemm_gflops']:.0f} GFLOP/s, bare 768x384 matvec {r['matvec_us']:.1f} us "
        f"(median), copy {r['copy_gbps_weights']:.0f} GB/s "
        f"(weights-sized) / {r['copy_gbps_dram']:.1f} GB/s (64 MiB); load average "
        f"{load['loadavg_start'][0]:.2f} at start, {load['loadavg_end'][0]:.2f} at end\n"
    )
    cells: dict[tuple, dict[str, dict]] = {}
    for row in record["rows"]:
        cells.setdefault((row["adapter"], row["precision"], row["batch"]), {})[row["backend"]] = row
    headings = " | ".join(heading for heading, _ in FLOOR_TABLE)
    print(f"| adapter | weights | batch | floor us/query (binds) | {headings} |")
    print("|---|---|---|---|" + "---|" * len(FLOOR_TABLE))
    for (adapter, precision, batch), by_backend in cells.items():
        floor = next(iter(by_backend.values()))["floor"]
        shown = []
        for _, backend in FLOOR_TABLE:
            row = by_backend.get(backend.format(precision=precision))
            shown.append(
                "-"
                if row is None
                else f"{row['per_item_median_us']:.1f} (x{row['ratio_to_floor']:.1f})"
            )
        print(
            f"| {adapter} | {precision} | {batch} | {floor['floor_us']:.1f} ({floor['binds']}) | "
            + " | ".join(shown)
            + " |"
        )
    real = record["fidelity_real"]
    if real.get("rows"):
        print(f"\nreal vectors ({real['n_pool']} held-out pairs of {real['adapters_dir']}):\n")
        print(
            "| adapter | weights | file bytes | kNN R@10 | top-10 overlap with float32 | "
            "min cosine to float32 | max abs diff |"
        )
        print("|---|---|---|---|---|---|---|")
        for row in real["rows"]:
            print(
                f"| {row['adapter']} | {row['precision']} | {row['file_bytes']:,} | "
                f"{row['knn_recall@10']:.4f} | {row['top10_overlap_with_float32']:.4f} | "
                f"{row['min_cosine_vs_float32']:.7f} | {row['max_abs_diff_vs_float32']:.2g} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="results/bench", help="folder for latency.json/.png")
    parser.add_argument("--corpus", type=int, default=100_000, help="HNSW corpus size")
    parser.add_argument(
        "--corpus-kind",
        choices=("structured", "uniform"),
        default="structured",
        help="synthetic old-space vectors (see old_space)",
    )
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--n-fit", type=int, default=4000, help="synthetic pairs per adapter fit")
    parser.add_argument("--min-time", type=float, default=0.15, help="seconds per measurement")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for BLAS/torch/faiss "
        "while timing (default 1: one serving worker per core; 0: leave as is)",
    )
    parser.add_argument("--index-cache", default="cache/index")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 5k corpus, 0.02 s per measurement (not a result)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="only the weight-precision / fused-apply / floor bench (OP, LA, MLP at 768->384, "
        "float32/float16/bfloat16, batch 1/32/1024) -> latency_floor.json; no HNSW",
    )
    parser.add_argument(
        "--print-floor",
        metavar="PATH",
        help="only print the tables of this latency_floor.json (no timing)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="--floor: rounds over every case (the median over rounds is reported)",
    )
    parser.add_argument(
        "--real-adapters",
        default="auto",
        help="--floor: folder of fitted adapters + gate_pairs.npz for fidelity and recall "
        "(auto: the offline default run's, found from its committed result file)",
    )
    parser.add_argument(
        "--resummarise",
        metavar="PATH",
        help="only recompute the summary block of this latency.json from its rows (no timing)",
    )
    args = parser.parse_args()
    if args.resummarise:
        print_summary(resummarise(Path(args.resummarise)))
        return
    if args.print_floor:
        print_floor(json.loads(Path(args.print_floor).read_text()))
        return
    if args.quick:
        args.corpus, args.min_time, args.n_fit = 5000, 0.02, 1200
    warnings.filterwarnings("ignore", message=".*underdetermined.*")
    timing = {"min_time_s": args.min_time, "min_runs": 20, "warmup_runs": 5}
    if args.floor:
        run_floor(args, timing)
        return
    started, load_before = time.time(), os.getloadavg()
    print("HNSW indexes (built with the default threads):", flush=True)
    spec, built = build_indexes(args, IndexCache(args.index_cache))
    if args.threads:
        set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        print("adapters:", flush=True)
        rows, served, pool = bench_adapters(args, timing, Path(tmp), built)
    floor = numpy_floor(args, timing)
    print("HNSW search:", flush=True)
    hnsw = bench_hnsw(args, timing, spec, built)
    in_index = bench_in_index(timing, served, pool, built[384][0])
    add_ratios(rows, hnsw)
    summary = summarise(rows, floor)
    record = {
        "schema": "drift.bench.latency/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "synthetic": True,
        "note": f"Seeded synthetic {args.corpus_kind} vectors and adapters fitted on synthetic "
        "pairs: these are "
        "costs on this CPU, not retrieval quality.",
        "settings": {**vars(args), **timing, "batches": BATCHES, "k": K, "query_pool": QUERY_POOL},
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "provenance": provenance(),
        "wall_seconds": time.time() - started,
        "adapters": rows,
        "numpy_floor": floor,
        "hnsw": hnsw,
        "in_index_768_384": in_index,
        "summary": summary,
    }
    out = Path(args.out)
    write_json_atomic(out / "latency.json", to_jsonable(record))
    note = (
        "QUICK SMOKE RUN, not a result"
        if args.quick
        else f"{machine()['cpu']}, {args.threads or 'default'} thread(s), synthetic "
        f"{args.corpus_kind} vectors, HNSW n={args.corpus}"
    )
    plot(rows, hnsw, out / "latency.png", note)
    print_summary(record)
    print(
        f"wrote {out / 'latency.json'} and {out / 'latency.png'} ({record['wall_seconds']:.0f} s)"
    )


def print_summary(record: dict[str, Any]) -> None:
    print("\n768->384, per query (median us) | ratio to HNSW search per query at that batch")
    for c in record["summary"]["checks"]:
        target = (
            "no time target"
            if c["target_us"] is None
            else f"target {c['target_us']:.0f}: {'met' if c['meets_target'] else 'MISSED'}"
        )
        share = "" if c["meets_share_of_search"] else " (over 10% of search)"
        print(
            f"  {c['adapter']:7s} {c['backend']:12s} batch {c['batch']:3d}: "
            f"{c['per_query_median_us']:8.2f} us ({target}) | "
            f"{c['ratio_to_hnsw_search']:.3f}{share}"
        )
    for h in record["hnsw"]:
        print(
            f"  HNSW d={h['d']} batch {h['batch']:3d}: {h['per_item_median_us']:.1f} us/query "
            f"(p99 {h['per_item_p99_us']:.1f}, recall@10 vs exact {h['recall@10_vs_exact']:.3f})"
        )
    o = record["summary"]["numpy_batch1_overhead"]
    print(
        f"  numpy batch 1: OP apply {o['op_apply_us']:.1f} us, bare matmul "
        f"{o['bare_matmul_us']:.1f} us, call floor {o['call_floor_us']:.2f} us"
    )
    c = record["summary"]["op_batched_compute"]
    print(
        f"  numpy OP batch {c['batch']}: {c['achieved_gflops']:.0f} GFLOP/s of a "
        f"{c['sgemm_peak_gflops']:.0f} GFLOP/s SGEMM peak; at that peak a query needs "
        f"{c['per_query_us_at_sgemm_peak']:.1f} us"
    )
    for r in record["in_index_768_384"]:
        print(
            f"  in-index {r['adapter']:7s} batch {r['batch']:3d} {r['way']:34s} "
            f"{r['per_item_median_us']:.1f} us/query"
        )


if __name__ == "__main__":
    main()

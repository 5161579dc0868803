"""Check the GPU paths against the CPU paths on one machine, side by side; writes one JSON file.

Every GPU path of the harness has a CPU twin that the test suite covers. This script runs each
pair on the same inputs and reports how far the GPU result is from the CPU one, and how fast each
was, so a GPU machine can be trusted with the same configs (`device=auto`):

- encoders: each named conf/encoder/*.yaml built with device=cpu (fp32) and device=cuda (fp16)
  encodes the same items; per-item cosine between the two vectors, agreement of each item's
  10 nearest neighbours among the items, items/s on each device (a warm-up pass first).
- residual_mlp: the Residual MLP adapter trained on cuda and on cpu (same seed, same synthetic
  pairs, labelled synthetic); Recall@10 of each against the new model's exact neighbours.
- faiss: flat, IVF-PQ and IVF-Flat (index-factory "IVF1024,Flat") indexes built on the GPU and
  on the CPU over the same synthetic vectors, and CAGRA against CPU HNSW where faiss has CAGRA;
  top-10 overlap and build and search time of each (skipped, and said why, without a GPU faiss).
- sharded_encode: `python -m drift.encode` as two shards through hydra/launcher=submitit_local on
  one device (both on GPU 0) and as one process, each into its own cache: wall times, items
  encoded per shard, and how far the merged vectors are from the one-process ones.
- e2e: `python -m drift.run` end to end on a synthetic corpus (1M items by default) with
  index.device=cuda (flat index and exact ground truth on the GPU); wall time, stage timings and
  recall@10 of each strategy from its result file.

    python scripts/gpu_check.py --out results/gpu_check/check.json
    python scripts/gpu_check.py --preset scale_out     # issue 15's check, < 10 min on one H100
    python scripts/gpu_check.py --preset scale_out --devices cpu --e2e-items 20000 \
        --shard-docs 200 --n-items 200 --out /tmp/dry.json                 # its CPU dry run
    python scripts/gpu_check.py --encoders minilm_l6 clip_vit_s32_random_image \
        --images data/offline_images/tuxpaint --reference cpu_vectors.npz

`--reference FILE.npz` (written by `--save-vectors` on another machine) compares the CUDA vectors
with CPU vectors computed there too, e.g. from the full-precision weights when only a half-precision
copy of a model could be carried to the GPU machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drift.cli.config import encoder_config as load_encoder_spec
from drift.core.errors import ConfigError
from drift.core.provenance import REPO_ROOT, provenance
from drift.data.beir import read_beir
from drift.data.images import image_files
from drift.encoders import build_encoder
from drift.encoders.cache import cached_vectors
from drift.scoring.drift_measures import knn_overlap

log = logging.getLogger("gpu_check")
K = 10


def top_k(vectors: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Exact inner-product top-k ids (numpy: this check must not depend on faiss)."""
    scores = queries.astype(np.float64) @ vectors.astype(np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of shared ids between two top-k lists, row by row."""
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a, b, strict=True)]))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def encoder_items(spec: dict[str, Any], n: int, text_dir: Path, image_dir: Path | None) -> list:
    """Real items of the encoder's modality: offline FAQ questions and answers alternating (short
    and long texts, as a corpus and its queries mix them), or image files in path order."""
    if spec["type"] == "efficientnet_lite" or spec.get("tower") == "image":
        if image_dir is None:
            raise ConfigError(f"encoder type {spec['type']} needs --images DIR")
        files = sorted(image_files(image_dir, svg=False))
        if not files:
            raise ConfigError(f"no raster images under {image_dir}")
        return [str(p) for p in files[:n]]
    data = read_beir(text_dir)
    alternating = [text for pair in zip(data.queries, data.corpus, strict=False) for text in pair]
    return alternating[:n]


def check_encoder(
    name: str,
    items: list,
    devices: Sequence[str],
    reference: dict[str, np.ndarray],
    vectors_out: dict[str, np.ndarray],
    repeats: int = 3,
) -> dict[str, Any]:
    spec = load_encoder_spec(name)
    out: dict[str, Any] = {"config": name, "n_items": len(items)}
    vectors: dict[str, np.ndarray] = {}
    for device in devices:
        encoder, load_s = timed(lambda d=device: build_encoder(spec, device=d))
        encoder.encode(items)  # warm-up on the same shapes: kernel choice, allocator, caches
        passes = [timed(lambda e=encoder: e.encode(items)) for _ in range(repeats)]
        vectors[device] = passes[0][0]
        encode_s = statistics.median(seconds for _, seconds in passes)
        out[device] = {
            "preprocessing": encoder.preprocessing,
            "revision": encoder.revision,
            "real_weights": getattr(encoder, "real_weights", None),
            "load_s": round(load_s, 3),
            "encode_s": round(encode_s, 3),  # median of `repeats` passes after the warm-up
            "encode_s_range": [
                round(min(t for _, t in passes), 3),
                round(max(t for _, t in passes), 3),
            ],
            "items_per_s": round(len(items) / encode_s, 1),
            "dtype": str(vectors[device].dtype),
            "norm_range": [float(f(np.linalg.norm(vectors[device], axis=1))) for f in (min, max)],
        }
        vectors_out[f"{name}/{device}"] = vectors[device]
    if len(devices) == 2:
        out["cpu_vs_cuda"] = agreement(vectors["cpu"], vectors["cuda"])
        out["speedup_cuda_over_cpu"] = round(out["cpu"]["encode_s"] / out["cuda"]["encode_s"], 2)
    if f"{name}/cpu" in reference:
        for device in devices:
            out[f"reference_cpu_vs_{device}"] = agreement(reference[f"{name}/cpu"], vectors[device])
    return out


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Per-item cosine of two encodings of the same items, and the overlap of each item's 10
    nearest other items under the two (drift.scoring.drift_measures.knn_overlap)."""
    if a.shape != b.shape:
        raise ConfigError(f"vectors of shape {a.shape} and {b.shape} cannot be compared")
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        f"knn_overlap@{K}": knn_overlap(a, b, K),
    }


def synthetic_vectors(n: int, seed: int, *, level: float | None = None) -> list[np.ndarray]:
    """Vectors of n synthetic items (drift.encoders.synthetic; not a real model): [old], or
    [old, new] with the new model drifted by `level`."""
    ids = [f"s{seed}/item{i}" for i in range(n)]
    specs = [load_encoder_spec("synthetic_old")]
    if level is not None:
        specs.append({**load_encoder_spec("synthetic_new"), "level": level})
    return [build_encoder(spec, device="cpu").encode(ids) for spec in specs]


def check_residual_mlp(
    devices: Sequence[str], n_pairs: int, n_corpus: int, n_queries: int, seed: int
) -> dict[str, Any]:
    from drift.adapters import build_adapter
    from drift.scoring.metrics import knn_metrics

    old, new = synthetic_vectors(n_pairs + n_corpus + n_queries, seed, level=0.5)
    pairs = slice(0, n_pairs)
    corpus = slice(n_pairs, n_pairs + n_corpus)
    queries = slice(n_pairs + n_corpus, None)
    truth = top_k(new[corpus], new[queries])
    out: dict[str, Any] = {"synthetic": True, "n_pairs": n_pairs, "n_corpus": n_corpus}
    mapped: dict[str, np.ndarray] = {}
    found: dict[str, np.ndarray] = {}
    for device in devices:
        adapter = build_adapter("residual_mlp", device=device)
        _, fit_s = timed(lambda a=adapter: a.fit(new[pairs], old[pairs], seed=seed))
        mapped[device] = adapter.transform(new[queries])
        found[device] = top_k(old[corpus], mapped[device])
        recall = knn_metrics(found[device], truth, ks=[K])[f"recall@{K}"]
        out[device] = {"fit_s": round(fit_s, 3), f"recall@{K}": float(recall.mean())}
    if len(devices) == 2:
        out["cpu_vs_cuda"] = {
            **agreement(mapped["cpu"], mapped["cuda"]),
            f"retrieved_top{K}_overlap": overlap(found["cpu"], found["cuda"]),
        }
    return out


def check_faiss(devices: Sequence[str], n_corpus: int, n_queries: int, seed: int) -> dict[str, Any]:
    try:
        from drift.retrieval.index import IndexSpec, gpu_available
    except ImportError as error:
        return {"skipped": f"faiss is not installed ({error})"}
    if "cuda" in devices and not gpu_available():
        return {"skipped": "this faiss build has no GPU support or sees no GPU"}
    (vectors,) = synthetic_vectors(n_corpus + n_queries, seed)
    corpus, queries = vectors[:n_corpus], vectors[n_corpus:]
    truth = top_k(corpus, queries)
    out: dict[str, Any] = {"synthetic": True, "n_corpus": n_corpus, "n_queries": n_queries}
    twins = {
        "flat": {"kind": "flat"},
        "ivfpq": {"kind": "ivfpq"},
        "ivf_flat": {"kind": "factory", "factory": "IVF1024,Flat"},
    }
    for name, fields in twins.items():
        specs = {device: IndexSpec(**fields, device=device, seed=seed) for device in devices}
        out[name] = index_twins(specs, corpus, queries, truth)
    out["cagra_vs_hnsw"] = check_cagra(devices, corpus, queries, truth, seed)
    return out


def index_twins(
    specs: dict[str, Any], corpus: np.ndarray, queries: np.ndarray, truth: np.ndarray
) -> dict[str, Any]:
    """Build and search one index per device (label -> IndexSpec); recall against exact
    neighbours, build and search seconds, and the overlap of the first two devices' lists."""
    from drift.retrieval.index import build_index, search

    out: dict[str, Any] = {}
    ids: dict[str, np.ndarray] = {}
    for label, spec in specs.items():
        index, build_s = timed(lambda s=spec: build_index(corpus, s))
        (_, ids[label]), search_s = timed(lambda i=index, s=spec: search(i, queries, K, s))
        out[label] = {
            "spec": {k: v for k, v in spec.__dict__.items() if v is not None},
            "build_s": round(build_s, 3),
            "search_s": round(search_s, 4),
            f"recall@{K}_vs_exact": overlap(ids[label], truth),
        }
    if len(ids) == 2:
        first, second = ids.values()
        out["overlap_between_the_two"] = overlap(first, second)
    return out


def check_cagra(
    devices: Sequence[str], corpus: np.ndarray, queries: np.ndarray, truth: np.ndarray, seed: int
) -> dict[str, Any]:
    """CAGRA on the GPU beside HNSW on the CPU, where this faiss build has CAGRA."""
    from drift.retrieval.index import IndexSpec, check_device

    if "cuda" not in devices:
        return {"skipped": "no cuda device asked for"}
    try:
        check_device(IndexSpec(kind="cagra", device="cuda"))
    except ConfigError as err:
        return {"skipped": str(err)}
    specs = {
        "cpu_hnsw": IndexSpec(kind="hnsw", device="cpu", seed=seed),
        "cuda_cagra": IndexSpec(kind="cagra", device="cuda", seed=seed),
    }
    return index_twins(specs, corpus, queries, truth)


def offline_env(threads: int | None = None) -> dict[str, str]:
    """The environment of a child drift process: offline models and data, optional threads."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    if threads is not None:
        env |= dict.fromkeys(
            ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"), str(threads)
        )
    return env


def drift_command(module: str, *overrides: str, env: dict[str, str] | None = None) -> float:
    """Run `python -m <module> <overrides>` from the repository root; its wall seconds.
    RuntimeError with the end of its output when it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=REPO_ROOT,
        env=env or offline_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{module} {' '.join(overrides)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    return time.perf_counter() - start


def encode_records(results_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((results_dir / "encode").rglob("*.json"))]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def check_sharded_encode(device: str, n_docs: int, n_queries: int, work: Path) -> dict[str, Any]:
    """Two shards of MiniLM-L6 -> mpnet on the offline corpus through submitit_local, both on
    `device` (cuda: GPU 0), against one process encoding everything."""
    common = [
        "encoder@old_encoder=minilm_l6",
        "encoder@new_encoder=mpnet",
        "dataset=offline_mix",
        f"dataset.max_corpus={n_docs}",
        f"dataset.max_queries={n_queries}",
        "logger=none",
        "encode.show_progress=false",
        f"device={device}",
        f"hydra.run.dir={work / 'hydra'}",
    ]

    def where(name: str) -> list[str]:  # models stay in paths.model_cache_dir, loaded once
        return [
            f"paths.embedding_cache_dir={work / name / 'cache'}",
            f"paths.results_dir={work / name}",
        ]

    gpus = "1" if device == "cuda" else "0"  # every local job sees GPU 0, or none
    sharded_s = drift_command(
        "drift.encode", "-m", "hydra/launcher=submitit_local",
        f"hydra.launcher.gpus_per_node={gpus}", f"hydra.sweep.dir={work / 'sweep'}",
        "encode.shard=0,1", "encode.num_shards=2", *common, *where("sharded"),
    )  # fmt: skip
    one_s = drift_command("drift.encode", *common, *where("one"))
    shards, (one,) = encode_records(work / "sharded"), encode_records(work / "one")
    merged, reference = cached_vectors(work / "sharded/cache"), cached_vectors(work / "one/cache")
    keys = sorted(reference)
    if sorted(merged) != keys:
        raise RuntimeError("the sharded cache and the one-process cache hold different items")
    cos = np.array([cosine(merged[k], reference[k]) for k in keys])  # models differ in dim
    encoded = {m: sum(r["cache"][m]["encoded"] for r in shards) for m in one["cache"]}
    return {
        "device": device,
        "n_docs": n_docs,
        "n_queries": n_queries,
        "two_shards_wall_s": round(sharded_s, 1),  # both shards at once, model loads included
        "one_process_wall_s": round(one_s, 1),
        "shard_devices": [r["device"] for r in shards],
        "encoded_by_shards": encoded,
        "encoded_by_one_process": {m: s["encoded"] for m, s in one["cache"].items()},
        "vectors": len(keys),
        "bitwise_equal": int(sum(merged[k].tobytes() == reference[k].tobytes() for k in keys)),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
    }


def check_e2e(device: str, n_items: int, work: Path) -> dict[str, Any]:
    """drift.run end to end on `n_items` synthetic items (labelled synthetic, not a real
    model), the flat index and the exact ground truth on `device`."""
    overrides = [
        "encoder@old_encoder=synthetic_old",
        "encoder@new_encoder=synthetic_new",
        "dataset=synthetic",
        f"dataset.n_corpus={n_items}",
        "dataset.n_queries=1000",
        "adapter=procrustes",
        "adapter.n_pairs=20000",
        "eval.strategies=[full_reindex,status_quo,adapter]",
        "eval.n_boot=200",
        "index=flat",
        f"index.device={device}",
        f"device={device}",
        "logger=none",
        "encode.show_progress=false",
        f"paths.cache_dir={work / 'cache'}",
        f"paths.results_dir={work / 'results'}",
        f"hydra.run.dir={work / 'hydra'}",
    ]
    wall_s = drift_command("drift.run", *overrides)
    (path,) = sorted((work / "results").rglob("*.json"))
    record = json.loads(path.read_text())
    knn = record["metrics"]["protocols"]["knn"]["strategies"]
    return {
        "synthetic": True,
        "n_items": n_items,
        "device": device,
        "wall_s": round(wall_s, 1),
        "timings": {k: round(v, 2) for k, v in record["timings"].items()},
        f"recall@{K}": {name: row["metrics"][f"recall@{K}"]["mean"] for name, row in knn.items()},
        "index_on": record["index"]["spec"]["device"],
        "cuda": record["provenance"]["hardware"].get("cuda"),
    }


def timed_section(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A section's report with its wall time (`section_wall_s`)."""
    out, seconds = timed(check)
    return {**out, "section_wall_s": round(seconds, 1)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--encoders",
        nargs="*",
        default=["minilm_l6", "efficientnet_lite0", "clip_vit_s32_random_image"],
        help="conf/encoder names to check (none: skip the encoders)",
    )
    parser.add_argument("--n-items", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="timed encode passes (median)")
    parser.add_argument("--texts", type=Path, default=REPO_ROOT / "data/offline_text/faq")
    parser.add_argument("--images", type=Path, default=None)
    parser.add_argument("--reference", type=Path, default=None, help="CPU vectors (.npz) to match")
    parser.add_argument("--save-vectors", type=Path, default=None, help="write vectors (.npz)")
    parser.add_argument(
        "--devices",
        nargs="+",
        default=["cpu", "cuda"],
        choices=["cpu", "cuda"],
        help="cpu alone: a dry run, or (with --save-vectors) the reference for a GPU machine",
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["residual_mlp", "faiss", "sharded_encode", "e2e"],
    )
    parser.add_argument(
        "--preset",
        choices=["scale_out"],
        default=None,
        help="scale_out: both text models on 3,000 offline texts, one timed pass each, then the "
        "sharded encode and the 1M-item end-to-end run (issue 15); flags given explicitly win",
    )
    parser.add_argument("--shard-docs", type=int, default=2000, help="sharded_encode corpus size")
    parser.add_argument("--e2e-items", type=int, default=1_000_000, help="e2e corpus size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results/gpu_check/check.json")
    args = parser.parse_args(argv)
    if args.preset == "scale_out":
        given = set(argv if argv is not None else sys.argv[1:])
        if "--encoders" not in given:
            args.encoders = ["minilm_l6", "mpnet"]
        if "--n-items" not in given:
            args.n_items = 3000
        if "--repeats" not in given:
            args.repeats = 1
        if "--texts" not in given:  # 4,260 questions and answers: 3,000 alternating texts
            args.texts = REPO_ROOT / "data/offline_text/pydoc"
        if "--out" not in given:
            args.out = REPO_ROOT / "results/gpu_check/scale_out.json"
    else:  # without the preset, the checks that start drift processes run only when asked
        args.skip = [*args.skip, "sharded_encode", "e2e"]
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = parse_args(argv)
    import torch

    from drift.core.seeding import seed_everything

    devices = list(dict.fromkeys(args.devices))
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA device (use --devices cpu for a reference)")
    seed_everything(args.seed)
    reference = dict(np.load(args.reference)) if args.reference else {}
    vectors: dict[str, np.ndarray] = {}
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    report["provenance"] = provenance()
    report["encoders"] = {}
    for name in args.encoders:
        items = encoder_items(load_encoder_spec(name), args.n_items, args.texts, args.images)
        log.info("encoder %s: %d items on %s", name, len(items), " and ".join(devices))
        report["encoders"][name] = check_encoder(
            name, items, devices, reference, vectors, args.repeats
        )
    if "residual_mlp" not in args.skip:
        log.info("residual_mlp on %s", " and ".join(devices))
        report["residual_mlp"] = check_residual_mlp(devices, 4000, 5000, 500, args.seed)
    if "faiss" not in args.skip:
        log.info("faiss indexes on %s", " and ".join(devices))
        report["faiss"] = timed_section(lambda: check_faiss(devices, 20000, 1000, args.seed))
    device = devices[-1]  # cuda when asked for, else the CPU dry run
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as work:
        if "sharded_encode" not in args.skip:
            log.info("sharded encode: 2 shards on %s against one process", device)
            report["sharded_encode"] = timed_section(
                lambda: check_sharded_encode(
                    device, args.shard_docs, max(1, args.shard_docs // 4), Path(work) / "shards"
                )
            )
        if "e2e" not in args.skip:
            log.info("end to end: %d synthetic items on %s", args.e2e_items, device)
            report["e2e"] = timed_section(
                lambda: check_e2e(device, args.e2e_items, Path(work) / "e2e")
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.save_vectors:
        np.savez_compressed(args.save_vectors, **vectors)
    print(json.dumps({k: v for k, v in report.items() if k != "provenance"}, indent=2))
    return report


if __name__ == "__main__":
    main()

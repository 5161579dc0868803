"""Check the GPU paths against the CPU paths on one machine, side by side; writes one JSON file.

Every GPU path of the harness has a CPU twin that the test suite covers. This script runs each
pair on the same inputs and reports how far the GPU result is from the CPU one, and how fast each
was, so a GPU machine can be trusted with the same configs (`device=auto`):

- encoders: each named conf/encoder/*.yaml built with device=cpu (fp32) and device=cuda (fp16)
  encodes the same items; per-item cosine between the two vectors, agreement of each item's
  10 nearest neighbours among the items, items/s on each device (a warm-up pass first).
- residual_mlp: the Residual MLP adapter trained on cuda and on cpu (same seed, same synthetic
  pairs, labelled synthetic); Recall@10 of each against the new model's exact neighbours.
- faiss: flat and IVF-PQ indexes built on the GPU and on the CPU over the same synthetic vectors;
  top-10 overlap and search time of each (skipped, and said why, without a GPU faiss build).

    python scripts/gpu_check.py --out results/gpu_check/check.json
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
import statistics
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
        from drift.retrieval.index import IndexSpec, build_index, gpu_available, search
    except ImportError as error:
        return {"skipped": f"faiss is not installed ({error})"}
    if "cuda" in devices and not gpu_available():
        return {"skipped": "this faiss build has no GPU support or sees no GPU"}
    (vectors,) = synthetic_vectors(n_corpus + n_queries, seed)
    corpus, queries = vectors[:n_corpus], vectors[n_corpus:]
    truth = top_k(corpus, queries)
    out: dict[str, Any] = {"synthetic": True, "n_corpus": n_corpus, "n_queries": n_queries}
    for kind in ("flat", "ivfpq"):
        ids: dict[str, np.ndarray] = {}
        out[kind] = {}
        for device in devices:
            spec = IndexSpec(kind=kind, device=device, seed=seed)
            index, build_s = timed(lambda s=spec: build_index(corpus, s))
            (_, ids[device]), search_s = timed(lambda i=index, s=spec: search(i, queries, K, s))
            out[kind][device] = {
                "build_s": round(build_s, 3),
                "search_s": round(search_s, 4),
                f"recall@{K}_vs_exact": overlap(ids[device], truth),
            }
        if len(devices) == 2:
            out[kind]["cpu_vs_cuda_overlap"] = overlap(ids["cpu"], ids["cuda"])
    return out


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
    parser.add_argument("--skip", nargs="*", default=[], choices=["residual_mlp", "faiss"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results/gpu_check/check.json")
    return parser.parse_args(argv)


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
        report["faiss"] = check_faiss(devices, 20000, 1000, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.save_vectors:
        np.savez_compressed(args.save_vectors, **vectors)
    print(json.dumps({k: v for k, v in report.items() if k != "provenance"}, indent=2))
    return report


if __name__ == "__main__":
    main()

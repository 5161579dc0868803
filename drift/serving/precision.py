"""Weight precision of an exported artifact: float32 (the default), float16 or bfloat16.

A half-precision artifact stores every array in two bytes per value (half the bytes on disk);
every backend computes in float32, since none computes faster in half precision on a CPU without
half-precision arithmetic (AVX2 + F16C, no AVX512-BF16 / AVX512-FP16): numpy has no bfloat16
and no BLAS for float16 (its float16 matmul is a plain loop), and torch computing in float16 /
bfloat16 ran 2.1-5.2x slower than in float32 for one query and 15-46x at batch 32 on such a CPU
(scripts/bench_latency.py --floor, results/bench/latency_floor.json). The runtime widens the
weights once at load, so a half-precision artifact is the float32 adapter with its weights
rounded: that rounding is the whole of its effect on the outputs, and `fidelity` measures it.

    blob, rounded = encode_weights(adapter.params(), "bfloat16")   # safetensors bytes, float32
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from drift.core.errors import ConfigError
from drift.serving.runtime import PRECISIONS, parse_safetensors

# The smallest cosine between a half-precision artifact's outputs and the float32 adapter's that
# an export accepts. Rounding every weight to 8 (bfloat16) or 11 (float16) significant bits moved
# the offline default's OP, LA and MLP outputs by at most 5e-4 per coordinate, a cosine of at
# least 1 - 2.1e-6 (results/bench/latency_floor.json); 0.999 is far below that, so it flags a
# fault (a scale far outside the precision's range) rather than an ordinary rounding.
MIN_COSINE = 0.999


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(
            f"unknown weight precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    return precision


def encode_weights(
    weights: Mapping[str, np.ndarray], precision: str
) -> tuple[bytes, dict[str, np.ndarray]]:
    """The weights as a safetensors file's bytes in `precision`, and the float32 arrays that file
    holds (the weights rounded to `precision`, widened back: what the runtime computes with).

    float32 and float16 go through safetensors.numpy; bfloat16, which numpy lacks, through torch
    (round to nearest even) and safetensors.torch.
    """
    check_precision(precision)
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    if precision == "bfloat16":
        import torch
        from safetensors.torch import save as save_torch

        blob = save_torch({k: torch.from_numpy(v).to(torch.bfloat16) for k, v in arrays.items()})
    else:
        from safetensors.numpy import save

        with np.errstate(over="ignore"):  # overflow to inf is refused below, by name
            blob = save({k: v.astype(np.dtype(precision)) for k, v in arrays.items()})
    rounded = parse_safetensors(blob, f"<{precision} weights>")
    overflow = [
        k for k, v in rounded.items() if np.isfinite(arrays[k]).all() and not np.isfinite(v).all()
    ]
    if overflow:
        raise ConfigError(
            f"weights {overflow} overflow {precision} (largest magnitude "
            f"{max(float(np.abs(arrays[k]).max()) for k in overflow):.3g}); export them as float32"
        )
    return blob, rounded


def stored_values(rounded: np.ndarray, precision: str) -> np.ndarray:
    """An array already rounded to `precision` (float32, as `encode_weights` returns it) as the
    values that precision stores, exactly: float32 or float16 arrays, or for bfloat16 the uint16
    bit patterns (the top half of each float32)."""
    check_precision(precision)
    rounded = np.ascontiguousarray(rounded, dtype=np.float32)
    if precision == "bfloat16":
        return (rounded.view(np.uint32) >> 16).astype(np.uint16)
    return rounded.astype(np.dtype(precision))


def fidelity(reference: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """How far `got` (rows) is from `reference`: the largest absolute difference, and the
    smallest and mean cosine between matching rows."""
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(got, dtype=np.float64)
    denom = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cosine = np.einsum("ij,ij->i", ref, out) / np.maximum(denom, 1e-30)
    return {
        "max_abs_diff": float(np.abs(ref - out).max(initial=0.0)),
        "min_cosine": float(cosine.min(initial=1.0)),
        "mean_cosine": float(cosine.mean()) if cosine.size else 1.0,
    }

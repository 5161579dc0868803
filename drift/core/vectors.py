"""Checks and small operations on embedding matrices shared by every stage."""

from __future__ import annotations

import numpy as np

from drift.core.errors import VectorError


def check_vectors(x: np.ndarray, *, name: str, dim: int | None = None) -> np.ndarray:
    """Return `x` as a C-contiguous float32 [n, d] array, or raise VectorError naming the problem.

    Args:
        x: the vectors to check.
        name: what the vectors are (used in the error message, e.g. "new-model query vectors").
        dim: the expected dimension, if known.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise VectorError(f"{name}: expected a 2-d array [n, d], got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise VectorError(f"{name}: expected dimension {dim}, got {x.shape[1]} (shape {x.shape})")
    if x.shape[0] and not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise VectorError(
            f"{name}: {bad.size} of {x.shape[0]} rows hold NaN or inf "
            f"(first rows: {bad[:5].tolist()})"
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Scale each row to unit L2 norm (rows of zeros stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)

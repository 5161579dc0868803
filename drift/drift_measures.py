"""How far apart two embedding spaces are, measured on the same items (no labels needed).

Used to order model pairs by drift severity. Both measures are computed on one seeded sample of
corpus items encoded by both models:
- `knn_overlap@k`: mean share of an item's k nearest neighbours (inner product, the item itself
  excluded) that the two spaces agree on; 1 = same neighbourhoods, lower = more drift.
- `linear_cka`: linear centred kernel alignment (Kornblith et al., 2019); 1 = the spaces differ
  by an orthogonal map and isotropic scaling, 0 = unrelated.
"""

from __future__ import annotations

import numpy as np


def knn_overlap(x_old: np.ndarray, x_new: np.ndarray, k: int = 10) -> float:
    n = x_old.shape[0]
    if n <= k:
        raise ValueError(f"knn_overlap needs more than k={k} items, got {n}")

    def neighbours(x: np.ndarray) -> np.ndarray:
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k, axis=1)[:, :k]

    old_nn, new_nn = neighbours(x_old), neighbours(x_new)
    shared = [
        np.intersect1d(a, b, assume_unique=True).size for a, b in zip(old_nn, new_nn, strict=True)
    ]
    return float(np.mean(shared) / k)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2
    return float(cross / (np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")))


def drift_measures(
    x_old: np.ndarray, x_new: np.ndarray, *, n_sample: int = 2000, k: int = 10, seed: int = 0
) -> dict[str, float | int]:
    """Both measures on a seeded sample of at most `n_sample` row-aligned items."""
    n = x_old.shape[0]
    rows = np.random.default_rng(seed).permutation(n)[: min(n, n_sample)]
    a, b = x_old[rows].astype(np.float64), x_new[rows].astype(np.float64)
    return {
        f"knn_overlap@{k}": knn_overlap(a, b, k) if rows.size > k else float("nan"),
        "linear_cka": linear_cka(a, b),
        "n_sample": int(rows.size),
    }

"""How far apart two embedding spaces are, measured on the same items (no labels needed).

Used to order model pairs by drift severity. Both measures are computed on one seeded sample of
corpus items encoded by both models:
- `knn_overlap@k`: mean share of an item's k nearest neighbours (inner product, the item itself
  excluded) that the two spaces agree on; 1 = same neighbourhoods, lower = more drift.
- `linear_cka`: linear centred kernel alignment (Kornblith et al., 2019); 1 = the spaces differ
  by an orthogonal map and isotropic scaling, 0 = unrelated.
Beside them, each space's anisotropy, `mean_cosine_old` / `mean_cosine_new`: the mean cosine
between distinct items, near 0 when directions spread evenly, high when one shared direction
dominates every vector (e5-small's: about .83). An uncentred orthogonal map must carry that
shared direction into the other space, which is mostly why it fails from such a space unless
centred (experiment=asymmetric_pairs).
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


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine over all pairs of distinct rows (from the sum of the unit rows, O(n d))."""
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"mean_pairwise_cosine needs at least 2 items, got {n}")
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float64).tiny)
    total = float(np.sum(unit.sum(axis=0) ** 2))  # sum over all ordered pairs, self-pairs included
    return (total - float(np.sum(unit * unit))) / (n * (n - 1))


def drift_measures(
    x_old: np.ndarray, x_new: np.ndarray, *, n_sample: int = 2000, k: int = 10, seed: int = 0
) -> dict[str, float | int]:
    """The measures of the module docstring on a seeded sample of at most `n_sample` row-aligned
    items."""
    n = x_old.shape[0]
    rows = np.random.default_rng(seed).permutation(n)[: min(n, n_sample)]
    a, b = x_old[rows].astype(np.float64), x_new[rows].astype(np.float64)
    return {
        f"knn_overlap@{k}": knn_overlap(a, b, k) if rows.size > k else float("nan"),
        "linear_cka": linear_cka(a, b),
        "mean_cosine_old": mean_pairwise_cosine(a) if rows.size > 1 else float("nan"),
        "mean_cosine_new": mean_pairwise_cosine(b) if rows.size > 1 else float("nan"),
        "n_sample": int(rows.size),
    }

"""Low-rank affine (LA): x -> x @ A @ B + b with A: d_new x r, B: r x d_old (paper: r = 64).

Fitted in closed form as reduced-rank ridge regression, which works the same whether or not
d_new == d_old (no square base map is assumed):

1. ridge least squares W (d_new x d_old) and bias on the pairs (`fit_affine_ridge`, relative
   penalty `alpha`, small by default; the rank constraint is the main regulariser);
2. the fitted values' top-r principal directions V_r (d_old x r): eigenvectors of
   WᵀXcᵀXcW, the covariance of Xc @ W;
3. A = W @ V_r, B = V_rᵀ, so A @ B = W V_r V_rᵀ projects the ridge map's output onto the r
   directions that carry most of its variance (the least-squares optimal rank-r map when
   alpha = 0); b is refitted to the means: b = mean_old - mean_new @ A @ B.

It stores r (d_new + d_old) + d_old numbers (about 74k at 768 -> 384, r = 64) instead of
d_new x d_old, and costs as much per query. The sign of each direction is fixed (largest entry of
each V_r column positive), so a fit is deterministic. The fit itself is `fit_low_rank_affine`,
which the OP + low-rank correction adapter (drift/adapters/op_low_rank.py) applies to OP's residual.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from drift.adapters.base import Display, register_adapter
from drift.adapters.baselines import check_alpha, fit_affine_ridge
from drift.adapters.scaling import MapAdapter
from drift.core.errors import ConfigError, VectorError


class LowRankFit(NamedTuple):
    left: np.ndarray  # A, d_in x r, float64
    right: np.ndarray  # B, r x d_out, float64
    bias: np.ndarray  # b, d_out, float64
    explained_variance: float  # share of the ridge map's fitted variance the r directions keep


def check_rank(rank: int, owner: str) -> int:
    if int(rank) != rank or rank < 1:
        raise ConfigError(f"{owner}: rank must be a positive integer, got {rank!r}")
    return int(rank)


def fit_low_rank_affine(
    x: np.ndarray, y: np.ndarray, rank: int, alpha: float, owner: str
) -> LowRankFit:
    """Reduced-rank ridge regression y ≈ x @ A @ B + b (steps 1-3 of the module docstring).

    `owner` names the adapter in errors. Raises ConfigError when `rank` exceeds either dimension,
    VectorError when there are too few pairs to determine a rank-`rank` map.
    """
    (n, d_in), d_out = x.shape, y.shape[1]
    if rank > min(d_in, d_out):
        raise ConfigError(
            f"{owner}: rank {rank} exceeds min(d_new={d_in}, d_old={d_out}); "
            f"use rank <= {min(d_in, d_out)}"
        )
    if n <= rank:
        raise VectorError(
            f"{owner}: {n} training pairs cannot determine a rank-{rank} map "
            f"(the centred pairs span at most {n - 1} directions); give more than "
            f"{rank} pairs or lower the rank"
        )
    fit = fit_affine_ridge(x, y, alpha)
    fitted_cov = fit.weight.T @ fit.gram @ fit.weight
    _, vecs = np.linalg.eigh(fitted_cov)  # ascending eigenvalues
    top = vecs[:, ::-1][:, :rank]
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(rank)])
    left, right = fit.weight @ top, top.T
    mean_x = x.mean(axis=0, dtype=np.float64)
    mean_y = y.mean(axis=0, dtype=np.float64)
    explained = np.trace(top.T @ fitted_cov @ top) / max(np.trace(fitted_cov), 1e-300)
    return LowRankFit(left, right, mean_y - (mean_x @ left) @ right, float(explained))


@register_adapter("low_rank_affine")
class LowRankAffine(MapAdapter):
    """Reduced-rank affine map; see the module docstring.

    Args:
        rank: r, at most min(d_new, d_old); r = min(d_new, d_old) is full-rank ridge.
        alpha: relative ridge penalty of step 1 (see `fit_affine_ridge`).
        dsm: diagonal scaling after the map (on by default, as in the paper).
        dsm_bias, normalize_output: the shared output stage (drift.adapters.scaling).
    """

    display = Display("LA", "#E69F00", "^")
    hparam_columns = {"la_rank": "rank"}

    def __init__(
        self,
        *,
        rank: int = 64,
        alpha: float = 1e-3,
        dsm: bool = True,
        dsm_bias: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__(dsm=dsm, dsm_bias=dsm_bias, normalize_output=normalize_output)
        self.rank = check_rank(rank, self.kind)
        self.alpha = check_alpha(alpha, f"{self.kind} adapter")

    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        fit = fit_low_rank_affine(x_new, x_old, self.rank, self.alpha, self.name)
        self._warn_if_underdetermined(
            x_new.shape[0], x_new.shape[1], f"the ridge term (alpha={self.alpha}) dominates"
        )
        self.fit_info["explained_variance"] = fit.explained_variance
        return {
            "left": fit.left.astype(np.float32),
            "right": fit.right.astype(np.float32),
            "bias": fit.bias.astype(np.float32),
        }

    def _map(self, x: np.ndarray) -> np.ndarray:
        return (x @ self._weights["left"]) @ self._weights["right"] + self._weights["bias"]

    def _param_names(self) -> tuple[str, ...]:
        return ("left", "right", "bias")

    def _map_hparams(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha}

    def _map_ops(self) -> list[dict[str, Any]]:
        # Two matmuls, as in `_map`: folding A @ B would cost d_new * d_old per query, not
        # r * (d_new + d_old).
        return [
            {"op": "matmul", "weight": "left"},
            {"op": "matmul", "weight": "right"},
            {"op": "add", "value": "bias"},
        ]

"""Low-rank affine (LA): x -> x @ A @ B + b with A: d_new x r, B: r x d_old (paper: r = 64).

Fitted in closed form as reduced-rank ridge regression (Mukherjee & Zhu 2011), which works the
same whether or not d_new == d_old (no square base map is assumed). With Xc, Yc the centred pairs
and G = XcᵀXc, it minimises |Yc - Xc M|² + λ |M|² over maps M of rank at most r:

1. the full-rank ridge map W = (G + λI)⁻¹ XcᵀYc (`RidgePath`, relative penalty `alpha`, or a grid
   of them chosen on the validation pairs: drift/adapters/penalty.py);
2. V_r (d_old x r): the top-r eigenvectors of Wᵀ(G + λI)W, which equals WᵀXcᵀYc. The penalised
   problem is plain least squares on the pairs plus d_new pseudo-pairs (√λ e_i, 0); on those, W
   is the least-squares map and Wᵀ(G + λI)W the Gram matrix of its fitted values, and the best
   rank-r least-squares map projects the fitted values onto their top r principal directions.
   (WᵀGW, from the real pairs' fitted values alone, gives the same directions only when λ = 0;
   with a penalty its projection attains a higher penalised objective: tests/test_adapters.py
   checks both against a numerical minimisation.)
3. A = W @ V_r, B = V_rᵀ, so A @ B = W V_r V_rᵀ; b = mean_old - mean_new @ A @ B.

It stores r (d_new + d_old) + d_old numbers (about 74k at 768 -> 384, r = 64) instead of
d_new x d_old, and costs as much per query. The sign of each direction is fixed (largest entry of
each V_r column positive), so a fit is deterministic. The fit itself is `fit_low_rank_affine`,
which the OP + low-rank correction adapter (drift/adapters/op_low_rank.py) applies to OP's residual.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from drift.adapters.base import Display, register_adapter
from drift.adapters.baselines import RidgePath
from drift.adapters.penalty import Candidate, PenalisedMap, Penalty, check_penalty
from drift.core.errors import ConfigError, VectorError


class LowRankFit(NamedTuple):
    left: np.ndarray  # A, d_in x r, float64
    right: np.ndarray  # B, r x d_out, float64
    bias: np.ndarray  # b, d_out, float64
    explained_variance: float  # share of the ridge map's fitted variance the r directions keep

    def candidate(self, **weights: np.ndarray) -> Candidate:
        """A grid candidate of these arrays (float32), plus any `weights` (float64) before them."""
        arrays = {**weights, "left": self.left, "right": self.right, "bias": self.bias}
        return Candidate(
            {k: v.astype(np.float32) for k, v in arrays.items()},
            {"explained_variance": self.explained_variance},
        )


def check_rank(rank: int, owner: str) -> int:
    if int(rank) != rank or rank < 1:
        raise ConfigError(f"{owner}: rank must be a positive integer, got {rank!r}")
    return int(rank)


def check_pairs_for_rank(n: int, d_in: int, d_out: int, rank: int, owner: str) -> None:
    """ConfigError when `rank` exceeds either dimension, VectorError when n pairs are too few to
    determine a rank-`rank` map; `owner` names the adapter."""
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


def fit_low_rank_affine(path: RidgePath, rank: int, alpha: float) -> LowRankFit:
    """Reduced-rank ridge regression y ≈ x @ A @ B + b (steps 1-3 of the module docstring), from
    the `RidgePath` of the pairs."""
    fit = path.fit(alpha)
    penalised = fit.weight.T @ path.cross  # Wᵀ(G + λI)W by the normal equations
    penalised = (penalised + penalised.T) / 2  # symmetric up to rounding
    _, vecs = np.linalg.eigh(penalised)  # ascending eigenvalues
    top = vecs[:, ::-1][:, :rank]
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(rank)])
    left, right = fit.weight @ top, top.T
    fitted_cov = penalised - path.penalty(alpha) * (fit.weight.T @ fit.weight)  # WᵀGW
    explained = np.trace(top.T @ fitted_cov @ top) / max(np.trace(fitted_cov), 1e-300)
    bias = path.mean_y - (path.mean_x @ left) @ right
    return LowRankFit(left, right, bias, float(explained))


@register_adapter("low_rank_affine")
class LowRankAffine(PenalisedMap):
    """Reduced-rank affine map; see the module docstring.

    Args:
        rank: r, at most min(d_new, d_old); r = min(d_new, d_old) is full-rank ridge.
        alpha: relative ridge penalty (see `RidgePath`), or a list of them to choose from on the
            validation pairs (drift/adapters/penalty.py).
        dsm: diagonal scaling after the map (on by default, as in the paper).
        dsm_bias, normalize_output: the shared output stage (drift.adapters.scaling).
    """

    display = Display("LA", "#E69F00", "^")
    hparam_columns = {"la_rank": "rank"}

    def __init__(
        self,
        *,
        rank: int = 64,
        alpha: Penalty = 1e-3,
        dsm: bool = True,
        dsm_bias: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__(dsm=dsm, dsm_bias=dsm_bias, normalize_output=normalize_output)
        self.rank = check_rank(rank, self.kind)
        self.alpha = check_penalty(alpha, f"{self.kind} adapter: alpha")

    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        check_pairs_for_rank(*x_new.shape, x_old.shape[1], self.rank, self.name)
        self._warn_if_underdetermined(
            x_new.shape[0], x_new.shape[1], f"the ridge term (alpha={self.alpha}) dominates"
        )
        return self._fit_penalised(self._fits, x_new, x_old, x_new_val, x_old_val, seed)

    def _fits(self, x, y, grid: tuple[float, ...]) -> Iterator[Candidate]:
        path = RidgePath(x, y)
        for alpha in grid:
            yield fit_low_rank_affine(path, self.rank, alpha).candidate()

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

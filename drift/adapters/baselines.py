"""Baselines: "identity" (the misaligned new query sent as is) and "ridge" (affine ridge map).

`RidgePath` is also the first step of the low-rank affine adapter and one way to start the
residual MLP's linear path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from drift.adapters.base import Display, register_adapter
from drift.adapters.penalty import Candidate, PenalisedMap, Penalty, check_penalty
from drift.adapters.scaling import MapAdapter
from drift.core.errors import ConfigError


class AffineFit(NamedTuple):
    weight: np.ndarray  # d_in x d_out, float64
    bias: np.ndarray  # d_out, float64


class RidgePath:
    """Least squares y ≈ x @ W + b with a ridge penalty on W, in float64, at any penalty.

    The penalty is relative: λ = alpha · tr(XcᵀXc) / d_in, the mean eigenvalue of the centred Gram
    matrix, so one alpha means the same for any number of pairs or vector scale. alpha = 0 is
    plain least squares (minimum-norm solution if XcᵀXc is singular).

    One eigendecomposition XcᵀXc = Q diag(e) Qᵀ serves every penalty: W = Q diag(1 / (e + λ)) Qᵀ
    XcᵀYc, so a grid of penalties costs one O(d_in³) step and one O(d_in² d_out) product per
    value (drift/adapters/penalty.py).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        self.mean_x, self.mean_y = x.mean(axis=0), y.mean(axis=0)
        xc = x - self.mean_x
        self.cross = xc.T @ (y - self.mean_y)  # XcᵀYc, d_in x d_out
        eigvals, self._eigvecs = np.linalg.eigh(xc.T @ xc)
        self._eigvals = np.clip(eigvals, 0.0, None)  # positive semi-definite: rounding only
        self._rotated = self._eigvecs.T @ self.cross
        self._scale = float(self._eigvals.sum()) / x.shape[1]

    def penalty(self, alpha: float) -> float:
        """The absolute penalty λ of the relative `alpha`."""
        return alpha * self._scale

    def fit(self, alpha: float) -> AffineFit:
        lam, e = self.penalty(alpha), self._eigvals
        if lam > 0:
            inverse = 1.0 / (e + lam)
        else:  # the pseudo-inverse, with numpy.linalg.lstsq's default cutoff
            kept = e > np.finfo(np.float64).eps * e.size * e.max(initial=0.0)
            inverse = np.where(kept, 1.0 / np.where(kept, e, 1.0), 0.0)
        weight = self._eigvecs @ (inverse[:, None] * self._rotated)
        return AffineFit(weight, self.mean_y - self.mean_x @ weight)


@register_adapter("identity")
class Identity(MapAdapter):
    """The misaligned baseline: the new vector unchanged (needs d_new == d_old).

    dsm=True turns it into a fitted per-dimension rescaling; the default is the bare baseline.
    """

    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        if x_new.shape[1] != x_old.shape[1]:
            raise ConfigError(
                f"identity adapter: new vectors have {x_new.shape[1]} dims but the old index has "
                f"{x_old.shape[1]}; the misaligned baseline only exists when the dimensions match "
                "(use procrustes, ridge or low_rank_affine to map between different dimensions)"
            )
        return {}

    def _map(self, x: np.ndarray) -> np.ndarray:
        return x

    def _map_ops(self) -> list[dict[str, Any]]:
        return []


@register_adapter("ridge")
class Ridge(PenalisedMap):
    """Full affine map x @ W + b fitted by ridge regression (closed form).

    Args:
        alpha: relative ridge penalty (see `RidgePath`), or a list of them to choose from on the
            validation pairs (drift/adapters/penalty.py).
        dsm, dsm_bias, normalize_output: the shared output stage (drift.adapters.scaling).
    """

    display = Display("Ridge", "#CC79A7", "v")

    def __init__(
        self,
        *,
        alpha: Penalty = 1e-2,
        dsm: bool = False,
        dsm_bias: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__(dsm=dsm, dsm_bias=dsm_bias, normalize_output=normalize_output)
        self.alpha = check_penalty(alpha, "ridge adapter: alpha")

    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        self._warn_if_underdetermined(
            x_new.shape[0], x_new.shape[1], f"the ridge term (alpha={self.alpha}) dominates"
        )
        return self._fit_penalised(self._fits, x_new, x_old, x_new_val, x_old_val, seed)

    @staticmethod
    def _fits(x, y, grid: tuple[float, ...]) -> Iterator[Candidate]:
        path = RidgePath(x, y)
        for alpha in grid:
            fit = path.fit(alpha)
            weights = {"weight": fit.weight, "bias": fit.bias}
            yield Candidate({k: v.astype(np.float32) for k, v in weights.items()}, {})

    def _map(self, x: np.ndarray) -> np.ndarray:
        return x @ self._weights["weight"] + self._weights["bias"]

    def _param_names(self) -> tuple[str, ...]:
        return ("weight", "bias")

    def _map_hparams(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def _map_ops(self) -> list[dict[str, Any]]:
        return [{"op": "matmul", "weight": "weight"}, {"op": "add", "value": "bias"}]

"""Baselines: "identity" (the misaligned new query sent as is) and "ridge" (affine ridge map).

`fit_affine_ridge` is also the first step of the low-rank affine adapter and one way to start the
residual MLP's linear path.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.linalg

from drift.adapters.base import Display, register_adapter
from drift.adapters.scaling import MapAdapter
from drift.core.errors import ConfigError


class AffineFit(NamedTuple):
    weight: np.ndarray  # d_in x d_out, float64
    bias: np.ndarray  # d_out, float64
    gram: np.ndarray  # Xcᵀ Xc of the centred inputs, kept so callers need no second data pass


def fit_affine_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> AffineFit:
    """Least squares y ≈ x @ W + b with a ridge penalty on W, in float64.

    The penalty is relative: λ = alpha · tr(XcᵀXc) / d_in, the mean eigenvalue of the centred Gram
    matrix, so one alpha means the same for any number of pairs or vector scale. alpha = 0 is
    plain least squares (minimum-norm solution if XcᵀXc is singular).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    xc = x - mean_x
    gram = xc.T @ xc
    rhs = xc.T @ (y - mean_y)
    lam = alpha * np.trace(gram) / x.shape[1]
    if lam > 0:
        weight = scipy.linalg.solve(
            gram + lam * np.eye(x.shape[1]), rhs, assume_a="pos", check_finite=False
        )
    else:
        weight = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return AffineFit(weight, mean_y - mean_x @ weight, gram)


def check_alpha(alpha: float, owner: str) -> float:
    if not alpha >= 0:  # also catches NaN
        raise ConfigError(f"{owner}: alpha must be >= 0, got {alpha}")
    return float(alpha)


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
class Ridge(MapAdapter):
    """Full affine map x @ W + b fitted by ridge regression (closed form).

    Args:
        alpha: relative ridge penalty (see `fit_affine_ridge`).
        dsm, dsm_bias, normalize_output: the shared output stage (drift.adapters.scaling).
    """

    display = Display("Ridge", "#CC79A7", "v")

    def __init__(
        self,
        *,
        alpha: float = 1e-2,
        dsm: bool = False,
        dsm_bias: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__(dsm=dsm, dsm_bias=dsm_bias, normalize_output=normalize_output)
        self.alpha = check_alpha(alpha, "ridge adapter")

    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        self._warn_if_underdetermined(
            x_new.shape[0], x_new.shape[1], f"the ridge term (alpha={self.alpha}) dominates"
        )
        fit = fit_affine_ridge(x_new, x_old, self.alpha)
        return {"weight": fit.weight.astype(np.float32), "bias": fit.bias.astype(np.float32)}

    def _map(self, x: np.ndarray) -> np.ndarray:
        return x @ self._weights["weight"] + self._weights["bias"]

    def _param_names(self) -> tuple[str, ...]:
        return ("weight", "bias")

    def _map_hparams(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def _map_ops(self) -> list[dict[str, Any]]:
        return [{"op": "matmul", "weight": "weight"}, {"op": "add", "value": "bias"}]

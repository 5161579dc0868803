"""Orthogonal Procrustes (OP): the closed-form rotation from the new space into the old one.

With X the new vectors and Y the old ones (rows paired), W = argmax trace(Wᵀ XᵀY) over
(semi-)orthogonal W, i.e. `U, S, Vt = svd(XᵀY); W = U @ Vt` (as in MUSE); a query maps as x @ W.
When d_new != d_old, W is d_new x d_old and semi-orthogonal: orthonormal columns when
d_new > d_old (768 -> 384: a rotation followed by dropping 384 directions), orthonormal rows when
d_new < d_old (an isometric embedding). The map keeps inner products among the directions it keeps,
which is why it generalises well from few pairs.

`center=True` (off by default, as in the paper and MUSE) fits W on mean-centred pairs and maps
x -> (x - mean_new) @ W + mean_old, stored as W plus one bias vector.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from drift.adapters.base import Display, register_adapter
from drift.adapters.scaling import MapAdapter


def orthogonal_procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The (semi-)orthogonal W (d_x x d_y) maximising trace(Wᵀ xᵀ y), in float64."""
    m = np.asarray(x, dtype=np.float64).T @ np.asarray(y, dtype=np.float64)
    u, _, vt = np.linalg.svd(m, full_matrices=False)
    return u @ vt


@register_adapter("procrustes")
class Procrustes(MapAdapter):
    """Orthogonal Procrustes map new -> old; see the module docstring.

    Args:
        center: fit on mean-centred pairs and add the old mean back (default off).
        dsm, dsm_bias, normalize_output: the shared output stage (drift.adapters.scaling).
    """

    display = Display("OP", "#0072B2", "o")
    hparam_columns = {"op_center": "center"}

    def __init__(
        self,
        *,
        center: bool = False,
        dsm: bool = False,
        dsm_bias: bool = False,
        normalize_output: bool = True,
    ) -> None:
        super().__init__(dsm=dsm, dsm_bias=dsm_bias, normalize_output=normalize_output)
        self.center = bool(center)

    def _fit_map(self, x_new, x_old, x_new_val, x_old_val, seed) -> dict[str, np.ndarray]:
        self._warn_if_underdetermined(
            x_new.shape[0], x_new.shape[1], "the rotation is not unique outside the pairs' span"
        )
        if not self.center:
            return {"weight": orthogonal_procrustes(x_new, x_old).astype(np.float32)}
        mean_new = x_new.mean(axis=0, dtype=np.float64)
        mean_old = x_old.mean(axis=0, dtype=np.float64)
        weight = orthogonal_procrustes(x_new - mean_new, x_old - mean_old)
        bias = mean_old - mean_new @ weight
        return {"weight": weight.astype(np.float32), "bias": bias.astype(np.float32)}

    def _map(self, x: np.ndarray) -> np.ndarray:
        y = x @ self._weights["weight"]
        return y + self._weights["bias"] if self.center else y

    def _param_names(self) -> tuple[str, ...]:
        return ("weight", "bias") if self.center else ("weight",)

    def _map_hparams(self) -> dict[str, Any]:
        return {"center": self.center}

    def _map_ops(self) -> list[dict[str, Any]]:
        ops: list[dict[str, Any]] = [{"op": "matmul", "weight": "weight"}]
        return [*ops, {"op": "add", "value": "bias"}] if self.center else ops

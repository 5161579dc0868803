"""OP + low-rank correction: x -> x @ R + x @ A @ B + b (a named variant beside the paper's LA).

The paper's low-rank affine map (LA, drift/adapters/low_rank_affine.py) sends every query into an
r-dimensional subspace of the old space (r = 64 of 384 for MiniLM-L6 <- mpnet), which throws away
most of what a full-rank map like Orthogonal Procrustes keeps. This variant keeps OP's full-rank
map and spends the rank-r budget on what OP misses:

1. R = the (semi-)orthogonal Procrustes map of the pairs (`orthogonal_procrustes`, uncentred as
   OP's default; semi-orthogonal when d_new != d_old);
2. A, B, b = LA's reduced-rank ridge fit (`fit_low_rank_affine`) of the residual x_old - x_new R
   on x_new, so the correction also carries the intercept that uncentred OP lacks. Its penalty
   alpha may be a grid chosen on the validation pairs, as LA's (drift/adapters/penalty.py); R does
   not depend on it.

The two steps are fitted in turn, not jointly: R is OP's own map, which the correction can only
add to. At full rank (r = min(d_new, d_old)) R + A B is ridge regression shrunk towards R instead
of towards zero. It stores d_new d_old + r (d_new + d_old) + d_old numbers (about 369k at
768 -> 384, r = 64) and costs as much per query.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from drift.adapters.base import Display, register_adapter
from drift.adapters.baselines import RidgePath
from drift.adapters.low_rank_affine import LowRankAffine, fit_low_rank_affine
from drift.adapters.penalty import Candidate
from drift.adapters.procrustes import orthogonal_procrustes


@register_adapter("op_low_rank")
class ProcrustesLowRank(LowRankAffine):
    """OP map plus a reduced-rank ridge correction of its residual; see the module docstring.
    Same arguments as LowRankAffine: rank r and ridge penalty alpha (or grid) of the correction,
    dsm (on by default, as for LA), dsm_bias, normalize_output."""

    display = Display("OP + low-rank", "#8C564B", "<")
    hparam_columns: dict[str, str] = {}  # LA's la_rank column is LA's rank, not this correction's

    def _fits(self, x, y, grid: tuple[float, ...]) -> Iterator[Candidate]:
        x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        weight = orthogonal_procrustes(x64, y64)
        residual = y64 - x64 @ weight
        # How much of the old vectors OP alone leaves unexplained.
        share = float(np.square(residual).sum() / max(np.square(y64).sum(), 1e-300))
        path = RidgePath(x64, residual)
        for alpha in grid:
            candidate = fit_low_rank_affine(path, self.rank, alpha).candidate(weight=weight)
            yield candidate._replace(info={"op_residual_share": share, **candidate.info})

    def _map(self, x: np.ndarray) -> np.ndarray:
        w = self._weights
        return x @ w["weight"] + (x @ w["left"]) @ w["right"] + w["bias"]

    def _param_names(self) -> tuple[str, ...]:
        return ("weight", "left", "right", "bias")

    def _map_ops(self) -> list[dict[str, Any]]:
        # x @ R + (x @ A) @ B + b as in `_map`; ServingAdapter.affine (drift/serving/runtime.py)
        # folds it for faiss.
        low_rank = [{"op": "matmul", "weight": "left"}, {"op": "matmul", "weight": "right"}]
        return [
            {"op": "sum", "branches": [[{"op": "matmul", "weight": "weight"}], low_rank]},
            {"op": "add", "value": "bias"},
        ]

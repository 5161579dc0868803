"""Diagonal scaling (DSM) and the output stage every adapter shares.

An adapter here is `base map -> optional DSM -> optional unit renormalisation`:

- the base map is what each adapter module fits (Procrustes, low-rank affine, MLP, ...);
- DSM (the paper's Diagonal Scaling Matrix) multiplies each output dimension j by s_j (and, with
  `dsm_bias`, adds b_j). It is fitted *after* the base map, in closed form, by per-dimension least
  squares of the base map's raw outputs on the training pairs against the old vectors. For the MLP
  too it is fitted afterwards on the trained network's outputs, not learned jointly;
- `normalize_output` (default True) scales each mapped vector to unit length, since the old index
  holds unit vectors. It never changes a ranking by inner product or by L2 distance to unit
  vectors (a positive per-query factor), but keeps scores comparable to the old queries'.

`MapAdapter` implements that pipeline once; a subclass supplies only the base map (`_fit_map`,
`_map`, `_param_names`, `_map_hparams`, and `_map_ops`, its serving form).

Why DSM changes almost nothing after ridge, low-rank affine (LA) and the MLP. The least-squares
scale of output j is s_j = <yhat_j, y_j> / <yhat_j, yhat_j> (yhat_j: the base map's output j over
the training pairs, y_j: the old vectors' coordinate j).

- After an unpenalised least-squares map the residual y_j - yhat_j is orthogonal to yhat_j, so
  s_j = 1 exactly and DSM is the identity: for ridge with alpha = 0 by the normal equations; for
  LA with alpha = 0 because A B = W V Vᵀ with V the top eigenvectors of M = WᵀXcᵀXcW, and
  Vᵀ M (I - V Vᵀ) = 0 (tests/test_adapters.py checks both). With the default small penalties
  s_j = 1 + O(alpha), nearly the same for every j (the penalty shrinks all outputs alike): a
  common factor that the unit renormalisation removes.
- Fitting s for the cosine after normalisation, or jointly with the MLP in its torch graph, would
  not help either: ridge, LA and the MLP end in a free linear layer (W, B, and W_lin, W2, b),
  which absorbs any diag(s) (W diag(s) is just another W). DSM adds no map these adapters cannot
  already represent; it can only recalibrate what their own fit left off, and least squares
  (ridge, LA, the MLP with loss="mse") leaves nothing. After the MLP trained on cosine, whose
  output scale is free up to a common factor, the least-squares DSM mostly rescales all
  dimensions alike, which the renormalisation again removes.
- DSM can matter only after a constrained map: Procrustes (orthogonal: no per-dimension gain of
  its own) and identity. `python -m drift.run` (offline default, seed 0) gives validation cosine
  0.7529 -> 0.7558 for Procrustes -> +DSM, but 0.7484 -> 0.7479 for ridge and 0.6682 -> 0.6680
  for LA.

So the paper's DSM gain for LA and MLP (+0.005 to 0.015 ARR) needs something these fits do not
have: a base map whose per-dimension output scales are not already optimal for its objective
(e.g. one trained by SGD for a fixed budget, or with a constraint or penalty that acts per
output), or a DSM fitted on a different objective or data than the base map. The paper does not
say how its DSM is fitted or trained.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Any

import numpy as np

from drift.adapters.base import Adapter
from drift.core.errors import CacheCorruptError, ConfigError
from drift.core.vectors import l2_normalize

DSM_SCALE, DSM_BIAS = "dsm_scale", "dsm_bias"
OUTPUT_EPS = 1e-12  # the unit renormalisation's floor on a row's norm (as served, too)


class DiagonalScaling:
    """y -> y * scale + bias, one scale (and bias) per output dimension."""

    def __init__(self, scale: np.ndarray, bias: np.ndarray | None = None) -> None:
        self.scale = np.asarray(scale, dtype=np.float32)
        self.bias = None if bias is None else np.asarray(bias, dtype=np.float32)

    @classmethod
    def fit(cls, y_hat: np.ndarray, y: np.ndarray, *, bias: bool) -> DiagonalScaling:
        """Per-dimension least squares of `y[:, j]` on `y_hat[:, j]` (with intercept if `bias`).

        A dimension whose base output has no spread (zero variance, or all zeros without bias)
        carries no information about its scale: it keeps scale 1.
        """
        y_hat, y = np.asarray(y_hat, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if bias:
            mh, my = y_hat.mean(axis=0), y.mean(axis=0)
            y_hat, y = y_hat - mh, y - my
        num = np.einsum("ij,ij->j", y_hat, y)
        den = np.einsum("ij,ij->j", y_hat, y_hat)
        flat = den <= 1e-12 * max(float(den.max(initial=0.0)), 1e-300)
        scale = np.where(flat, 1.0, num / np.where(flat, 1.0, den))
        return cls(scale, my - scale * mh if bias else None)

    def apply(self, y: np.ndarray) -> np.ndarray:
        y = y * self.scale
        return y if self.bias is None else y + self.bias

    def params(self) -> dict[str, np.ndarray]:
        out = {DSM_SCALE: self.scale}
        if self.bias is not None:
            out[DSM_BIAS] = self.bias
        return out


class MapAdapter(Adapter):
    """An adapter made of a fitted base map followed by the shared output stage (see module doc).

    Args:
        dsm: fit a diagonal scaling after the base map.
        dsm_bias: give the diagonal scaling a per-dimension bias too (only with `dsm`).
        normalize_output: scale every mapped vector to unit L2 norm.
    """

    def __init__(
        self, *, dsm: bool = False, dsm_bias: bool = False, normalize_output: bool = True
    ) -> None:
        super().__init__()
        if dsm_bias and not dsm:
            raise ConfigError(f"{self.name}: dsm_bias=True needs dsm=True")
        self.dsm, self.dsm_bias = bool(dsm), bool(dsm_bias)
        self.normalize_output = bool(normalize_output)
        self._weights: dict[str, np.ndarray] = {}
        self._scaling: DiagonalScaling | None = None

    # -- the base map, per subclass -----------------------------------------------------------
    @abstractmethod
    def _fit_map(
        self,
        x_new: np.ndarray,
        x_old: np.ndarray,
        x_new_val: np.ndarray | None,
        x_old_val: np.ndarray | None,
        seed: int,
    ) -> dict[str, np.ndarray]:
        """Fit the base map; return its arrays (float32), keyed by `_param_names()`."""

    @abstractmethod
    def _map(self, x: np.ndarray) -> np.ndarray:
        """Apply the base map (arrays in `self._weights`) to float32 rows."""

    def _param_names(self) -> tuple[str, ...]:
        """The keys `_fit_map` returns (may depend on hparams)."""
        return ()

    def _map_hparams(self) -> dict[str, Any]:
        """The base map's own constructor arguments."""
        return {}

    @abstractmethod
    def _map_ops(self) -> list[dict[str, Any]]:
        """The base map as serving operations (drift/serving/runtime.py's vocabulary) over the
        names of `_param_names()`; the output stage is added by `serving_ops`."""

    # -- Adapter ------------------------------------------------------------------------------
    def _fit(self, x_new, x_old, x_new_val, x_old_val, seed) -> None:
        self._use_map(self._fit_map(x_new, x_old, x_new_val, x_old_val, seed), x_new, x_old)
        self.fit_info["cosine/train"] = mean_cosine(self._transform(x_new), x_old)
        if x_new_val is not None and x_old_val is not None:
            self.fit_info["cosine/val"] = mean_cosine(self._transform(x_new_val), x_old_val)

    def _use_map(self, weights: dict[str, np.ndarray], x_new, x_old) -> None:
        """Take `weights` as the base map and fit the output stage after it on the training pairs
        (also how drift/adapters/penalty.py scores each candidate map of a penalty grid)."""
        self._weights = weights
        self._scaling = (
            DiagonalScaling.fit(self._map(x_new), x_old, bias=self.dsm_bias) if self.dsm else None
        )

    def _transform(self, x_new: np.ndarray) -> np.ndarray:
        y = self._map(x_new)
        if self._scaling is not None:
            y = self._scaling.apply(y)
        return l2_normalize(y, OUTPUT_EPS) if self.normalize_output else y

    def serving_ops(self) -> list[dict[str, Any]]:
        """The base map's operations (`_map_ops`), then the output stage's."""
        ops = self._map_ops()
        if self._scaling is not None:
            ops.append({"op": "mul", "value": DSM_SCALE})
            if self._scaling.bias is not None:
                ops.append({"op": "add", "value": DSM_BIAS})
        if self.normalize_output:
            ops.append({"op": "l2_normalize", "eps": OUTPUT_EPS})
        return ops

    def params(self) -> dict[str, np.ndarray]:
        scaling = self._scaling.params() if self._scaling is not None else {}
        return {**self._weights, **scaling}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        expected = set(self._param_names())
        if self.dsm:
            expected |= {DSM_SCALE, DSM_BIAS} if self.dsm_bias else {DSM_SCALE}
        if set(params) != expected:
            raise CacheCorruptError(
                f"{self.name}: saved weights hold {sorted(params)} but its hparams "
                f"{self.hparams()} need {sorted(expected)}"
            )
        self._weights = {k: np.asarray(params[k]) for k in self._param_names()}
        self._scaling = (
            DiagonalScaling(params[DSM_SCALE], params.get(DSM_BIAS)) if self.dsm else None
        )

    def hparams(self) -> dict[str, Any]:
        return {
            **self._map_hparams(),
            "dsm": self.dsm,
            "dsm_bias": self.dsm_bias,
            "normalize_output": self.normalize_output,
        }

    def _warn_if_underdetermined(self, n: int, d_in: int, consequence: str) -> None:
        """Warn when there are fewer pairs than input dimensions."""
        if n < d_in:
            warnings.warn(
                f"{self.name}: {n} training pairs for {d_in} input dimensions: the fit is "
                f"underdetermined; {consequence}",
                stacklevel=5,  # the caller of Adapter.fit
            )


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.einsum("ij,ij->i", l2_normalize(a), l2_normalize(b))))

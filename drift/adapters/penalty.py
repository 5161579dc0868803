"""Ridge penalties given as one number, or as a grid chosen on the validation pairs.

Ridge, low-rank affine (LA), OP + low-rank and the residual MLP's ridge start take a relative ridge
penalty (`RidgePath` in drift/adapters/baselines.py). A number is used as given. A list of two or
more is a grid: the base map is fitted on the training pairs at every value (the closed forms share
one eigendecomposition across the grid), each fit is scored by the mean cosine between its mapped
validation new vectors, after the output stage (DSM, unit renormalisation), and the validation old
vectors (the `cosine/val` every MapAdapter reports), and the best fit is kept; nothing else is
refitted. `fit_info[<penalty name>]` records the grid, each value's score and the choice.

The validation pairs are the run's `val` split (drift/experiment/fitting.py), never the gate's
pairs nor the evaluated queries. An adapter with a grid has looked at them (`uses_validation`), so
the gate does not estimate it from them. Without validation pairs (val_fraction = 0, or a routed
cluster holding none) VAL_FRACTION of the training pairs is held out with the seed, the grid is
scored on it, and the map is refitted on all the training pairs at the chosen value.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, NamedTuple

import numpy as np

from drift.adapters.scaling import MapAdapter, mean_cosine
from drift.core.errors import ConfigError

Penalty = float | list[float]  # one penalty, or a grid to choose from
VAL_FRACTION = 0.2  # share of the training pairs held out when no validation pairs are given


class Candidate(NamedTuple):
    """One grid value's fitted base map and the `fit_info` entries that go with it."""

    weights: dict[str, np.ndarray]
    info: dict[str, Any]


# (new vectors, old vectors, grid) -> one Candidate per grid value, in the grid's order.
FitPath = Callable[[np.ndarray, np.ndarray, tuple[float, ...]], Iterator[Candidate]]


def check_penalty(value: Any, what: str) -> Penalty:
    """`value` as a float, or as a list of floats when it is a list (a grid); ConfigError unless
    every value is a finite number >= 0 and a grid is non-empty. `what` names it in errors."""
    values = list(value) if isinstance(value, list | tuple) else [value]
    bad = [
        v
        for v in values
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < math.inf
    ]
    if bad or not values:
        raise ConfigError(
            f"{what} must be a finite number >= 0 or a non-empty list of them (a grid chosen on "
            f"the validation pairs), got {value!r}"
        )
    return [float(v) for v in values] if isinstance(value, list | tuple) else float(value)


def hold_out(x_new, x_old, rng: np.random.Generator):
    """Split off VAL_FRACTION of the pairs (at least one, leaving at least one) as validation:
    (train new, train old, held-out new, held-out old)."""
    n = x_new.shape[0]
    n_val = min(max(1, round(VAL_FRACTION * n)), n - 1)
    order = rng.permutation(n)
    val, train = order[:n_val], order[n_val:]
    return x_new[train], x_old[train], x_new[val], x_old[val]


def given_or_held_out(x_new, x_old, x_new_val, x_old_val, rng: np.random.Generator, info: dict):
    """The validation pairs as given, or (none given) VAL_FRACTION of the training pairs held out
    with `rng`: (train new, train old, validation new, validation old); `info["val_split"]` says
    which."""
    if x_new_val is not None and x_old_val is not None:
        info["val_split"] = "given"
        return x_new, x_old, x_new_val, x_old_val
    x_new, x_old, x_new_val, x_old_val = hold_out(x_new, x_old, rng)
    info["val_split"] = f"{x_new_val.shape[0]} of the training pairs (seeded)"
    return x_new, x_old, x_new_val, x_old_val


class PenalisedMap(MapAdapter):
    """A MapAdapter whose base map has a ridge penalty, fixed or chosen from a grid (module doc)."""

    penalty_name: ClassVar[str] = "alpha"  # the constructor argument holding the penalty

    @property
    def penalty_grid(self) -> tuple[float, ...]:
        value = getattr(self, self.penalty_name)
        return tuple(value) if isinstance(value, list) else (value,)

    @property
    def uses_validation(self) -> bool:  # type: ignore[override]
        return len(self.penalty_grid) > 1

    def _fit_penalised(
        self, path: FitPath, x_new, x_old, x_new_val, x_old_val, seed: int
    ) -> dict[str, np.ndarray]:
        """The base map's weights at the penalty (the best of the grid); records its info."""
        grid = self.penalty_grid
        if len(grid) == 1:
            best = next(path(x_new, x_old, grid))
            self.fit_info.update(best.info)
            return best.weights
        if x_new_val is None or x_old_val is None:
            x_fit, y_fit, x_score, y_score = hold_out(x_new, x_old, np.random.default_rng(seed))
            pairs = f"{x_score.shape[0]} of the training pairs (seeded), then refitted on all"
        else:
            x_fit, y_fit, x_score, y_score = x_new, x_old, x_new_val, x_old_val
            pairs = "given"
        candidates, scores = list(path(x_fit, y_fit, grid)), []
        for candidate in candidates:
            self._use_map(candidate.weights, x_fit, y_fit)
            scores.append(mean_cosine(self._transform(x_score), y_score))
        index = int(np.argmax(scores))  # a tie keeps the earlier value
        best, chosen = candidates[index], grid[index]
        self.fit_info[self.penalty_name] = {
            "grid": list(grid),
            "cosine/val": scores,
            "chosen": chosen,
            "pairs": pairs,
        }
        if pairs != "given":
            best = next(path(x_new, x_old, (chosen,)))
        self.fit_info.update(best.info)
        return best.weights

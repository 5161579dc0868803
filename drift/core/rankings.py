"""What a retrieval strategy returns and the evaluator scores: ranked corpus rows per query.

It lives below both retrieval/ (which produces it) and scoring/ (which reads it), so neither
imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class StrategyResult:
    """One strategy's answers. `ids`/`scores` are None when it is not applicable (`reason`)."""

    name: str
    applicable: bool
    reason: str = ""
    ids: np.ndarray | None = None
    scores: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    # What it costs in new-model document encodes (see drift.retrieval.mixed.encode_cost) and
    # the settings it ran with (family, depth, fraction, ...), both as stored in result files.
    cost: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # Rows [nq, C] (-1 padded) whose new-model vectors each query needs on demand (rerank), for
    # the query-stream simulation; None when a strategy encodes no document per query.
    candidates: np.ndarray | None = None

    @classmethod
    def not_applicable(cls, name: str, reason: str) -> StrategyResult:
        return cls(name=name, applicable=False, reason=reason)

    def summary(self) -> dict[str, Any]:
        """Everything but the arrays, as stored in result files."""
        return {
            "name": self.name,
            "applicable": self.applicable,
            "reason": self.reason,
            "timings": self.timings,
            "notes": self.notes,
            "cost": self.cost,
            "params": self.params,
        }

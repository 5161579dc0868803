"""A `drift recommend` prediction set beside the measurement of what it predicted.

    drift recommend --results results/beyond_paper/runs --corpus-size 60000 ... \\
        --check <results of the same strategies measured at 60,000 documents>

The prediction prices the strategies measured on a small corpus for the asked one (scaled as
`drift.migration.recommend.ASSUMPTIONS` say); the measurement prices the same request from runs
on the asked corpus itself, where nothing is scaled. Each strategy priced by both, under the same
traffic and with the same accrual, gives a row: predicted and measured encodes (share of the
corpus) and quality relative to the full re-index, and the errors (encodes predicted / measured,
quality predicted - measured). Where one side priced a strategy in several designs, its first
option in that side's ranking (cheapest reaching the target) stands for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from drift.core.errors import DataError
from drift.migration.recommend import Option, Recommendation


@dataclass(frozen=True)
class CheckRow:
    """One strategy, predicted and measured."""

    strategy: str
    accrual: str
    traffic: str
    predicted_share: float
    measured_share: float
    predicted_encodes: float
    measured_encodes: float
    predicted_relative: float
    measured_relative: float

    @property
    def encodes_ratio(self) -> float | None:
        """Predicted / measured encodes (None when the measurement encoded nothing and the
        prediction did)."""
        if self.measured_encodes == 0:
            return 1.0 if self.predicted_encodes == 0 else None
        return self.predicted_encodes / self.measured_encodes

    @property
    def relative_error(self) -> float:
        return self.predicted_relative - self.measured_relative

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "encodes_ratio": self.encodes_ratio,
            "relative_error": self.relative_error,
        }


def key_of(option: Option) -> tuple[str, str, str]:
    return option.strategy, option.accrual, option.traffic


def check_prediction(predicted: Recommendation, measured: Recommendation) -> list[CheckRow]:
    """The strategies both recommendations priced, in the measurement's ranking order.

    DataError when the two answer different questions (corpus size, metric, traffic, horizon)
    or share no strategy."""
    asked, got = predicted.request, measured.request
    for name in ("corpus_size", "metric", "popularity", "zipf_s", "horizon_days", "query_rate"):
        if getattr(asked, name) != getattr(got, name):
            raise DataError(
                f"the prediction and the measurement answer different requests: {name} "
                f"{getattr(asked, name)!r} vs {getattr(got, name)!r}"
            )
    first: dict[tuple[str, str, str], Option] = {}
    for option in predicted.options:
        first.setdefault(key_of(option), option)
    rows, seen = [], set()
    for option in measured.options:
        key = key_of(option)
        if key in seen or key not in first:
            continue
        seen.add(key)
        guess = first[key]
        rows.append(
            CheckRow(
                strategy=option.strategy,
                accrual=option.accrual,
                traffic=option.traffic,
                predicted_share=guess.share,
                measured_share=option.share,
                predicted_encodes=guess.encodes,
                measured_encodes=option.encodes,
                predicted_relative=guess.relative,
                measured_relative=option.relative,
            )
        )
    if not rows:
        raise DataError(
            "the prediction and the measurement priced no strategy in common (same strategy, "
            "accrual and traffic)"
        )
    return rows


def check_text(rows: list[CheckRow], predicted: Recommendation, measured: Recommendation) -> str:
    """The rows as a markdown table, with what each side was measured on."""
    r = measured.request
    lines = [
        f"# drift recommend --check: prediction against measurement ({r.metric}, "
        f"{r.corpus_size:,} documents, {r.horizon_queries:,.0f} queries, "
        f"{r.traffic_text()} traffic)",
        "",
        f"Predicted from: {predicted.context['dataset']}, corpus "
        f"{'/'.join(f'{n:,}' for n in predicted.context['n_corpus'])} documents, "
        f"{len(predicted.context['files'])} result file(s)"
        + (
            f"; query pool {predicted.request.query_pool:,} given"
            if predicted.request.query_pool
            else "; query pool growing with the corpus (no --query-pool)"
        )
        + ".",
        f"Measured on: {measured.context['dataset']}, corpus "
        f"{'/'.join(f'{n:,}' for n in measured.context['n_corpus'])} documents, "
        f"{len(measured.context['files'])} result file(s).",
        "",
        "| strategy | cost accrues | share encoded: predicted | measured | encodes predicted / "
        "measured | quality / full re-index: predicted | measured | error |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        accrual = f"{row.accrual}, {row.traffic}" if row.traffic else row.accrual
        lines.append(
            f"| {row.strategy} | {accrual} | {row.predicted_share:.1%} | "
            f"{row.measured_share:.1%} | "
            f"{'n/a' if row.encodes_ratio is None else f'{row.encodes_ratio:.2f}'} | "
            f"{row.predicted_relative:.3f} | {row.measured_relative:.3f} | "
            f"{row.relative_error:+.3f} |"
        )
    return "\n".join(lines) + "\n"

"""Measured quality and cost per strategy, read from result files.

The rows and curves that `drift recommend` prices and drift/report/migration_figures.py draws:
the rows of deployable strategies (ResultRecord.rows: one per run x protocol x strategy x metric,
with its cost in new-model document encodes), the Pareto frontier of cost against quality, and
stream and timeline curves averaged over runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from drift.core.errors import DataError
from drift.core.records import ARR_PREFIX, ResultRecord


def priced_rows(record: ResultRecord) -> list[dict[str, Any]]:
    """The rows of `record` (ResultRecord.rows) that price a deployable strategy: those with a
    cost (the ground-truth ceiling has none) and a measured value, of the metrics themselves
    (their ARR rows repeat `relative`: they are divided by the full re-index's already)."""
    return [
        row
        for row in record.rows()
        if row["share_encoded"] is not None
        and row["value"] is not None
        and not row["metric"].startswith(ARR_PREFIX)
    ]


def measure_name(row: dict[str, Any]) -> str:
    """A row's metric as `drift recommend --metric` and the migration figures name it:
    "<protocol>/<metric>" (e.g. qrels/ndcg@10)."""
    return f"{row['protocol']}/{row['metric']}"


def pareto_frontier(costs: Sequence[float], qualities: Sequence[float]) -> np.ndarray:
    """Which points no other point dominates (cost as low or lower and quality as high or higher,
    one of them strictly); of identical points the first is kept. Returns a bool mask."""
    costs, qualities = np.asarray(costs, dtype=float), np.asarray(qualities, dtype=float)
    if costs.shape != qualities.shape or costs.ndim != 1:
        raise DataError(f"costs {costs.shape} and qualities {qualities.shape} must be 1-D alike")
    on = np.zeros(costs.size, dtype=bool)
    best = -np.inf
    for i in np.lexsort((np.arange(costs.size), -qualities, costs)):  # cost up, quality down
        if qualities[i] > best:
            on[i], best = True, qualities[i]
    return on


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    data = np.asarray(values, dtype=float)
    return float(data.mean()), float(data.std(ddof=1)) if data.size > 1 else None


def mean_of(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row.get(key) is not None]
    return float(np.mean(values)) if values else None


def mean_stream(streams: Sequence[dict[str, Any]], strategy: str) -> dict[str, Any]:
    """One strategy's curves averaged over several runs' stream sections, each interpolated onto
    the first one's checkpoints (queries served); running means not yet defined are NaN."""
    queries = np.asarray(streams[0]["checkpoints"], dtype=float)

    def mean_curve(pick: Any) -> list[float]:
        curves = [
            np.interp(queries, s["checkpoints"], as_floats(pick(s["strategies"][strategy])))
            for s in streams
        ]
        return np.mean(curves, axis=0).tolist()

    first = streams[0]["strategies"][strategy]
    return {
        "queries": queries.tolist(),
        "share_encoded": mean_curve(lambda c: c["share_encoded"]),
        "quality": {
            metric: mean_curve(lambda c, metric=metric: c["quality"][metric])
            for metric in first.get("quality", {})
        },
        "n_corpus": int(np.mean([s["n_corpus"] for s in streams])),
        "length": int(max(s["length"] for s in streams)),
        "n_unique_queries": int(np.mean([s["n_unique_queries"] for s in streams])),
        "n_streams": len(streams),
    }


def as_floats(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def streams_of(records: Sequence[ResultRecord], strategy: str) -> list[dict[str, Any]]:
    """The stream sections of the records that streamed `strategy`."""
    return [
        r.stream for r in records if r.stream and strategy in (r.stream.get("strategies") or {})
    ]


def stream_curve(records: Sequence[ResultRecord], strategy: str) -> dict[str, Any] | None:
    """The strategy's stream curves averaged over the records that have one; None if none."""
    streams = streams_of(records, strategy)
    return mean_stream(streams, strategy) if streams else None


def timeline_curves(records: Sequence[ResultRecord], metric: str) -> dict[str, dict[str, Any]]:
    """Per timeline mode: quality / full re-index vs share of the corpus encoded, averaged over
    the records' timelines (same hours assumed); {} when none measured `metric`."""
    timelines = [r.timeline for r in records if r.timeline]
    curves: dict[str, dict[str, Any]] = {}
    for mode in dict.fromkeys(m for t in timelines for m in t.get("modes", {})):
        relative, shares = [], []
        for t in timelines:
            quality_of = (t["modes"].get(mode) or {}).get(metric)
            reference = ((t.get("references") or {}).get("full_reindex") or {}).get(metric)
            if not quality_of or not reference:
                continue
            ref = as_floats(np.atleast_1d(np.asarray(reference["mean"], dtype=object)))
            relative.append(as_floats(quality_of["mean"]) / ref)
            # a re-rank mode counts its own encodes (background + on demand); the others pay
            # the background job's
            encodes = (t["modes"][mode] or {}).get("new_doc_encodes", t.get("new_doc_encodes"))
            share = (
                np.asarray(encodes, dtype=float) / t["n_corpus"]
                if encodes is not None
                else np.asarray(t["share_migrated"], dtype=float)
            )
            shares.append(share)
        if relative:
            curves[mode] = {
                "hours": list(timelines[0]["hours"]),
                "relative": np.mean(relative, axis=0).tolist(),
                "share_encoded": np.mean(shares, axis=0).tolist(),
                "n_corpus": int(timelines[0]["n_corpus"]),
                "n_timelines": len(relative),
            }
    return curves

"""Measured quality and cost per strategy, read from result files.

The rows and curves that `drift recommend` prices and drift/report/migration_figures.py draws: one
row per run x protocol x deployable strategy x metric with its cost in new-model document encodes,
the Pareto frontier of cost against quality, and stream and timeline curves averaged over runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from drift.core.errors import DataError
from drift.core.records import design_key, experiment_of, read_results


def read_records(root: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) of every result JSON under `root`; DataError when there is none."""
    found = [(Path(root) / path, record) for path, record in read_results(root)]
    if not found:
        raise DataError(
            f"no result files under {root}; make them with python -m drift.run "
            "(e.g. -m experiment=beyond_paper)"
        )
    return found


def strategy_rows(record: dict[str, Any], file: str | Path = "") -> list[dict[str, Any]]:
    """One row per protocol x deployable strategy x metric of one result record.

    `metric` is "<protocol>/<metric>" (e.g. qrels/ndcg@10); `relative` is the value divided by
    the full re-index's in the same run and protocol (None without one). Strategies without a
    cost (the ground-truth ceiling: not deployable) are left out.
    """
    models = record["models"]
    run = {
        "file": str(file),
        "dataset": record["dataset"]["name"],
        "old_model": models["old"]["name"],
        "new_model": models["new"]["name"],
        "experiment": experiment_of(record),
        "design": design_key(record.get("config", {})),
        "seed": record.get("seed"),
        "debug": bool(record.get("debug")),
        "n_corpus": int(record["dataset"]["n_corpus"]),
        "n_queries": int(record["dataset"]["n_queries"]),
    }
    rows = []
    for protocol, block in record["metrics"]["protocols"].items():
        strategies = block["strategies"]
        reference = (strategies.get("full_reindex") or {}).get("metrics", {})
        for name, result in strategies.items():
            cost = result.get("cost") or {}
            if "share_encoded" not in cost:
                continue
            params = result.get("params") or {}
            for metric, summary in result.get("metrics", {}).items():
                value = summary.get("mean")
                if value is None:
                    continue
                ref = (reference.get(metric) or {}).get("mean")
                rows.append(
                    {
                        **run,
                        "strategy": name,
                        "family": params.get("family", "paper"),
                        "protocol": protocol,
                        "metric": f"{protocol}/{metric}",
                        "value": float(value),
                        "relative": float(value) / ref if ref else None,
                        "share_encoded": float(cost["share_encoded"]),
                        "new_doc_encodes": int(cost["new_doc_encodes"]),
                        "cold_encodes_per_query": cost.get("cold_encodes_per_query"),
                        "candidates_per_query": cost.get("candidates_per_query"),
                        "us_per_query": result.get("timings", {}).get("us_per_query"),
                    }
                )
    return rows


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


def stream_curve(records: Sequence[dict[str, Any]], strategy: str) -> dict[str, Any] | None:
    """The strategy's stream curves averaged over the records that have one; None if none."""
    streams = [
        r["stream"]
        for r in records
        if strategy in ((r.get("stream") or {}).get("strategies") or {})
    ]
    return mean_stream(streams, strategy) if streams else None


def timeline_curves(records: Sequence[dict[str, Any]], metric: str) -> dict[str, dict[str, Any]]:
    """Per timeline mode: quality / full re-index vs share of the corpus encoded, averaged over
    the records' timelines (same hours assumed); {} when none measured `metric`."""
    timelines = [r["timeline"] for r in records if r.get("timeline")]
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

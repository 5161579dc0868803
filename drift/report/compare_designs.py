"""Paired differences between the designs of one sweep, seed by seed.

    drift compare-designs results/query_log_pairs/runs \
        --baseline pair_role=document --within op_center --out results/query_log_pairs/paired.md

A design is the set of settings in which a folder's runs differ (plot_strategy_bars' `variant`).
Each design is compared with its baseline on the same seed: the same corpus subset, evaluated
queries and sampling seeds, so one seed's difference is free of the variation both designs share
and a few seeds can separate designs whose intervals over seeds overlap. A design's baseline is
the one design that matches every `--baseline KEY=VALUE` and, for each `--within` key, has the
design's own value. Per protocol, metric and strategy: the mean over seeds, the paired difference
to the baseline (mean [95% t-interval over seeds]) and in how many seeds it is above zero.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from drift.report.collect import t_half_width
from drift.report.figures import ordered
from drift.report.strategy_bars import merged_rows, setting_values, varying_settings

PAIRED_BY = ["dataset", "pair", "seed"]


def parse_settings(pairs: Sequence[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--baseline takes KEY=VALUE, got {pair!r}")
        settings[key] = value
    return settings


def canonical(value: str) -> str:
    """One spelling per setting value: true/True, 1200/1200.0 compare equal."""
    try:
        number = float(value)
    except ValueError:
        return value.lower()
    return str(int(number)) if number.is_integer() else str(number)


def baselines(
    designs: pd.DataFrame, baseline: dict[str, str], within: Sequence[str]
) -> dict[str, str | None]:
    """Each design's (variant's) baseline variant; None where no design matches its --within
    values. Raises SystemExit when no design matches --baseline at all."""
    canon = designs.map(canonical)
    wanted = pd.Series({k: canonical(v) for k, v in baseline.items()})
    matching = canon[(canon[list(baseline)] == wanted).all(axis=1)]
    if matching.empty:
        values = "; ".join(f"{k}: {', '.join(sorted(set(designs[k])))}" for k in baseline)
        raise SystemExit(f"no design matches --baseline; the runs have {values}")
    chosen: dict[str, str | None] = {}
    for variant, design in canon.iterrows():
        same = matching[(matching[list(within)] == design[list(within)]).all(axis=1)]
        if len(same) > 1:
            differ = [c for c in same if same[c].nunique() > 1]
            raise SystemExit(
                f"{len(same)} designs match --baseline for {variant!r}; name the settings to "
                f"hold fixed with --within (they differ in: {', '.join(differ)})"
            )
        chosen[str(variant)] = str(same.index[0]) if len(same) else None
    return chosen


def paired_table(
    frame: pd.DataFrame, baseline: dict[str, str], within: Sequence[str]
) -> pd.DataFrame:
    """One row per protocol, metric, strategy and design: mean over seeds and, against the
    design's baseline on the same seeds, the paired difference with its 95% t-interval."""
    varying = varying_settings(frame)
    unknown = sorted((set(baseline) | set(within)) - set(varying))
    if unknown:
        raise SystemExit(
            f"{', '.join(unknown)}: not a setting the runs differ in; they differ in: "
            f"{', '.join(varying) or 'nothing'}"
        )
    if len(frame[["dataset", "pair"]].drop_duplicates()) > 1:
        raise SystemExit("the runs hold several datasets or model pairs: compare one at a time")
    designs = frame[varying].apply(setting_values).assign(variant=frame["variant"])
    base_of = baselines(designs.drop_duplicates().set_index("variant"), baseline, within)
    keys = ["protocol", "metric", "strategy", "variant", *PAIRED_BY]
    repeated = frame.duplicated(keys)
    if repeated.any():
        print(
            f"warning: {repeated.sum()} rows repeat a design and seed (reruns); "
            "the first of each is used",
            file=sys.stderr,
        )
    values = frame[~repeated].set_index(keys)["value"].sort_index()
    measured = set(values.index.droplevel(PAIRED_BY))  # (protocol, metric, strategy, design)
    rows = []
    for (protocol, metric, strategy, variant), own in values.groupby(level=[0, 1, 2, 3]):
        base = base_of.get(variant)
        row = {
            "protocol": protocol,
            "metric": metric,
            "strategy": strategy,
            "design": variant,
            "n_seeds": len(own),
            "mean": own.mean(),
            "baseline": base,
        }
        key = (protocol, metric, strategy, base)
        if base is not None and base != variant and key in measured:
            theirs = values.loc[key]
            diff = (own.droplevel([0, 1, 2, 3]) - theirs).dropna()
            n = len(diff)
            half = t_half_width(diff.std(ddof=1), n) if n > 1 else np.nan
            row |= {
                "n_paired": n,
                "diff": diff.mean(),
                "diff_ci_low": diff.mean() - half,
                "diff_ci_high": diff.mean() + half,
                "seeds_above": int((diff > 0).sum()),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, baseline: dict[str, str], within: Sequence[str]) -> str:
    """Per protocol and metric, one row per strategy and design (plot_strategy_bars.merged_rows:
    designs with the same cells share a row)."""
    held = f", same {', '.join(within)}" if within else ""
    lines = [
        f"Paired differences against {', '.join(f'{k}={v}' for k, v in baseline.items())}"
        f"{held}, seed by seed (same dataset, model pair and seed); mean over seeds, "
        "difference [95% t-interval over seeds], seeds in which the design is above its "
        "baseline. Built by drift/report/compare_designs.py from the result files.",
    ]
    for (protocol, metric), part in table.groupby(["protocol", "metric"], sort=False):
        lines += [
            "",
            f"## {protocol} {metric}",
            "",
            "| strategy (design) | mean | paired difference [95% CI] | seeds above |",
            "|---|---:|---:|---:|",
        ]
        for strategy in ordered(part["strategy"].unique()):
            mine = part[part["strategy"] == strategy]
            rows = [(row.design, cells_of(row)) for row in mine.itertuples()]
            lines += merged_rows(strategy, rows)
    return "\n".join(lines) + "\n"


def cells_of(row: Any) -> tuple[str, ...]:
    if row.baseline == row.design:
        return f"{row.mean:.3f}", "(baseline)", ""
    if pd.isna(row.baseline):
        return f"{row.mean:.3f}", "no baseline", ""
    if not getattr(row, "n_paired", 0) > 0:
        return f"{row.mean:.3f}", "no seed shared with the baseline", ""
    interval = (
        f" [{row.diff_ci_low:+.3f}, {row.diff_ci_high:+.3f}]" if row.n_paired > 1 else " (1 seed)"
    )
    above = f"{int(row.seeds_above)}/{int(row.n_paired)}"
    return f"{row.mean:.3f}", f"{row.diff:+.3f}{interval}", above

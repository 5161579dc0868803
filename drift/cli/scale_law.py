"""The scale law of corpus-size sweeps: per-tenfold slopes and baseline crossings, CIs over seeds.

drift scale-law --help
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drift.cli import refused
from drift.core.errors import DriftError
from drift.report.collect import collect_strategies
from drift.report.figures import SAVE, slug
from drift.report.scale_law import CURVE, figure, markdown, scale_law


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drift scale-law", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="folders of result files")
    parser.add_argument("--out", type=Path, required=True, help="folder for tables and figures")
    parser.add_argument(
        "--metric",
        action="append",
        help="metric to fit, under every protocol (repeatable; default: kNN recall@10 and "
        "qrels ndcg@10)",
    )
    parser.add_argument("--baseline", default="status_quo", help="strategy of the differences")
    parser.add_argument(
        "--strategy", action="append", help="keep this strategy only (repeatable; default all)"
    )
    args = parser.parse_args(argv)
    try:
        frame = collect_strategies(args.results)
        points, laws = scale_law(frame, args.metric, args.baseline, args.strategy)
    except (DriftError, ValueError) as err:
        return refused("drift scale-law", err)
    args.out.mkdir(parents=True, exist_ok=True)
    points.to_csv(args.out / "points.csv", index=False, float_format="%.6g")
    laws.to_csv(args.out / "laws.csv", index=False, float_format="%.6g")
    table = markdown(laws)
    (args.out / "laws.md").write_text(table)
    for key, curve in points.groupby(CURVE, sort=True, dropna=False):
        if curve["n_corpus"].nunique() < 2:
            continue
        of_curve = laws.merge(curve[CURVE].drop_duplicates(), on=CURVE)
        experiment, dataset, pair, level, index, protocol, metric = key
        drift_level = "" if pd.isna(level) else f" level {level}"
        title = f"{experiment}: {dataset}{drift_level}, {pair}, {index}, {protocol} {metric}"
        fig = figure(curve, of_curve, title)
        name = slug(f"{experiment}--{dataset}{drift_level}--{index}--{protocol}--{metric}")
        for suffix in (".png", ".pdf"):
            fig.savefig(args.out / f"{name}{suffix}", **SAVE)
    print(table, end="")
    print(f"wrote {args.out}/points.csv, laws.csv, laws.md and one figure per curve")
    return 0

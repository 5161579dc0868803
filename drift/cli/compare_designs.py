"""Paired differences between designs of one sweep, against a baseline.

drift compare-designs --help
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drift.cli import refused
from drift.core.errors import DriftError
from drift.report.compare_designs import markdown, paired_table, parse_settings
from drift.report.strategy_bars import load_runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="drift compare-designs", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("results", type=Path, help="a folder of result files (one sweep)")
    parser.add_argument(
        "--baseline", nargs="+", required=True, metavar="KEY=VALUE", help="the baseline design"
    )
    parser.add_argument("--within", nargs="*", default=[], help="settings held fixed in a pair")
    parser.add_argument(
        "--metrics", default="knn/recall@10,qrels/ndcg@10", help="protocol/metric, comma-separated"
    )
    parser.add_argument("--strategies", default="adapter/", help="strategy name prefix")
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    args = parser.parse_args(argv)

    try:
        frame, note = load_runs(args.results)
    except DriftError as err:
        return refused("drift compare-designs", err)
    wanted = [tuple(m.split("/", 1)) for m in args.metrics.split(",")]
    keep = pd.Series(False, index=frame.index)
    for protocol, metric in wanted:
        keep |= (frame["protocol"] == protocol) & (frame["metric"] == metric)
    frame = frame[keep & frame["strategy"].str.startswith(args.strategies)]
    if frame.empty:
        print(f"error: no {args.strategies}* rows with {args.metrics}", file=sys.stderr)
        return 2
    baseline = parse_settings(args.baseline)
    text = note + markdown(paired_table(frame, baseline, args.within), baseline, args.within)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0

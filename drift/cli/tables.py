"""Tidy tables (CSV, Parquet) of folders of result files, and their summary over seeds.

drift tables --help
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from drift.cli import refused
from drift.core.errors import DriftError
from drift.report.collect import collect_strategies, print_reruns, write_tables


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drift tables", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", default=["results/runs"], help="result folders")
    parser.add_argument("--out", default="results/collected", help="output folder")
    args = parser.parse_args(argv)
    try:
        frame = collect_strategies(args.results)
    except (DriftError, ValueError) as err:
        return refused("drift tables", err)
    for path in write_tables(frame, args.out):
        print(f"wrote {path}")
    n_runs = frame["file"].nunique()
    print(f"{n_runs} runs, {len(frame)} rows, {frame['group'].nunique()} designs")
    print_reruns(frame)
    if frame["debug"].any():
        print("WARNING: debug (smoke) runs are included; their numbers are not results.")
    return 0

"""The paper's figures from result files.

drift figures --help
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import matplotlib.pyplot as plt

from drift.cli import refused
from drift.core.errors import DriftError
from drift.report.collect import PooledDesignsError, collect_strategies, print_reruns
from drift.report.figures import write_all


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drift figures", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", default=["results/runs"], help="result folders")
    parser.add_argument("--out", default="results/figures", help="output folder")
    args = parser.parse_args(argv)
    plt.switch_backend("Agg")
    try:
        frame = collect_strategies(args.results)
    except (DriftError, ValueError) as err:
        return refused("drift figures", err)
    try:
        written, skipped = write_all(frame, args.out)
    except PooledDesignsError as err:
        return refused("drift figures", err)
    for path in written:
        print(f"wrote {path}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    print_reruns(frame)
    if frame["debug"].any():
        print("WARNING: debug (smoke) runs were found; figures made only of them say so.")
    return 0

"""Cost-vs-quality, query-stream and timeline figures from result files.

drift plot-migration --help
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt

from drift.cli import refused
from drift.core.errors import DriftError
from drift.report.migration_figures import write_all


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="drift plot-migration", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("results", type=Path, help="folder of result files (searched recursively)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/figures/migration"),
        help="folder for the figures",
    )
    args = parser.parse_args(argv)
    plt.switch_backend("Agg")
    try:
        written, skipped = write_all(args.results, args.out)
    except (DriftError, ValueError) as err:
        return refused("drift plot-migration", err)
    for path in written:
        print(f"wrote {path}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    return 0

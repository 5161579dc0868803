"""Two result files of one config (e.g. CPU vs GPU) side by side.

drift compare-runs --help
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from drift.cli import refused
from drift.core.errors import DataError
from drift.core.records import ResultRecord
from drift.report.compare_runs import compare, config_differences


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="drift compare-runs", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("files", nargs=2, type=Path, help="the two result files")
    parser.add_argument(
        "--labels", nargs=2, default=["A", "B"], help="column names of the two runs"
    )
    parser.add_argument("--metric", default="recall@10", help="the metric to compare")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    try:
        records = [ResultRecord.from_path(path) for path in args.files]
    except DataError as err:
        return refused("drift compare-runs", err)
    differing = config_differences(records[0].config, records[1].config)
    if differing:
        print(f"the two runs' configs differ in: {', '.join(differing)}", file=sys.stderr)
        return 2
    report, _ = compare(records, args.labels, args.metric)
    header = f"{' vs '.join(f'`{p.name}`' for p in args.files)} (same resolved config)\n\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(header + report)
    print(header + report)
    return 0

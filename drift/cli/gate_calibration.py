"""How well the gate's estimate predicted the measured ARR, over many runs.

drift gate-calibration --help
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from drift.cli import refused
from drift.core.errors import DataError
from drift.core.records import ResultRecord
from drift.report.figures import SAVE
from drift.report.gate_calibration import figure, rows_of, summary_of


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="drift gate-calibration", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("results", nargs="+", type=Path, help="folders of result files")
    parser.add_argument("--adapters-dir", type=Path, help="where moved artifacts now live")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/gate_calibration"),
        help="folder for the table, summary and figure",
    )
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples")
    args = parser.parse_args(argv)

    try:
        records = [r for r in ResultRecord.iter(args.results) if not r.debug]
    except DataError as err:
        return refused("drift gate-calibration", err)
    skipped: Counter[str] = Counter()
    rows = [
        {"file": record.file, **row}
        for record in records
        for row in rows_of(record.data, args.adapters_dir, args.n_boot, skipped)
    ]
    if not rows:
        print(f"error: no run with its artifacts under {args.results}", file=sys.stderr)
        return 2
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "calibration.csv", index=False)
    summary = summary_of(table)
    summary["skipped"] = dict(skipped)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    fig = figure(table)
    for suffix in (".png", ".pdf"):
        fig.savefig(args.out / f"calibration{suffix}", **SAVE)
    for name, acc in summary["estimators"].items():
        print(
            f"{name}: mean error {acc['bias_mean']:+.3f}, "
            f"mean |error| {acc['abs_error_mean']:.3f}, "
            f"Spearman {acc['spearman'] or float('nan'):.3f} "
            f"({len(table)} adapters, {summary['n_runs']} runs)"
        )
    print(f"wrote {args.out}/calibration.csv, summary.json, calibration.png/.pdf")
    return 0

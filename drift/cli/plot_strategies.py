"""Every strategy's Recall@10 as bars, with a table, for one results folder.

drift plot-strategies --help
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from drift.cli import refused
from drift.core.errors import DriftError
from drift.report.figures import SAVE
from drift.report.strategy_bars import figure, load_runs, table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="drift plot-strategies", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("results", type=Path, help="a folder of result files")
    parser.add_argument("--out", type=Path, default=None, help="default: the results folder")
    args = parser.parse_args(argv)
    try:
        frame, note = load_runs(args.results)
    except DriftError as err:
        return refused("drift plot-strategies", err)
    out = args.out or args.results
    out.mkdir(parents=True, exist_ok=True)
    fig = figure(frame, note)
    for suffix in (".png", ".pdf"):
        fig.savefig(out / f"strategies_r10{suffix}", **SAVE)
    (out / "strategies.md").write_text(table(frame, note), encoding="utf-8")
    print(f"wrote {out / 'strategies_r10.png'}, .pdf and {out / 'strategies.md'}")
    return 0

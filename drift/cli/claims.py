"""The claims ledger: each of the paper's claims beside what the committed results measured.

drift claims                                  # results/ -> results/claims/claims.md, .json
drift claims --results results --out /tmp/claims
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from drift.cli import refused
from drift.core.errors import DriftError
from drift.report.claims import ledger, write


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="drift claims", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="the committed results folder")
    parser.add_argument("--out", default="results/claims", help="where claims.md/.json go")
    args = parser.parse_args(argv)
    try:
        entries = ledger(args.results)
    except DriftError as err:
        return refused("drift claims", err)
    for path in write(entries, args.out):
        print(f"wrote {path}")
    for entry in entries:
        print(f"{entry.verdict:>17}  {entry.claim}")
    return 0

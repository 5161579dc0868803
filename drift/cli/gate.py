"""Decide from held-out pairs whether an adapter is good enough to serve.

drift gate --help
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from drift.adapters.base import load_adapter
from drift.cli import refused
from drift.core.errors import DriftError
from drift.migration.gate import EXIT_STATUS, evaluate_gate, load_pairs, refuse_seen_pairs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="drift gate", description=__doc__.split("\n")[0])
    parser.add_argument("--adapter-dir", required=True, help="folder written by Adapter.save")
    parser.add_argument("--pairs", required=True, help=".npz with new, old (, old_corpus)")
    parser.add_argument("--threshold", type=float, default=0.9, help="minimum ARR@k to keep")
    parser.add_argument("--k", type=int, default=10, help="the cut-off of ARR@k")
    parser.add_argument(
        "--corpus-size", type=int, help="items in the index: estimate ARR at corpus scale"
    )
    parser.add_argument(
        "--rule",
        choices=("ci_low", "mean"),
        default="ci_low",
        help="compare the threshold with the interval's lower end or the mean",
    )
    parser.add_argument(
        "--confidence", type=float, default=0.95, help="level of the bootstrap interval"
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--json", help="write the report here (e.g. for drift export --metrics)")
    args = parser.parse_args(argv)
    try:
        pairs = load_pairs(args.pairs)
        refuse_seen_pairs(args.adapter_dir, args.pairs, pairs)
        report = evaluate_gate(
            load_adapter(args.adapter_dir),
            pairs["new"],
            pairs["old"],
            old_corpus=pairs.get("old_corpus"),
            corpus_size=args.corpus_size,
            threshold=args.threshold,
            k=args.k,
            rule=args.rule,
            n_boot=args.n_boot,
            confidence=args.confidence,
            seed=args.seed,
        )
    except (DriftError, OSError) as err:
        sys.exit(refused("drift gate", err))
    print(report.text())
    if args.json:
        from drift.core.records import to_jsonable, write_json_atomic

        write_json_atomic(Path(args.json), to_jsonable({"gate": report.to_dict()}))
    sys.exit(EXIT_STATUS[report.decision])

"""Recommend a migration strategy from measured results, traffic and a target.

drift recommend --help
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace

from drift.cli import refused
from drift.core.errors import ConfigError, DriftError
from drift.core.records import ResultRecord, to_jsonable
from drift.migration.prediction_check import check_prediction, check_text
from drift.migration.recommend import DEFAULT_METRICS, Request, recommend
from drift.migration.stream import POPULARITIES


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="drift recommend", description=__doc__.split("\n")[0])
    parser.add_argument("--results", required=True, help="folder of result JSON files")
    parser.add_argument("--corpus-size", type=float, required=True, help="N documents")
    parser.add_argument(
        "--encode-rate",
        type=float,
        help="new-model documents/s (default: the rate measured in the results' stream runs)",
    )
    parser.add_argument("--query-rate", type=float, required=True, help="queries/s")
    parser.add_argument(
        "--target",
        type=float,
        required=True,
        help="quality to reach, as a fraction of the full re-index's (e.g. 0.95)",
    )
    parser.add_argument(
        "--metric",
        help=f"protocol/metric (default: {DEFAULT_METRICS[0]}, else {DEFAULT_METRICS[1]})",
    )
    parser.add_argument(
        "--horizon-days", type=float, default=30.0, help="days of traffic the choice must serve"
    )
    parser.add_argument(
        "--popularity",
        choices=POPULARITIES,
        help="the traffic's query popularity, as the stream runs measure it (default: the "
        "costliest measured for each strategy, a worst case)",
    )
    parser.add_argument(
        "--zipf-s", type=float, help="the Zipf exponent of zipf traffic (default: any measured)"
    )
    parser.add_argument(
        "--query-pool",
        type=int,
        help="distinct queries the traffic draws from (default: a pool that grows with the "
        "corpus, as many queries per document as measured)",
    )
    parser.add_argument(
        "--check",
        metavar="MEASURED",
        help="folder of result files measured at the asked corpus size: print the prediction "
        "beside that measurement, strategy by strategy, with the errors",
    )
    parser.add_argument("--dataset", help="choose a dataset when the results hold several")
    parser.add_argument("--new-model", help="choose a new model when the results hold several")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    try:
        if not (math.isfinite(args.corpus_size) and args.corpus_size == int(args.corpus_size)):
            raise ConfigError(f"--corpus-size must be a whole number, got {args.corpus_size}")
        request = Request(
            corpus_size=int(args.corpus_size),
            encode_rate=args.encode_rate,
            query_rate=args.query_rate,
            target=args.target,
            metric=args.metric,
            horizon_days=args.horizon_days,
            popularity=args.popularity,
            zipf_s=args.zipf_s,
            query_pool=args.query_pool,
        )
        result = recommend(
            ResultRecord.iter(args.results),
            request,
            dataset=args.dataset,
            new_model=args.new_model,
        )
        if args.check is not None:
            # measured at the asked size: read from its own curves, nothing modelled
            measured = recommend(ResultRecord.iter(args.check), replace(request, query_pool=None))
            rows = check_prediction(result, measured)
    except (DriftError, OSError) as err:
        sys.exit(refused("drift recommend", err))
    if args.check is not None:
        if args.json:
            check = {
                "prediction": result.to_dict(),
                "measurement": measured.to_dict(),
                "check": [row.to_dict() for row in rows],
            }
            print(json.dumps(to_jsonable(check), indent=2, allow_nan=False))
        else:
            print(check_text(rows, result, measured), end="")
        sys.exit(0)
    if args.json:
        print(json.dumps(to_jsonable(result.to_dict()), indent=2, allow_nan=False))
    else:
        print(result.text(), end="")
    sys.exit(0 if result.recommended is not None else 1)

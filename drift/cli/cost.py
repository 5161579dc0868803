"""Price adapter vs full re-index vs dual-index serving at corpus scale.

drift cost --help
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from drift.cli import refused
from drift.core.errors import ConfigError, DriftError
from drift.migration.cost import (
    ASSUMED_BUILD_RATE,
    ASSUMED_FIT_SECONDS,
    ASSUMED_HARDWARE,
    Hardware,
    Workload,
    build_table,
    markdown,
    measure_encode_rate,
    measure_fit_seconds,
    measure_index_build_rate,
)


def parse_n(text: str) -> list[int]:
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(f"--n takes comma-separated numbers like 1e6,1e8, got {text!r}") from err
    if not values or min(values) < 1:
        raise ConfigError(f"--n needs positive item counts, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="drift cost", description=__doc__.split("\n")[0])
    parser.add_argument("--n", default="1e6,1e8,1e9", help="corpus sizes, comma-separated")
    parser.add_argument(
        "--n-pairs", type=int, default=20_000, help="pairs both models encode for the adapter"
    )
    parser.add_argument("--d-old", type=int, default=384, help="old model's dimension")
    parser.add_argument("--d-new", type=int, default=768, help="new model's dimension")
    parser.add_argument(
        "--backfill-fraction",
        type=float,
        default=0.05,
        help="share of the corpus re-encoded by partial backfill",
    )
    parser.add_argument(
        "--daily-writes",
        type=float,
        default=0.01,
        help="items written per day as a share of N (assumed default: 1%%)",
    )
    parser.add_argument(
        "--migration-hours",
        type=float,
        help="dual-index window (default: the re-embedding's own wall time)",
    )
    parser.add_argument("--encoders", type=int, default=1, help="parallel encoding devices")
    parser.add_argument(
        "--old-pairs-stored",
        action="store_true",
        help="read the pairs' old vectors back instead of re-encoding them",
    )
    parser.add_argument("--fit-seconds", type=float, help="adapter fit time (default: assumed)")
    parser.add_argument("--build-rate", type=float, help="HNSW inserts/s (default: assumed)")
    parser.add_argument(
        "--gpu",
        nargs=5,
        action="append",
        default=[],
        metavar=("NAME", "OLD_PER_S", "NEW_PER_S", "USD_PER_H", "SOURCE"),
        help="add an encoding device with its throughputs, price and source",
    )
    parser.add_argument(
        "--measure",
        action="store_true",
        help="measure this CPU's encode rates "
        "(real models), HNSW build rate and MLP fit time instead of assuming them",
    )
    parser.add_argument("--old-encoder", default="minilm_l6", help="conf/encoder name (--measure)")
    parser.add_argument("--new-encoder", default="mpnet", help="conf/encoder name (--measure)")
    parser.add_argument(
        "--items",
        help="texts to encode for --measure: a .txt (one per line) or "
        "BEIR-style .jsonl[.gz] with a 'text' field",
    )
    parser.add_argument("--n-items", type=int, default=256, help="items encoded per model")
    parser.add_argument("--out", default="results/cost", help="folder for the tables")
    args = parser.parse_args(argv)
    try:
        run(args)
    except (DriftError, OSError) as err:
        sys.exit(refused("drift cost", err))


def run(args: argparse.Namespace) -> None:
    from drift.core.provenance import cpu_model, provenance
    from drift.core.records import to_jsonable, write_json_atomic

    hardware = list(ASSUMED_HARDWARE)
    build_rate, build_src = ASSUMED_BUILD_RATE
    fit_s, fit_src = ASSUMED_FIT_SECONDS
    measurement = None
    if args.measure:
        # What the rates depend on beside the CPU: the texts, how many, and the machine's load.
        measurement = {
            "items": args.items,
            "n_items": args.n_items,
            "batch_size": "each encoder's configured default",
            "load_average_before": os.getloadavg(),
        }
        cpu = f"{cpu_model()}, this machine"
        old_rate = measure_model(args.old_encoder, args)
        new_rate = measure_model(args.new_encoder, args)
        hardware[0] = Hardware(
            "CPU, this machine",
            old_rate,
            new_rate,
            hardware[0].usd_per_hour,
            source=f"measured: {args.old_encoder} {old_rate:.0f} and {args.new_encoder} "
            f"{new_rate:.0f} items/s on {cpu}, {args.n_items} items; price assumed",
        )
        build_rate = measure_index_build_rate(args.d_old)
        build_src = f"measured: HNSW M=32 efC=200, 20k synthetic vectors, d={args.d_old}, {cpu}"
        fit_s = measure_fit_seconds("residual_mlp", args.d_new, args.d_old, int(args.n_pairs * 0.8))
        fit_src = f"measured: residual_mlp on {int(args.n_pairs * 0.8)} synthetic pairs, {cpu}"
        measurement["load_average_after"] = os.getloadavg()
    if args.build_rate:
        build_rate, build_src = args.build_rate, "given on the command line"
    if args.fit_seconds is not None:
        fit_s, fit_src = args.fit_seconds, "given on the command line"
    for name, old, new, usd, source in args.gpu:
        hardware.append(Hardware(name, float(old), float(new), float(usd), source))
    base = Workload(
        n_items=args.n_pairs,
        n_pairs=args.n_pairs,
        d_old=args.d_old,
        d_new=args.d_new,
        index_build_items_per_s=build_rate,
        fit_seconds=fit_s,
        daily_write_fraction=args.daily_writes,
        migration_hours=args.migration_hours,
        backfill_fraction=args.backfill_fraction,
        n_encoders=args.encoders,
        reencode_old_pairs=not args.old_pairs_stored,
    )
    rows = build_table(parse_n(args.n), hardware, base)
    inputs = {
        "workload": {k: v for k, v in asdict(base).items() if k != "n_items"},
        "measurement": measurement,
        "index_build_rate_source": build_src,
        "fit_seconds_source": fit_src,
        "hardware": [asdict(h) for h in hardware],
    }
    table = markdown(rows, inputs)
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost.md").write_text(table)
    record = {
        "schema": "drift.migration.cost/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "measured": args.measure,
        "inputs": inputs,
        "rows": rows,
        "provenance": provenance(),
    }
    write_json_atomic(out / "cost.json", to_jsonable(record))
    print(f"wrote {out / 'cost.json'} and {out / 'cost.md'}")


def measure_model(name: str, args: argparse.Namespace) -> float:
    from drift.cli.config import encoder_config
    from drift.encoders import build_encoder

    encoder = build_encoder(encoder_config(name), device="cpu")
    return measure_encode_rate(encoder, read_items(args.items, args.n_items))


def read_items(path: str | None, n: int) -> list[str]:
    if path is None:
        raise ConfigError("--measure needs --items FILE (texts to encode)")
    import gzip

    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as handle:
        if ".jsonl" in p.name:
            rows = [json.loads(line) for line in handle if line.strip()]
            items = [f"{row.get('title', '')} {row['text']}".strip() for row in rows]
        else:
            items = [line.rstrip("\n") for line in handle if line.strip()]
    if not items:
        raise ConfigError(f"{path} holds no items")
    return items[:n]

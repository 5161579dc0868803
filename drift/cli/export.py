"""Write a serving artifact of a fitted adapter (numpy/ONNX/faiss), verified.

drift export --help
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from drift.adapters.base import load_adapter
from drift.cli import refused
from drift.core.errors import DriftError
from drift.serving import runtime as serving
from drift.serving.export import N_PROBES, export_adapter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="drift export", description=__doc__.split("\n")[0])
    parser.add_argument("--adapter-dir", required=True, help="folder written by Adapter.save")
    parser.add_argument("--out", required=True, help="artifact folder to write")
    parser.add_argument("--old-model", required=True, help="old model id (the index's model)")
    parser.add_argument("--new-model", required=True, help="new model id (the queries' model)")
    parser.add_argument(
        "--metrics", help="JSON file of metrics to record (e.g. `drift gate --json`)"
    )
    parser.add_argument("--no-onnx", action="store_true", help="skip model.onnx")
    parser.add_argument(
        "--precision",
        choices=tuple(serving.PRECISIONS),
        default="float32",
        help="how the weights are stored (float16/bfloat16: half the bytes; computed in float32)",
    )
    args = parser.parse_args(argv)
    try:
        adapter = load_adapter(args.adapter_dir)
        metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
        out = export_adapter(
            adapter,
            args.out,
            old_model=args.old_model,
            new_model=args.new_model,
            metrics=metrics,
            onnx=not args.no_onnx,
            precision=args.precision,
        )
        diffs = json.loads((out / serving.META_FILE).read_text())["verification"]["max_abs_diff"]
    except (DriftError, OSError, json.JSONDecodeError) as err:
        sys.exit(refused("drift export", err))
    shown = ", ".join(f"{k} {v:.2g}" for k, v in diffs.items())
    print(
        f"wrote {out} ({adapter.name}, {adapter.d_in} -> {adapter.d_out}, {args.precision} "
        "weights); "
        f"max |artifact - transform| on {N_PROBES} probes: {shown}"
    )

"""Collect result files into one tidy table, and summarise it over seeds.

    python scripts/collect_results.py results/runs --out results/collected
    python scripts/collect_results.py results/paper_cpu/runs --out results/paper_cpu/tables

Reads every result JSON under the given folders (the files `python -m drift.run` writes) and
writes to --out:
- results.csv.gz / results.parquet: one row per run x protocol x strategy x metric (tidy), with the
  run's design (experiment, dataset, model pair, Np, index, swept hyperparameters), its measured
  drift and the metric's mean over queries with its bootstrap CI;
- summary.csv.gz / summary.parquet: the same grouped by everything but the seed (the run's config
  without its seed), with mean, standard deviation and a 95% t-interval over seeds.

Numbers from debug (smoke) runs are kept, flagged in the `debug` column; they are not results.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from drift.errors import DriftError
from drift.results import design_config, design_key, read_results

# What a row is about; constant within a group of seeds (see `design_key`).
DESIGN = [
    "experiment",
    "task_name",
    "debug",
    "real_weights",
    "synthetic",
    "dataset",
    "old_model",
    "new_model",
    "pair",
    "old_dim",
    "new_dim",
    "n_corpus",
    "n_queries",
    "level",
    "np_requested",
    "np",
    "np_fraction",
    "corpus_subset",
    "pair_role",
    "index_kind",
    "ef_search",
    "nprobe",
    "op_center",
    "la_rank",
    "mlp_hidden",
    "mlp_loss",
    "protocol",
    "strategy",
    "method",
    "dsm",
    "metric",
]
# Measured per run: averaged over seeds in the summary.
MEASURED = [
    "value",
    "ci_low",
    "ci_high",
    "drift_knn_overlap",
    "drift_cka",
    "drift_mean_cosine_old",
    "drift_mean_cosine_new",
    "us_per_query",
    "search_us_per_query",
    "adapter_us_per_query",
    "threads",
    "fit_seconds",
    "val_cosine",
]


def short_model(name: str) -> str:
    """Drop the hub owner: sentence-transformers/all-MiniLM-L6-v2 -> all-MiniLM-L6-v2."""
    return name if name.startswith("synthetic/") else name.rsplit("/", 1)[-1]


def run_info(record: dict[str, Any]) -> dict[str, Any]:
    """The run-level columns of one result record."""
    config = record["config"]
    old, new = record["models"]["old"], record["models"]["new"]
    n_corpus = record["dataset"]["n_corpus"]
    n_pairs = record["pairs"]["n_train"] + record["pairs"]["n_val"]
    from_corpus = record["pairs"].get("source", "corpus") == "corpus"  # else held-out queries
    index = record["index"]["spec"]
    methods = config["adapter"]["methods"]
    drift = record.get("drift") or {}
    overlap = next((v for k, v in drift.items() if k.startswith("knn_overlap@")), None)
    tags = list(config.get("tags") or [])
    return {
        "experiment": tags[0] if tags else record["task_name"],
        "task_name": record["task_name"],
        "tags": ",".join(tags),
        "seed": record["seed"],
        "debug": bool(record["debug"]),
        "real_weights": bool(record["real_weights"]),
        "synthetic": bool(record["synthetic"]),
        "dataset": record["dataset"]["name"],
        "old_model": old["name"],
        "new_model": new["name"],
        "pair": f"{short_model(old['name'])} -> {short_model(new['name'])}",
        "old_dim": old["dim"],
        "new_dim": new["dim"],
        "n_corpus": n_corpus,
        "n_queries": record["dataset"]["n_queries"],
        "level": synthetic_level(config["new_encoder"]),
        "np_requested": record["pairs"]["n_requested"],
        "np": n_pairs,
        "np_fraction": n_pairs / n_corpus if n_corpus and from_corpus else None,
        "corpus_subset": design_config(config).get("data_limits", {}).get("corpus_subset"),
        "pair_role": record["pairs"].get("role", "document"),  # older files: the only role then
        "index_kind": index["kind"],
        "ef_search": index["ef_search"] if index["kind"] == "hnsw" else None,
        "nprobe": index["nprobe"] if index["kind"] == "ivfpq" else None,
        "op_center": (methods.get("procrustes") or {}).get("center"),
        "la_rank": (methods.get("low_rank_affine") or {}).get("rank"),
        "mlp_hidden": (methods.get("residual_mlp") or {}).get("hidden"),
        "mlp_loss": (methods.get("residual_mlp") or {}).get("loss"),
        "drift_knn_overlap": overlap,
        "drift_cka": drift.get("linear_cka"),
        "drift_mean_cosine_old": drift.get("mean_cosine_old"),
        "drift_mean_cosine_new": drift.get("mean_cosine_new"),
        "not_applicable": "; ".join(
            f"{name} ({why})" for name, why in record["metrics"].get("not_applicable", {}).items()
        ),
        "group": design_key(config),
        "config_hash": record["config_hash"],
        "created": record["created"],
        "git_commit": record.get("provenance", {}).get("git", {}).get("commit"),
    }


def synthetic_level(encoder: dict[str, Any]) -> float | None:
    return encoder.get("level") if encoder.get("type") == "synthetic" else None


def tidy_rows(record: dict[str, Any], path: Path | str = "") -> list[dict[str, Any]]:
    """One row per protocol x strategy x metric (metrics and ARR) of one result record."""
    run = {**run_info(record), "file": str(path)}
    rows = []
    for protocol, block in record["metrics"]["protocols"].items():
        for strategy, result in block["strategies"].items():
            method, dsm = strategy_method(strategy)
            adapter = record.get("adapters", {}).get(strategy.removeprefix("adapter/"), {})
            timings = result["timings"]
            common = {
                **run,
                "protocol": protocol,
                "strategy": strategy,
                "method": method,
                "dsm": dsm,
                "us_per_query": timings.get("us_per_query"),
                "search_us_per_query": timings.get("search_us_per_query"),
                "adapter_us_per_query": timings.get("adapter_us_per_query"),
                "threads": timings.get("threads"),
                "fit_seconds": adapter.get("fit_seconds") if method else None,
                "val_cosine": adapter.get("fit_info", {}).get("cosine/val") if method else None,
            }
            for metric, summary in [*result["metrics"].items(), *result["arr"].items()]:
                rows.append(
                    {
                        **common,
                        "metric": metric,
                        "value": summary.get("mean"),
                        "ci_low": summary.get("ci_low"),
                        "ci_high": summary.get("ci_high"),
                        "n": summary.get("n"),
                    }
                )
    return rows


def strategy_method(strategy: str) -> tuple[str | None, bool | None]:
    """Adapter method and DSM flag: adapter/low_rank_affine+dsm -> (low_rank_affine, True).

    Strategies that are not adapters give (None, None).
    """
    if not strategy.startswith("adapter/"):
        return None, None
    name = strategy.removeprefix("adapter/")
    return name.removesuffix("+dsm"), name.endswith("+dsm")


def collect(roots: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """The tidy table of every result file under `roots` (one folder or several)."""
    roots = [roots] if isinstance(roots, str | Path) else list(roots)
    rows = [row for path, record in read_results(roots) for row in tidy_rows(record, path)]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # Row order: as the runs were written within each experiment.
    frame = frame.sort_values(["experiment", "created", "file"], kind="stable")
    return frame.reset_index(drop=True)


def summarize(frame: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, std and 95% t-interval of `value` over seeds, grouped by `by` (default: the design,
    i.e. everything but the seed). Other measured columns are averaged. A seed that occurs twice
    in one group (two runs that differ only in a setting outside `by`) counts once."""
    keys = list(by) if by is not None else ["group", *DESIGN]
    data = frame.drop_duplicates([*keys, "seed"])
    grouped = data.groupby(keys, dropna=False, sort=False)
    out = grouped[[c for c in MEASURED if c in data]].mean(numeric_only=True)
    out = out.rename(columns={"ci_low": "boot_ci_low", "ci_high": "boot_ci_high"})
    out = out.rename(columns={"value": "mean"})
    out["std"] = grouped["value"].std(ddof=1)
    out["n_seeds"] = grouped["seed"].nunique()
    out["seeds"] = grouped["seed"].agg(lambda s: ",".join(str(v) for v in sorted(set(s))))
    half = out["std"] / np.sqrt(out["n_seeds"]) * stats.t.ppf(0.975, out["n_seeds"] - 1)
    out["ci_low"] = out["mean"] - half
    out["ci_high"] = out["mean"] + half
    return out.reset_index()


def write_tables(frame: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """results.{csv.gz,parquet} and summary.{csv.gz,parquet} in `out_dir`. The CSVs are gzipped:
    every run repeats its design on each of its hundreds of rows (pandas, R, DuckDB and polars
    read .csv.gz as they are)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in (("results", frame), ("summary", summarize(frame))):
        for suffix, write in ((".csv.gz", table.to_csv), (".parquet", table.to_parquet)):
            path = out / f"{name}{suffix}"
            write(path, index=False)
            written.append(path)
    return written


def collect_or_say_why(roots: Sequence[str | Path]) -> pd.DataFrame | None:
    """`collect(roots)`, or None after printing to stderr why there is nothing to collect."""
    try:
        frame = collect(roots)
    except (DriftError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    if frame.empty:
        print(f"error: no result files under {', '.join(map(str, roots))}", file=sys.stderr)
        return None
    return frame


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", default=["results/runs"], help="result folders")
    parser.add_argument("--out", default="results/collected", help="output folder")
    args = parser.parse_args(argv)
    frame = collect_or_say_why(args.results)
    if frame is None:
        return 2
    for path in write_tables(frame, args.out):
        print(f"wrote {path}")
    n_runs = frame["file"].nunique()
    print(f"{n_runs} runs, {len(frame)} rows, {frame['group'].nunique()} designs")
    if frame["debug"].any():
        print("WARNING: debug (smoke) runs are included; their numbers are not results.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

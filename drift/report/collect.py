"""Collect result files into one tidy table, and summarise it over seeds.

    drift tables results/runs --out results/collected
    drift tables results/paper_cpu/runs --out results/paper_cpu/tables

Reads every result JSON under the given folders (the files `python -m drift.run` writes) and
writes to --out:
- results.csv.gz / results.parquet: one row per run x protocol x strategy x metric (tidy), with the
  run's design (experiment, dataset, model pair, Np, index, swept hyperparameters), its measured
  drift and the metric's mean over queries with its bootstrap CI;
- summary.csv.gz / summary.parquet: the same grouped by everything but the seed (the run's config
  without its seed), with mean, standard deviation and a 95% t-interval over seeds. A rerun (a
  second result file of the same design and seed) counts once: the newest file's numbers are used,
  and the command says how many it set aside.

Each row names its design twice: `group` (a hash of the run's config without its seed) and
`design` (its experiment and the settings in which it differs from that experiment's other
designs here, e.g. "la_rank n_pairs=500 rank=8").

Numbers from debug (smoke) runs are kept, flagged in the `debug` column; they are not results.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from drift.core.errors import DataError, DriftError
from drift.core.records import design_config, design_key, design_labels, read_results

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
    "np_fraction_requested",
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
# Design columns that differ between the rows of one run, or name the run rather than set it.
PER_ROW = ("protocol", "strategy", "method", "dsm", "metric")
NAMES = ("experiment", "task_name")
DERIVED = ("np_fraction",)  # np / n_corpus
# The run-level settings: what two designs of one experiment can differ in, by name.
SETTINGS = [c for c in DESIGN if c not in (*PER_ROW, *NAMES, *DERIVED)]
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
    n_pairs = sum(record["pairs"].get(part, 0) for part in ("n_train", "n_val", "n_gate"))
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
        "np_fraction_requested": design_config(config)["adapter"]["n_pairs_fraction"],
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
    found = read_results(roots)
    frame = pd.DataFrame([row for path, record in found for row in tidy_rows(record, path)])
    if frame.empty:
        return frame
    frame["design"] = frame["group"].map(design_labels(record for _, record in found))
    # Row order: as the runs were written within each experiment.
    frame = frame.sort_values(["experiment", "created", "file"], kind="stable")
    return frame.reset_index(drop=True)


class PooledDesignsError(DataError):
    """Runs of different designs fall on one group of a summary and one seed: a mean over seeds
    would pool them."""


def setting_values(column: pd.Series) -> pd.Series:
    """Design values as labels: missing values read "none", whole floats as integers (8.0 -> 8)."""
    return column.map(setting_text)


def setting_text(value: object) -> str:
    if pd.isna(value):
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def varying_settings(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """The run-level settings (`SETTINGS`, less `exclude`) whose value differs between the rows."""
    return [c for c in SETTINGS if c not in exclude and setting_values(frame[c]).nunique() > 1]


def superseded_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The result files that a newer file of the same design and seed replaces (reruns): one row
    per file, with its design, seed and creation time."""
    runs = frame.drop_duplicates(["file", "created"]).sort_values("created", kind="stable")
    return runs[runs.duplicated(["group", "seed"], keep="last")][
        ["file", "design", "seed", "created"]
    ]


def one_run_per_seed(
    frame: pd.DataFrame, by: Sequence[str], same: Sequence[str] = ()
) -> pd.DataFrame:
    """The rows of `frame` with one run per group of `by` and seed, in their order.

    Of reruns (rows that agree on `by`, the design `group` and the seed), the newest counts
    (`created`, when the frame has it). Rows of different designs that agree on `by` and the seed
    raise PooledDesignsError naming the settings they differ in, unless those are all among `same`
    (settings known to make no difference there, such as an Np request capped to the same Np):
    then the newest counts too.
    """
    keys = list(dict.fromkeys(by))
    data = frame.sort_values("created", kind="stable") if "created" in frame else frame
    if "group" in data:
        data = data.drop_duplicates(list(dict.fromkeys([*keys, "group", "seed"])), keep="last")
    clash = data.duplicated([*keys, "seed"], keep=False)
    if clash.any():
        rows = data[clash]
        columns = [c for c in (*NAMES, *SETTINGS) if c in rows and c not in keys]
        labels = rows[columns].apply(setting_values)
        per_point = labels.groupby([rows[k] for k in (*keys, "seed")], dropna=False).nunique()
        differing = [c for c in columns if (per_point[c] > 1).any()]
        if not differing or not set(differing) <= set(same):
            raise PooledDesignsError(pooled_message(rows, keys, differing))
        data = data.drop_duplicates([*keys, "seed"], keep="last")
    return data.sort_index()


def pooled_message(rows: pd.DataFrame, keys: Sequence[str], differing: Sequence[str]) -> str:
    """Why rows of several designs cannot share a mean: the settings and values they differ in."""
    where = f"the same {', '.join(keys)} and seed"
    if differing:
        values = "; ".join(
            f"{c}: {', '.join(sorted(set(setting_values(rows[c]))))}" for c in differing
        )
        return (
            f"runs of different designs have {where}, so a mean over seeds would pool them; "
            f"they differ in {values}. Keep them apart by that setting or select one design."
        )
    designs = sorted(set(rows["design"])) if "design" in rows else sorted(set(rows["group"]))
    return (
        f"runs of different designs have {where}, so a mean over seeds would pool them; they "
        f"differ in settings without a column of their own (designs: {'; '.join(designs)}). "
        "Select one design."
    )


def summarize(
    frame: pd.DataFrame, by: Sequence[str] | None = None, same: Sequence[str] = ()
) -> pd.DataFrame:
    """Mean, std and 95% t-interval of `value` over seeds, grouped by `by` (default: the design,
    i.e. everything but the seed). Other measured columns are averaged. One run counts per group
    and seed: see `one_run_per_seed` for reruns, and for the error when `by` would pool designs."""
    keys = list(by) if by is not None else ["group", "design", *DESIGN]
    data = one_run_per_seed(frame, keys, same)
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


def print_reruns(frame: pd.DataFrame) -> None:
    """Say which result files a newer run of the same design and seed replaces in the summary."""
    old = superseded_runs(frame)
    if not old.empty:
        print(f"note: {len(old)} reruns (same design and seed): the newest file of each is used")
        for run in old.itertuples():
            print(f"  set aside: {run.file} ({run.design}, seed {run.seed}, {run.created})")

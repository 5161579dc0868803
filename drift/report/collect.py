"""Collect result files into one tidy table, and summarise it over seeds.

    drift tables results/runs --out results/collected
    drift tables results/paper_cpu/runs --out results/paper_cpu/tables

Reads every result JSON under the given folders (the files `python -m drift.run` writes) and
writes to --out:
- results.csv.gz / results.parquet: one row per run x protocol x strategy x metric (tidy; the rows
  of drift.core.records.ResultRecord.rows), with the run's design (experiment, dataset, model
  pair, Np, index, swept hyperparameters), its measured drift, the strategy's timings and cost in
  new-model document encodes, and the metric's mean over queries with its bootstrap CI and its
  ratio to the full re-index's (`relative`);
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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from drift.adapters import hparam_columns
from drift.core.errors import DataError
from drift.core.records import ResultRecord, design_labels

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
    # each adapter kind's `hparam_columns` (the built-ins': op_center, la_rank, mlp_hidden,
    # mlp_loss; a plugin's when it was imported before this module)
    *hparam_columns(),
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


def adapter_settings(record: ResultRecord) -> dict[str, Any]:
    """The adapters' swept hyper-parameters of one run (each registered adapter kind's
    `hparam_columns`): design columns of the tidy table."""
    methods = record.config["adapter"]["methods"]
    return {
        column: (methods.get(kind) or {}).get(hparam)
        for column, (kind, hparam) in hparam_columns().items()
    }


def collect(roots: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """The tidy table of every result file under `roots` (one folder or several); DataError
    when there is none."""
    records = ResultRecord.iter(roots)
    frame = pd.DataFrame(
        [{**row, **adapter_settings(record)} for record in records for row in record.rows()]
    )
    if frame.empty:
        return frame
    frame["design"] = frame["group"].map(design_labels(records))
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


def t_half_width(std: Any, n: Any) -> Any:
    """Half the width of the 95% t-interval of a mean of n values with standard deviation `std`
    (numbers or columns alike)."""
    return std / np.sqrt(n) * stats.t.ppf(0.975, n - 1)


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
    half = t_half_width(out["std"], out["n_seeds"])
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


def collect_strategies(roots: Sequence[str | Path]) -> pd.DataFrame:
    """`collect(roots)`; DataError when the result files hold no strategy to tabulate."""
    frame = collect(roots)
    if frame.empty:
        raise DataError(f"the result files under {', '.join(map(str, roots))} hold no strategy")
    return frame


def print_reruns(frame: pd.DataFrame) -> None:
    """Say which result files a newer run of the same design and seed replaces in the summary."""
    old = superseded_runs(frame)
    if not old.empty:
        print(f"note: {len(old)} reruns (same design and seed): the newest file of each is used")
        for run in old.itertuples():
            print(f"  set aside: {run.file} ({run.design}, seed {run.seed}, {run.created})")

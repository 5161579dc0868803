"""How far to trust `drift gate`: its held-out-pool ARR estimate against the ARR each run measured.

    drift gate-calibration results/paper_cpu/runs results/query_log_pairs/runs \
        --adapters-dir cache/adapters --out results/gate_calibration

`drift gate` estimates an adapter's ARR@10 from held-out pairs alone (the kNN protocol inside the
pool; drift/migration/gate.py), because a practitioner deciding whether to re-index has no new-model
corpus. Every run of `drift.run` records the gate's two estimates for each adapter (the result
file's `gate`: the pool at depth k, as without --corpus-size, and at depth k n / N, as with
`--corpus-size N`, N the run's corpus) and measures the real thing: ARR@10 = kNN R@10 of
new-model queries through the adapter into the old index. This script sets them side by side for
every adapter of every run found, and writes:
- calibration.csv: one row per run and adapter: both estimates (mean, CI bounds), the measured
  ARR, the pool size, the corpus size and the pool depth;
- summary.json: per estimator, mean and median error, mean absolute error, Spearman correlation
  with the measurement, how often the measurement falls in the estimate's CI, the error by pool
  depth, pool size (k n / N below or above 1/2), corpus size, model pair and pair role, and per
  threshold how often the gate's decision (rule ci_low) agrees with the decision the measured
  ARR would give;
- calibration.png / .pdf: each estimator against the measurement, the diagonal marked.
Result files written before runs recorded the gate get its estimates recomputed from the adapters
and held-out pairs the run saved (`artifacts`, in the cache, not committed): adapters whose
artifacts are gone, or were overwritten by a later run of the same config (fit time differs from
the result file's), are counted and skipped. `--adapters-dir` finds artifacts moved with their
cache folder (by the last two parts of the recorded path: <config hash>/<adapter>).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from scipy import stats

from drift.adapters import build_adapter
from drift.adapters.base import load_adapter
from drift.core.errors import DataError
from drift.migration.gate import load_pairs, measured_recall, pool_estimates
from drift.report.figures import PAPER_STYLE

K = 10
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ESTIMATORS = {
    "pool_at_k": "pool at depth k (drift gate without --corpus-size)",
    "depth_scaled": "pool at depth k n / N (drift gate --corpus-size N)",
}
ESTIMATE_FIELDS = {"pool_at_k": "arr_at_k", "depth_scaled": "arr"}  # keys of pool_estimates
PARTS = (("", "mean"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high"))


def locate(recorded: str, adapters_dir: Path | None) -> Path:
    path = Path(recorded)
    if adapters_dir is None or path.exists():
        return path
    return adapters_dir / path.parent.name / path.name


def rows_of(
    record: dict[str, Any], adapters_dir: Path | None, n_boot: int, skipped: Counter[str]
) -> Iterator[dict[str, Any]]:
    """One row per adapter of one run: the gate's estimates beside the measured ARR. Adapters
    that cannot be checked are counted in `skipped`, by reason."""
    status_quo = measured_recall(record, "status_quo", K)
    if status_quo is None:
        skipped["run without a kNN status quo"] += 1
        return
    gate = record.get("gate") or recomputed_gate(record, adapters_dir, n_boot, skipped)
    if "skipped" in gate:
        skipped[f"run whose pool is too small: {gate['skipped']}"] += 1
        return
    for name, estimate in gate.items():
        if "skipped" in estimate:
            skipped["adapter the run's gate skipped"] += 1
            continue
        if saw_gate_pairs(record, name):
            skipped["adapter tuned on the gate's pairs (validation)"] += 1
            continue
        measured = measured_recall(record, f"adapter/{name}", K)
        if measured is None:
            skipped["adapter without a kNN measurement"] += 1
            continue
        yield {
            "experiment": (record["config"].get("tags") or [record["task_name"]])[0],
            "dataset": record["dataset"]["name"],
            "pair": f"{record['models']['old']['name']} -> {record['models']['new']['name']}",
            "seed": record["seed"],
            "pair_role": record["pairs"].get("role", "document"),
            "adapter": name,
            "n_pool": estimate["n_pool"],
            "n_corpus": estimate["corpus_size"],
            "pool_k": estimate["pool_k"],
            "measured": measured,
            **{
                f"{column}{part}": estimate[field][key]
                for column, field in ESTIMATE_FIELDS.items()
                for part, key in PARTS
            },
            "status_quo_estimate": estimate["status_quo"]["mean"],
            "status_quo_measured": status_quo,
        }


def saw_gate_pairs(record: dict[str, Any], name: str) -> bool:
    """Whether the run's gate pairs were its validation pairs (no gate split) and the adapter
    was tuned on them (early stopping, a penalty grid; runs written before the gate skipped such
    adapters itself)."""
    if record["pairs"].get("n_gate", 0):
        return False
    fitted = record["adapters"][name]
    if "kind" not in fitted:  # a record that does not say: judged as written
        return False
    return build_adapter(fitted["kind"], **fitted["hparams"]).uses_validation


def recomputed_gate(
    record: dict[str, Any], adapters_dir: Path | None, n_boot: int, skipped: Counter[str]
) -> dict[str, Any]:
    """For runs written before result files recorded the gate: its estimates recomputed from the
    adapters and held-out pairs the run saved (the result file's `artifacts`)."""
    artifacts = dict(record.get("artifacts") or {})
    # val_pairs: runs written before the gate's pairs had their own name (validation pairs)
    saved_pairs = artifacts.pop("gate_pairs", "") or artifacts.pop("val_pairs", "")
    pairs_path = locate(saved_pairs, adapters_dir)
    if not pairs_path.is_file():
        skipped["run without a gate section or saved pairs"] += 1
        return {}
    try:
        pairs = load_pairs(pairs_path)
    except DataError:
        skipped["run whose pairs file predates the new/old format"] += 1
        return {}
    adapters = {}
    for name, recorded in artifacts.items():
        folder = locate(recorded, adapters_dir)
        if not folder.is_dir():
            skipped["adapter no longer saved"] += 1
            continue
        adapter = load_adapter(folder)
        if adapter.fit_seconds != record["adapters"][name]["fit_seconds"]:
            skipped["adapter saved by another run of the same config"] += 1
            continue
        adapters[name] = adapter
    corpus_size = record["dataset"]["n_corpus"]
    return pool_estimates(
        adapters, pairs["new"], pairs["old"], corpus_size=corpus_size, k=K, n_boot=n_boot
    )


def spearman(a: pd.Series, b: pd.Series) -> float | None:
    """Rank correlation; None (JSON null) where it is undefined, e.g. a constant column."""
    if a.nunique() < 2 or b.nunique() < 2:
        return None
    return float(stats.spearmanr(a, b).statistic)


def accuracy(table: pd.DataFrame, name: str) -> dict[str, Any]:
    """How one estimator compares with the measured ARR, and the decisions it would take."""
    estimate = table[name]
    error = estimate - table["measured"]
    decisions = {}
    for t in THRESHOLDS:
        keep = table[f"{name}_ci_low"] >= t  # drift gate's default rule, ci_low
        above = table["measured"] >= t
        decisions[f"{t:.1f}"] = {
            "agree": float((keep == above).mean()),
            "keep_but_measured_below": int((keep & ~above).sum()),
            "reindex_but_measured_above": int((~keep & above).sum()),
            "measured_above": int(above.sum()),
        }
    return {
        "estimator": ESTIMATORS[name],
        "bias_mean": float(error.mean()),
        "bias_median": float(error.median()),
        "abs_error_mean": float(error.abs().mean()),
        "spearman": spearman(estimate, table["measured"]),
        "measured_inside_ci": float(
            table["measured"].between(table[f"{name}_ci_low"], table[f"{name}_ci_high"]).mean()
        ),
        "by_pool_depth": mean_error_by(table, name, "pool_k"),
        "by_pool_size": mean_error_by(table, name, pool_size_groups(table)),
        "by_corpus_size": mean_error_by(table, name, "n_corpus"),
        "by_model_pair": mean_error_by(table, name, "pair"),
        "by_pair_role": mean_error_by(table, name, "pair_role"),
        "decisions_ci_low_rule": decisions,
    }


def mean_error_by(
    table: pd.DataFrame, name: str, groups: str | pd.Series
) -> dict[str, dict[str, Any]]:
    """Mean and mean absolute error of one estimator within each group (a column name, or a
    series of group labels)."""
    error = table[name] - table["measured"]
    return {
        str(value): {
            "n": len(part),
            "bias_mean": float(part.mean()),
            "abs_error_mean": float(part.abs().mean()),
        }
        for value, part in error.groupby(table[groups] if isinstance(groups, str) else groups)
    }


def pool_size_groups(table: pd.DataFrame) -> pd.Series:
    """Whether a pool holds enough pairs for depth k n / N (at least N / (2k): the gate's note)."""
    enough = K * table["n_pool"] / table["n_corpus"] >= 0.5
    return enough.map({True: "k n / N >= 1/2", False: "k n / N < 1/2"})


def summary_of(table: pd.DataFrame) -> dict[str, Any]:
    return {
        "n_adapters": len(table),
        "n_runs": int(table["file"].nunique()),
        "k": K,
        "estimators": {name: accuracy(table, name) for name in ESTIMATORS},
    }


def figure(table: pd.DataFrame) -> plt.Figure:
    with plt.rc_context(PAPER_STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 5.0), layout="constrained", sharey=True)
        for ax, name in zip(axes, ESTIMATORS, strict=True):
            for pair, part in table.groupby("pair"):
                ax.errorbar(
                    part["measured"],
                    part[name],
                    yerr=[
                        part[name] - part[f"{name}_ci_low"],
                        part[f"{name}_ci_high"] - part[name],
                    ],
                    fmt="o",
                    ms=3,
                    alpha=0.6,
                    elinewidth=0.5,
                    label=pair.replace("sentence-transformers/", "").replace("intfloat/", ""),
                )
            ax.plot([0, 1], [0, 1], color="0.4", lw=0.8, ls="--", label="estimate = measured")
            bias = (table[name] - table["measured"]).mean()
            ax.set(
                xlim=(0, 1.02),
                ylim=(0, 1.02),
                xlabel=f"measured ARR@{K} (kNN R@{K} of the run's queries, its index)",
                title=f"{ESTIMATORS[name]}\nmean error {bias:+.3f}",
            )
        axes[0].set_ylabel(f"gate's estimate of ARR@{K} (held-out pairs; 95% CI)")
        axes[1].legend(fontsize=7, loc="lower right")
        fig.suptitle(f"drift gate against measurement: {len(table)} fitted adapters")
    return fig

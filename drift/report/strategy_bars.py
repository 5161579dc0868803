"""One experiment's strategies side by side: R@10 bars with 95% CIs, and a Markdown table.

    drift plot-strategies results/image_efficientnet
    drift plot-strategies results/asymmetric_pairs/runs \
        --out results/asymmetric_pairs

Reads the result files under the folder (full runs only when there are any; the seeds of one
design are pooled), and writes beside them (or to --out):
- strategies_r10.png / .pdf: one panel per protocol, one bar per strategy: mean R@10 over seeds;
  error bars: 95% t-interval over seeds (with one seed: that run's 95% bootstrap CI over
  queries); dots: each seed's value. When the folder holds several designs (a sweep over a
  setting), each strategy gets one bar per design, labelled by the settings that differ;
- strategies.md: per protocol, strategy (and design), R@10 / MRR@10 / nDCG@10 as mean over seeds
  [95% t-interval over seeds], and the mean 95% bootstrap CI over queries of a single run;
  designs that give a strategy the same numbers share one row, labelled by what they share.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from drift.core.errors import DataError
from drift.report.collect import collect, setting_values, summarize, varying_settings
from drift.report.figures import PAPER_STYLE, describe, label_of, ordered, style

METRICS = ("recall@10", "mrr@10", "ndcg@10")
TITLES = {
    "knn": "kNN protocol: R@10 vs. full re-embedding (= ARR)",
    "qrels": "qrels protocol: R@10 with relevance labels",
}


def load_runs(folder: Path) -> tuple[pd.DataFrame, str]:
    """The tidy rows of the folder's full runs (its smoke runs when it has no other), with their
    `variant`, and the title note that says when they are smoke runs. DataError without runs."""
    frame = collect(folder)
    if frame.empty:
        raise DataError(f"the result files under {folder} hold no strategy")
    if (~frame["debug"]).any():
        return with_variants(frame[~frame["debug"]]), ""
    return with_variants(frame), "SMOKE RUNS, NOT RESULTS: "


def with_variants(frame: pd.DataFrame) -> pd.DataFrame:
    """Add `variant`: the settings in which this row's design differs from the folder's others
    ("" when the folder holds one design; the design hash when no named column differs)."""
    varying = varying_settings(frame)
    if varying:
        labels = (
            frame[varying]
            .apply(setting_values)
            .apply(lambda row: ", ".join(f"{c}={v}" for c, v in row.items()), axis=1)
        )
    elif frame["group"].nunique() > 1:
        labels = "design " + frame["group"].astype(str)
    else:
        labels = pd.Series("", index=frame.index)
    return frame.assign(variant=labels)


def figure(frame: pd.DataFrame, note: str) -> plt.Figure:
    protocols = [p for p in TITLES if p in set(frame["protocol"])]
    rows = frame[frame["metric"] == "recall@10"]
    variants = list(dict.fromkeys(rows["variant"]))
    width = 0.8 / len(variants)
    n_strategies = rows["strategy"].nunique()
    with plt.rc_context(PAPER_STYLE):
        # Horizontal bars: the strategy names are long and many.
        fig, axes = plt.subplots(
            1,
            len(protocols),
            figsize=(4.8 * len(protocols), 1.4 + 0.24 * n_strategies * len(variants) ** 0.5),
            squeeze=False,
            layout="constrained",
        )
        first_names: list[str] = []  # the left panel's labels serve a right one with the same
        for ax, protocol in zip(axes[0], protocols, strict=True):
            part = rows[rows["protocol"] == protocol]
            points = summarize(part, by=["strategy", "variant"])
            names = ordered(points["strategy"].unique())
            y = np.arange(len(names))
            for j, variant in enumerate(variants):
                mine = points[points["variant"] == variant].set_index("strategy").reindex(names)
                one_seed = mine["n_seeds"] <= 1
                low = np.where(one_seed, mine["boot_ci_low"], mine["ci_low"])
                high = np.where(one_seed, mine["boot_ci_high"], mine["ci_high"])
                at = y - 0.4 + width * (j + 0.5)
                ax.barh(
                    at,
                    mine["mean"],
                    width,
                    xerr=np.vstack([mine["mean"] - low, high - mine["mean"]]),
                    capsize=2,
                    color=[style(n)["color"] for n in names] if len(variants) == 1 else f"C{j}",
                    edgecolor="black",
                    linewidth=0.5,
                    hatch=[("//" if n.endswith("+dsm") else None) for n in names],
                    label=variant or None,
                )
                for i, name in enumerate(names):
                    chosen = (part["strategy"] == name) & (part["variant"] == variant)
                    seeds = part[chosen]["value"].to_numpy()
                    ax.plot(seeds, np.full(seeds.size, at[i]), ".", color="black", markersize=3)
            same_names = ax is not axes[0][0] and names == first_names
            ax.set_yticks(y, [] if same_names else [label_of(n) for n in names])
            first_names = first_names or names
            ax.invert_yaxis()
            ax.set_xlim(0, 1.05)
            ax.set_xlabel("R@10")
            ax.set_title(TITLES[protocol])
            ax.grid(axis="x", alpha=0.3, linewidth=0.5)
        if len(variants) > 1:
            fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
        seeds = int(summarize(rows, by=["strategy", "variant"])["n_seeds"].max())
        bars = "95% t-interval over seeds" if seeds > 1 else "95% bootstrap CI over queries"
        fig.suptitle(
            f"{describe(rows, note)}\nbars: mean over {seeds} seed(s); error bars: {bars}; "
            "dots: seeds"
        )
    return fig


def table(frame: pd.DataFrame, note: str) -> str:
    rows = frame[frame["metric"].isin(METRICS)]
    lines = [f"# {describe(rows, note)}", ""]
    for protocol in [p for p in TITLES if p in set(rows["protocol"])]:
        part = rows[rows["protocol"] == protocol]
        points = summarize(part, by=["strategy", "variant", "metric"])
        n_queries = int(part["n_queries"].iloc[0])
        lines += [
            f"## {protocol} protocol ({n_queries} queries per run)",
            "",
            "| Strategy | R@10 | MRR@10 | nDCG@10 | R@10 bootstrap CI of one run |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ordered(points["strategy"].unique()):
            mine = points[points["strategy"] == name]
            lines += merged_rows(
                name,
                [
                    (variant, cells_of(mine[mine["variant"] == variant]))
                    for variant in dict.fromkeys(points["variant"])
                    if (mine["variant"] == variant).any()
                ],
            )
        lines.append("")
    lines.append(
        "Mean over seeds [95% t-interval over seeds]; the last column is the 95% bootstrap CI "
        "over queries of a single run, averaged over seeds. Built by "
        "drift/report/strategy_bars.py from the result files."
    )
    return "\n".join(lines) + "\n"


def merged_rows(strategy: str, cells_by_design: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """One strategy's Markdown table rows, one per design; designs whose cells are identical
    (e.g. a setting only another adapter reads) share a row, labelled by what they share."""
    same_cells: dict[tuple[str, ...], list[str]] = {}  # cells -> the designs with them
    for design, cells in cells_by_design:
        same_cells.setdefault(tuple(cells), []).append(design)
    return [
        f"| {label_of(strategy)}{shared_settings(designs)} | " + " | ".join(cells) + " |"
        for cells, designs in same_cells.items()
    ]


def shared_settings(variants: list[str]) -> str:
    """Label suffix for designs that gave the same numbers: the settings they all share
    (" (every design)" when none; "" for a folder of one design)."""
    if variants == [""]:
        return ""
    settings = [set(v.split(", ")) for v in variants]
    shared = [part for part in variants[0].split(", ") if all(part in s for s in settings)]
    return f" ({', '.join(shared) if shared else 'every design'})"


def cells_of(points: pd.DataFrame) -> list[str]:
    """One strategy's (and design's) table cells: each metric, then R@10's bootstrap CI."""
    cells = []
    for metric in METRICS:
        row = points[points["metric"] == metric]
        cells.append(cell(row.iloc[0]) if not row.empty else "n/a")
    boot = points[points["metric"] == "recall@10"].iloc[0]
    return [*cells, f"[{boot['boot_ci_low']:.3f}, {boot['boot_ci_high']:.3f}]"]


def cell(row: pd.Series) -> str:
    if row["n_seeds"] > 1:
        return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return f"{row['mean']:.3f}"

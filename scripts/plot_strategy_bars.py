"""One experiment's strategies side by side: R@10 bars with 95% CIs, and a Markdown table.

    python scripts/plot_strategy_bars.py results/image_efficientnet

Reads the result files under the folder (full runs only when there are any; the seeds of one
design are pooled), and writes beside them:
- strategies_r10.png / .pdf: one panel per protocol, one bar per strategy: mean R@10 over seeds;
  error bars: 95% t-interval over seeds (with one seed: that run's 95% bootstrap CI over
  queries); dots: each seed's value;
- strategies.md: per protocol and strategy, R@10 / MRR@10 / nDCG@10 as mean over seeds
  [95% t-interval over seeds], and the mean 95% bootstrap CI over queries of a single run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from collect_results import collect, summarize
from make_figures import PAPER_STYLE, SAVE, describe, label_of, ordered, style

METRICS = ("recall@10", "mrr@10", "ndcg@10")
TITLES = {
    "knn": "kNN protocol: R@10 vs. full re-embedding (= ARR)",
    "qrels": "qrels protocol: R@10 with relevance labels",
}


def load_runs(folder: Path) -> tuple[pd.DataFrame, str]:
    frame = collect(folder)
    if frame.empty:
        sys.exit(f"no result files under {folder}")
    if (~frame["debug"]).any():
        return frame[~frame["debug"]], ""
    return frame, "SMOKE RUNS, NOT RESULTS: "


def figure(frame: pd.DataFrame, note: str) -> plt.Figure:
    protocols = [p for p in TITLES if p in set(frame["protocol"])]
    rows = frame[frame["metric"] == "recall@10"]
    with plt.rc_context(PAPER_STYLE):
        fig, axes = plt.subplots(
            1, len(protocols), figsize=(4.6 * len(protocols), 3.6), squeeze=False,
            layout="constrained",
        )  # fmt: skip
        for ax, protocol in zip(axes[0], protocols, strict=True):
            part = rows[rows["protocol"] == protocol]
            points = summarize(part, by=["strategy"]).set_index("strategy")
            names = ordered(points.index)
            points = points.loc[names]
            one_seed = points["n_seeds"] <= 1
            low = np.where(one_seed, points["boot_ci_low"], points["ci_low"])
            high = np.where(one_seed, points["boot_ci_high"], points["ci_high"])
            x = np.arange(len(names))
            ax.bar(
                x,
                points["mean"],
                yerr=np.vstack([points["mean"] - low, high - points["mean"]]),
                capsize=2,
                color=[style(n)["color"] for n in names],
                edgecolor="black",
                linewidth=0.5,
                hatch=[("//" if n.endswith("+dsm") else None) for n in names],
            )
            for i, name in enumerate(names):
                seeds = part[part["strategy"] == name]["value"].to_numpy()
                ax.plot(np.full(seeds.size, i), seeds, ".", color="black", markersize=3)
            ax.set_xticks(x, [label_of(n) for n in names], rotation=60, ha="right")
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("R@10")
            ax.set_title(TITLES[protocol])
            ax.grid(axis="y", alpha=0.3, linewidth=0.5)
        seeds = int(summarize(rows, by=["strategy"])["n_seeds"].max())
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
        points = summarize(part, by=["strategy", "metric"])
        n_queries = int(part["n_queries"].iloc[0])
        lines += [
            f"## {protocol} protocol ({n_queries} queries per run)",
            "",
            "| Strategy | R@10 | MRR@10 | nDCG@10 | R@10 bootstrap CI of one run |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in ordered(points["strategy"]):
            cells = []
            for metric in METRICS:
                row = points[(points["strategy"] == name) & (points["metric"] == metric)]
                cells.append(cell(row.iloc[0]) if not row.empty else "n/a")
            r10 = points[(points["strategy"] == name) & (points["metric"] == "recall@10")]
            boot = r10.iloc[0]
            cells.append(f"[{boot['boot_ci_low']:.3f}, {boot['boot_ci_high']:.3f}]")
            lines.append(f"| {label_of(name)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(
        "Mean over seeds [95% t-interval over seeds]; the last column is the 95% bootstrap CI "
        "over queries of a single run, averaged over seeds. Built by "
        "scripts/plot_strategy_bars.py from the result files."
    )
    return "\n".join(lines) + "\n"


def cell(row: pd.Series) -> str:
    if row["n_seeds"] > 1:
        return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return f"{row['mean']:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a folder of result files")
    parser.add_argument("--out", type=Path, default=None, help="default: the results folder")
    args = parser.parse_args(argv)
    out = args.out or args.results
    out.mkdir(parents=True, exist_ok=True)
    frame, note = load_runs(args.results)
    fig = figure(frame, note)
    for suffix in (".png", ".pdf"):
        fig.savefig(out / f"strategies_r10{suffix}", **SAVE)
    (out / "strategies.md").write_text(table(frame, note), encoding="utf-8")
    print(f"wrote {out / 'strategies_r10.png'}, .pdf and {out / 'strategies.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

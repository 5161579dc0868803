"""The paper's tables and figures, from result files only.

    python scripts/make_figures.py results/runs --out results/figures
    make figures RESULTS=results/paper_cpu/runs FIGURES=results/paper_cpu/figures

Writes to --out the main table as main_table.md and main_table.tex, and per figure a PNG, a PDF
and a CSV of the plotted points (mean, s.d. and count over seeds):

    figure           runs of                              shows
    drift_severity   experiment=drift_severity            ARR vs measured drift, real model pairs
    drift_synthetic  experiment=drift_synthetic           ARR vs synthetic drift level and drift
    sample_size      sample_size, sample_size_fraction    ARR vs Np, and vs Np / corpus size
    dsm_ablation     dsm_ablation                         ARR with DSM minus without, per adapter
    la_rank          la_rank                              ARR vs low-rank affine rank
    mlp_width        mlp_width                            ARR vs residual MLP hidden width
    mlp_loss         mlp_loss                             ARR of the MLP trained on cosine vs MSE
    ann_sensitivity  ann_sensitivity                      R@10 vs HNSW efSearch and latency, Flat
    corpus_size      corpus_size                          ARR vs corpus size N at a fixed Np
    corpus_size_real corpus_size_real                     the same, real models, offline corpus

A figure whose runs are absent is skipped with a message naming the command that makes them.
Runs are found by their experiment (the first tag an experiment file sets). When an experiment has
full runs, its debug (smoke) runs are left out; a figure made of smoke runs says so in its title.
Each panel holds one (dataset, model pair); several give one file each, suffixed with both.
Error bars: +-1 standard deviation over seeds (none with one seed).
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from collect_results import collect_or_say_why, short_model, summarize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from drift.mixed.plan import MIXED_FAMILIES

# Each protocol's primary metric and its axis label.
PRIMARY = {
    "knn": ("recall@10", "R@10 vs. full re-embedding\n(kNN ARR, fraction)"),
    "qrels": ("ndcg@10", "nDCG@10 with\nrelevance labels"),
}
# Short names of known models for crowded labels.
SHORT_MODELS = {
    "all-MiniLM-L6-v2": "MiniLM-L6",
    "paraphrase-MiniLM-L3-v2": "MiniLM-L3",
    "multilingual-e5-small": "e5-small",
    "all-mpnet-base-v2": "mpnet",
}
SHORT = {"knn": "R@10 (kNN ARR)", "qrels": "nDCG@10 (qrels)"}
# Display order and style (label, colour, marker) of strategies; Okabe-Ito colours.
STRATEGIES = {
    "full_reindex": ("Full re-index (oracle)", "#000000", "s"),
    "status_quo": ("Status quo (old model)", "#999999", "o"),
    "misaligned": ("Misaligned (no adapter)", "#D55E00", "x"),
    "adapter/procrustes": ("OP", "#0072B2", "o"),
    "adapter/low_rank_affine": ("LA", "#E69F00", "^"),
    "adapter/residual_mlp": ("MLP", "#009E73", "D"),
    "adapter/ridge": ("Ridge", "#CC79A7", "v"),
    "dual_index": ("Dual index (RRF)", "#56B4E9", "P"),
    "ceiling": ("Ceiling (uses ground truth)", "#F0E442", "*"),
}
# Not deployable without a full re-embedding, or a diagnostic: tables only, not sweep figures.
TABLE_ONLY = ("dual_index", "ceiling")
PAPER_STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
SAVE = {"dpi": 200, "bbox_inches": "tight"}
PANEL_WIDTH, PANEL_HEIGHT = 3.4, 2.6  # inches: two panels fill a two-column paper's width


class Skip(Exception):
    """A figure cannot be made from the runs at hand; the message says why and what to run."""


def strategy_order(strategy: str) -> tuple[int, int]:
    base = strategy.removesuffix("+dsm")
    rank = list(STRATEGIES).index(base) if base in STRATEGIES else len(STRATEGIES)
    return rank, strategy.endswith("+dsm")


def ordered(strategies: Sequence[str]) -> list[str]:
    return sorted(set(strategies), key=strategy_order)


def style(strategy: str) -> dict[str, object]:
    """matplotlib keywords for one strategy: +DSM variants share the colour, dashed and hollow."""
    base = strategy.removesuffix("+dsm")
    label, color, marker = STRATEGIES.get(base, (base.removeprefix("adapter/"), "#555555", "."))
    dsm = strategy.endswith("+dsm")
    return {
        "label": f"{label}+DSM" if dsm else label,
        "color": color,
        "marker": marker,
        "linestyle": "--" if dsm else "-",
        "markerfacecolor": "white" if dsm else color,
    }


def label_of(strategy: str) -> str:
    return str(style(strategy)["label"])


# -- selecting runs ---------------------------------------------------------------------------
def runs_of(frame: pd.DataFrame, experiments: Sequence[str]) -> tuple[pd.DataFrame, str]:
    """Rows of these experiments and of the paper's strategies (those beyond it, which runs of
    the default config also answer, have their own figures: scripts/plot_migration.py); full
    runs only when there are any. Returns (rows, note)."""
    rows = frame[frame["experiment"].isin(experiments)] if not frame.empty else frame
    if rows.empty:
        commands = " and ".join(f"python -m drift.run -m experiment={e}" for e in experiments)
        raise Skip(f"no runs of experiment {'/'.join(experiments)}; make them with: {commands}")
    rows = rows[~rows["strategy"].str.split("/").str[0].isin(MIXED_FAMILIES)]
    if rows.empty:
        raise Skip(
            f"the runs of experiment {'/'.join(experiments)} hold only strategies beyond the "
            "paper (scripts/plot_migration.py draws those); add the paper's to eval.strategies"
        )
    if (~rows["debug"]).any():
        return rows[~rows["debug"]], ""
    return rows, "SMOKE RUNS, NOT RESULTS: "


def contexts(rows: pd.DataFrame, keys: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """Split rows by `keys` (e.g. dataset and pair): [(file suffix, rows)], no suffix if one."""
    groups = list(rows.groupby(list(keys), sort=True))
    if len(groups) == 1:
        return [("", groups[0][1])]
    return [("--" + "--".join(slug(str(v)) for v in values), part) for values, part in groups]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("_")


def describe(rows: pd.DataFrame, note: str) -> str:
    """Second title line: what the runs are (pair, dataset, index, seeds)."""
    parts = []
    pairs, olds = rows["pair"].unique(), rows["old_model"].unique()
    if len(pairs) == 1:
        parts.append(str(pairs[0]))
    elif len(olds) == 1:
        parts.append(f"old model {short_model(str(olds[0]))}")
    datasets = sorted(rows["dataset"].unique())
    parts.append("/".join(datasets))
    kinds = sorted(rows["index_kind"].unique())
    parts.append("/".join(k.upper() if k != "hnsw" else "HNSW" for k in kinds))
    seeds = rows.groupby("group")["seed"].nunique()
    n = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    parts.append(f"{n} seed{'s' if seeds.max() > 1 else ''}")
    if "corpus_subset" in rows and (rows["corpus_subset"] == "random").all():
        parts.append("random corpus subsets")
    if not rows["real_weights"].all():
        parts.append("synthetic encoders")
    return note + ", ".join(parts)


def primary(rows: pd.DataFrame, protocol: str) -> pd.DataFrame:
    metric = PRIMARY[protocol][0]
    return rows[(rows["protocol"] == protocol) & (rows["metric"] == metric)]


def protocols_of(rows: pd.DataFrame) -> list[str]:
    return [p for p in PRIMARY if p in set(rows["protocol"])]


# -- drawing ----------------------------------------------------------------------------------
def new_figure(n_rows: int, n_cols: int) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(PANEL_WIDTH * n_cols, PANEL_HEIGHT * n_rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    return fig, axes


def finish(fig: Figure, axes: np.ndarray, title: str, subtitle: str) -> Figure:
    """Suptitle, one legend below all panels (deduplicated), light grids."""
    handles: dict[str, object] = {}
    for ax in axes.flat:
        ax.grid(alpha=0.3, linewidth=0.5)
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    width = int(fig.get_figwidth() * 15)  # characters per line at 9 pt
    fig.suptitle("\n".join(textwrap.wrap(title, width) + textwrap.wrap(subtitle, width + 10)))
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncol=min(4, len(handles)),
            frameon=False,
        )
    return fig


def error_lines(
    ax: plt.Axes, points: pd.DataFrame, x: str, strategies: Sequence[str] | None = None
) -> None:
    """One line per strategy through its (x, mean) points, +-1 s.d. error bars."""
    for strategy in ordered(points["strategy"]):
        if strategies is not None and strategy not in strategies:
            continue
        line = points[points["strategy"] == strategy].sort_values(x)
        ax.errorbar(
            line[x],
            line["mean"],
            yerr=line["std"].fillna(0.0),
            capsize=2,
            markersize=4,
            linewidth=1.2,
            **style(strategy),
        )


@dataclass(frozen=True)
class Axis:
    """An x axis: group runs by `by` (a design column), plot at `x` (`by`, or a measured column
    averaged over the group's runs, such as the drift), optionally on a log scale (base)."""

    by: str
    label: str
    x: str | None = None
    log: int | None = None


def log_ticks_at(ax: plt.Axes, values: pd.Series, base: int = 10) -> None:
    """Log x axis labelled at the swept values themselves (5000 -> "5k"), skipping a value too
    close to a larger one to label legibly; no minor labels."""
    ax.set_xscale("log", base=base)
    ticks: list[float] = []
    for value in sorted(values.dropna().unique(), reverse=True):
        if not ticks or ticks[-1] / value >= 1.3:
            ticks.append(value)
    ax.set_xticks(ticks, [tick_label(v) for v in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def tick_label(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if value >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def sweep_points(rows: pd.DataFrame, by: str, protocol: str) -> pd.DataFrame:
    """Mean and s.d. over seeds of the protocol's primary metric, per (`by`, strategy)."""
    data = primary(rows, protocol)
    data = data[~data["strategy"].isin(TABLE_ONLY)].dropna(subset=[by])
    points = summarize(data, by=[by, "strategy"])
    return points.assign(protocol=protocol, drift=1.0 - points["drift_knn_overlap"])


def sweep_figure(
    rows: pd.DataFrame, note: str, *, axes_x: Sequence[Axis], title: str
) -> tuple[Figure, pd.DataFrame]:
    """Line plots: one row of panels per protocol, one column per x axis (one x axis: the
    protocols side by side)."""
    protocols = protocols_of(rows)
    if len(axes_x) == 1:
        fig, axes = new_figure(1, len(protocols))
        axes = axes.T
    else:
        fig, axes = new_figure(len(protocols), len(axes_x))
    tables = []
    for i, protocol in enumerate(protocols):
        for j, axis in enumerate(axes_x):
            ax = axes[i, j]
            points = sweep_points(rows, axis.by, protocol)
            error_lines(ax, points, axis.x or axis.by)
            if axis.log:
                log_ticks_at(ax, points[axis.x or axis.by], axis.log)
            ax.set_xlabel(axis.label)
            ax.set_ylabel(PRIMARY[protocol][1])
            tables.append(points)
    table = pd.concat(tables, ignore_index=True).drop_duplicates(ignore_index=True)
    return finish(fig, axes, title, describe(rows, note)), table


# -- figures ----------------------------------------------------------------------------------
def fig_drift_severity(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    fig, table = sweep_figure(
        rows,
        note,
        axes_x=[Axis("pair", "measured drift (1 - 10-NN overlap)", "drift")],
        title="ARR vs. drift severity: one old model, new models ordered by measured drift",
    )
    pairs = table.drop_duplicates("pair")
    for ax in fig.axes[: len(protocols_of(rows))]:
        top = ax.secondary_xaxis("top")
        top.set_xticks(
            pairs["drift"].to_numpy(),
            [
                f"{SHORT_MODELS.get(pair.split(' -> ')[-1], pair.split(' -> ')[-1])} "
                f"(CKA {cka:.2f})"
                for pair, cka in zip(pairs["pair"], pairs["drift_cka"], strict=True)
            ],
            fontsize=7,
            rotation=30,
            ha="left",
        )
    return fig, table


def fig_drift_synthetic(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        rows,
        note,
        axes_x=[
            Axis("level", "synthetic drift level (0 = none, 1 = severe)"),
            Axis("level", "measured drift: 1 - 10-NN overlap (fraction)", "drift"),
        ],
        title="ARR vs. drift level: synthetic encoder family (not real models)",
    )


def fig_sample_size(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        rows.assign(np_percent=100.0 * rows["np_fraction"]),
        note,
        axes_x=[
            Axis("np", "Np: pairs encoded by both models (items, log scale)", log=10),
            Axis("np_percent", "Np as a share of the corpus (%, log scale)", log=10),
        ],
        title="ARR vs. number of pairs encoded by both models (Np)",
    )


def fig_la_rank(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        rows,
        note,
        axes_x=[Axis("la_rank", "low-rank affine rank r (log scale)", log=2)],
        title="Low-rank affine adapter: ARR vs. rank (OP refit as reference)",
    )


def fig_mlp_width(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        rows,
        note,
        axes_x=[Axis("mlp_hidden", "residual MLP hidden width (units, log scale)", log=2)],
        title="Residual MLP adapter: ARR vs. hidden width (closed-form adapters as reference)",
    )


def dsm_deltas(rows: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Per Np and adapter: ARR with DSM minus ARR without, paired by seed, over seeds."""
    data = primary(rows, protocol)
    data = data[data["method"].notna()]
    wide = data.pivot_table(index=["np", "method", "seed"], columns="dsm", values="value")
    if True not in wide or False not in wide:
        raise Skip("dsm_ablation: its runs lack adapters fitted both without and with DSM")
    delta = (wide[True] - wide[False]).dropna().rename("value").reset_index()
    delta["strategy"] = "adapter/" + delta["method"]
    return summarize(delta, by=["np", "strategy"]).assign(protocol=protocol)


def fig_dsm_ablation(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    protocols = protocols_of(rows)
    fig, axes = new_figure(1, len(protocols))
    tables = []
    for j, protocol in enumerate(protocols):
        ax = axes[0, j]
        points = dsm_deltas(rows, protocol)
        ax.axhline(0.0, color="#999999", linewidth=1)
        if protocol == "knn":
            ax.axhspan(
                0.005, 0.015, color="#009E73", alpha=0.12, label="paper: DSM adds 0.005-0.015"
            )
        error_lines(ax, points, "np")
        log_ticks_at(ax, points["np"])
        ax.set_xlabel("Np: pairs encoded by both models (items, log scale)")
        ax.set_ylabel(f"with DSM minus without:\n{SHORT[protocol]}")
        tables.append(points)
    title = "Diagonal scaling (DSM) ablation: change from adding DSM to each adapter"
    return finish(fig, axes, title, describe(rows, note)), pd.concat(tables, ignore_index=True)


def fig_mlp_loss(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        rows,
        note,
        axes_x=[Axis("mlp_loss", "residual MLP training loss")],
        title="Residual MLP adapter: cosine vs. MSE training loss (others as reference)",
    )


def fig_ann_sensitivity(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    """R@10 against efSearch and against search time; Flat (exact) as dotted levels."""
    data = primary(rows, "knn")
    data = data[~data["strategy"].isin(TABLE_ONLY)]
    if data.empty:
        raise Skip("ann_sensitivity: no knn-protocol metrics in its runs")
    hnsw = summarize(data[data["index_kind"] == "hnsw"], by=["ef_search", "strategy"])
    flat = summarize(data[data["index_kind"] == "flat"], by=["strategy"])
    fig, axes = new_figure(1, 2)
    for ax, x, label in (
        (axes[0, 0], "ef_search", "HNSW efSearch (candidate list length, log scale)"),
        (axes[0, 1], "search_us_per_query", "search time (µs per query, batched, log scale)"),
    ):
        error_lines(ax, hnsw, x)
        for strategy, level in zip(flat["strategy"], flat["mean"], strict=True):
            ax.axhline(level, color=style(strategy)["color"], linestyle=":", linewidth=1)
        if x == "ef_search":
            log_ticks_at(ax, hnsw[x])
        else:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel(PRIMARY["knn"][1])
    if not flat.empty:
        axes[0, 0].plot([], [], color="#555555", linestyle=":", label="dotted: Flat (exact)")
    title = "ANN sensitivity: HNSW efSearch vs. exact search (Flat), adapter loss vs. index loss"
    table = pd.concat([hnsw.assign(index="hnsw"), flat.assign(index="flat")], ignore_index=True)
    return finish(fig, axes, title, describe(rows, note)), table


def fig_corpus_size(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        rows,
        note,
        axes_x=[Axis("n_corpus", "corpus size N (items, log scale)", log=10)],
        title="ARR vs. corpus size at a fixed number of pairs (Np)",
    )


@dataclass(frozen=True)
class FigureSpec:
    experiments: tuple[str, ...]
    draw: Callable[[pd.DataFrame, str], tuple[Figure, pd.DataFrame]]
    split_by: tuple[str, ...] = ("dataset", "pair")


FIGURES = {
    "drift_severity": FigureSpec(("drift_severity",), fig_drift_severity, ("dataset",)),
    "drift_synthetic": FigureSpec(("drift_synthetic",), fig_drift_synthetic),
    "sample_size": FigureSpec(("sample_size", "sample_size_fraction"), fig_sample_size),
    "dsm_ablation": FigureSpec(("dsm_ablation",), fig_dsm_ablation),
    "la_rank": FigureSpec(("la_rank",), fig_la_rank),
    "mlp_width": FigureSpec(("mlp_width",), fig_mlp_width),
    "mlp_loss": FigureSpec(("mlp_loss",), fig_mlp_loss),
    "ann_sensitivity": FigureSpec(("ann_sensitivity",), fig_ann_sensitivity),
    "corpus_size": FigureSpec(("corpus_size",), fig_corpus_size, ("dataset", "pair", "level")),
    "corpus_size_real": FigureSpec(
        ("corpus_size_real",), fig_corpus_size, ("dataset", "pair", "corpus_subset")
    ),
}


def build_figures(
    frame: pd.DataFrame,
) -> tuple[dict[str, tuple[Figure, pd.DataFrame]], dict[str, str]]:
    """Every figure the runs allow: ({file stem: (figure, plotted points)}, {name: why skipped})."""
    made, skipped = {}, {}
    with plt.rc_context(PAPER_STYLE):
        for name, spec in FIGURES.items():
            try:
                rows, note = runs_of(frame, spec.experiments)
                for suffix, part in contexts(rows, spec.split_by):
                    made[name + suffix] = spec.draw(part, note)
            except Skip as why:
                skipped[name] = str(why)
    return made, skipped


# -- the main table ---------------------------------------------------------------------------
# The experiments whose runs fill the main table: text (main_table) and image upgrades, one
# column block per dataset and model pair, as in the paper's Table 1.
MAIN_TABLE = ("main_table", "image_efficientnet", "image_clip_laion")
# (protocol, metric, column header) of the main table, per dataset and pair.
TABLE_COLUMNS = [
    ("knn", "recall@10", "R@10 (kNN ARR)"),
    ("knn", "mrr@10", "MRR@10 (kNN)"),
    ("qrels", "ndcg@10", "nDCG@10 (qrels)"),
    ("qrels", "arr_ndcg@10", "ARR nDCG@10 (qrels)"),
]


@dataclass
class Table:
    """The main table as cells, rendered to Markdown or LaTeX."""

    title: str
    blocks: list[tuple[str, list[str]]]  # (dataset and pair, column headers)
    rows: list[tuple[str, list[str]]]  # (strategy label, cells across all blocks)
    notes: list[str]

    def markdown(self) -> str:
        """One table; column headers name the dataset and pair only when there are several."""
        several = len(self.blocks) > 1
        headers = [
            f"{block}: {column}" if several else column
            for block, columns in self.blocks
            for column in columns
        ]
        lines = [
            f"# {self.title}",
            "",
            *([] if several else [f"{self.blocks[0][0]}.", ""]),
            "| Strategy | " + " | ".join(headers) + " |",
            "|---|" + "---:|" * len(headers),
            *[f"| {label} | " + " | ".join(cells) + " |" for label, cells in self.rows],
            "",
            *[f"- {note}" for note in self.notes],
        ]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        n_cols = sum(len(columns) for _, columns in self.blocks)
        spans, rules, start = [], [], 2
        for block, columns in self.blocks:
            spans.append(rf"\multicolumn{{{len(columns)}}}{{c}}{{{tex(block)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + len(columns) - 1}}}")
            start += len(columns)
        headers = [tex(column) for _, columns in self.blocks for column in columns]
        body = [
            f"{tex(label)} & " + " & ".join(tex_cell(c) for c in cells) + r" \\"
            for label, cells in self.rows
        ]
        return "\n".join(
            [
                "% Generated by scripts/make_figures.py from result files; do not edit by hand.",
                "% Needs \\usepackage{booktabs}.",
                r"\begin{table*}[t]",
                r"\centering\small",
                r"\begin{tabular}{l" + "c" * n_cols + "}",
                r"\toprule",
                " & " + " & ".join(spans) + r" \\",
                " ".join(rules),
                "Strategy & " + " & ".join(headers) + r" \\",
                r"\midrule",
                *body,
                r"\bottomrule",
                r"\end{tabular}",
                rf"\caption{{{tex(self.title)}. " + " ".join(tex(n) for n in self.notes) + "}",
                r"\label{tab:main}",
                r"\end{table*}",
                "",
            ]
        )


def tex(text: str) -> str:
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("#", r"\#"),
        ("±", r"$\pm$"),
        ("->", r"$\to$"),
    ):
        text = text.replace(char, escaped)
    return text


def tex_cell(text: str) -> str:
    """A numeric cell in math mode ("0.974 ± 0.004" -> "$0.974 \\pm 0.004$"), others escaped."""
    if not text[:1].isdigit():
        return tex(text)
    return "$" + text.replace(" ± ", r" \pm ") + "$"


def cell(mean: float, std: float, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")


def main_table(frame: pd.DataFrame) -> Table:
    """The paper's Table 1 shape: strategies x (dataset, pair) x metrics, mean ± s.d. over seeds."""
    rows, note = runs_of(frame, MAIN_TABLE)
    points = summarize(rows, by=["dataset", "pair", "protocol", "strategy", "metric"])
    blocks, columns = [], []
    for (dataset, pair), part in points.groupby(["dataset", "pair"], sort=True):
        present = [
            c for c in TABLE_COLUMNS if ((part.protocol == c[0]) & (part.metric == c[1])).any()
        ]
        blocks.append((f"{dataset}, {pair}", [header for _, _, header in present] + ["us/query"]))
        columns.append((dataset, pair, present))
    table_rows = []
    for strategy in ordered(points["strategy"]):
        cells = []
        for dataset, pair, present in columns:
            mine = points[
                (points.dataset == dataset) & (points.pair == pair) & (points.strategy == strategy)
            ]
            for protocol, metric, _ in present:
                hit = mine[(mine.protocol == protocol) & (mine.metric == metric)]
                cells.append(cell(hit["mean"].iloc[0], hit["std"].iloc[0]) if len(hit) else "n/a")
            speed = mine[mine.protocol == mine.protocol.iloc[0]] if len(mine) else mine
            cells.append(cell(speed["us_per_query"].iloc[0], math.nan, 1) if len(speed) else "n/a")
        table_rows.append((label_of(strategy), cells))
    return Table(
        title=note + "ARR after an embedding-model upgrade without re-indexing",
        blocks=blocks,
        rows=table_rows,
        notes=table_notes(rows),
    )


CAPPED = (
    ", capped by the eligible corpus items: every seed fits on the same pairs and differs only"
    " in the train/validation split and the fitting's randomness"
)


def table_notes(rows: pd.DataFrame) -> list[str]:
    runs = rows.drop_duplicates("file")
    seeds = runs.groupby(["dataset", "pair"])["seed"].nunique()
    notes = [
        f"Mean ± s.d. over seeds ({', '.join(f'{d}: {n}' for (d, _), n in seeds.items())}); "
        "each run's 95% bootstrap CIs over queries are in the result files.",
        "kNN protocol (the paper's): relevance = the new model's exact top-10 over the "
        "re-embedded corpus, so R@10 is the ARR and the full re-index with exact search scores 1; "
        "qrels protocol: dataset relevance labels, ARR = strategy / full re-index.",
    ]
    for (dataset, pair), part in runs.groupby(["dataset", "pair"]):
        np_used = sorted(part["np"].unique())
        requested = sorted(part["np_requested"].unique())
        kinds = ", ".join(sorted(part["index_kind"].unique()))
        notes.append(
            f"{dataset}, {pair}: {int(part['n_corpus'].iloc[0]):,} documents, "
            f"{int(part['n_queries'].iloc[0]):,} queries; Np = "
            + "/".join(f"{int(n):,}" for n in np_used)
            + f" pairs (requested {'/'.join(f'{int(n):,}' for n in requested)}"
            + (CAPPED if max(requested) > max(np_used) else "")
            + f"); index {kinds}; "
            f"1 - 10-NN overlap {1 - part['drift_knn_overlap'].mean():.3f}, "
            f"CKA {part['drift_cka'].mean():.3f}."
        )
    reasons = sorted({r for r in runs["not_applicable"].dropna() if r})
    notes += [f"n/a: {reason}." for reason in reasons]
    notes.append(
        "us/query: whole-batch time / queries, faiss threads as recorded; the adapter's share "
        "is in the result files."
    )
    return notes


# -- writing ----------------------------------------------------------------------------------
def write_all(frame: pd.DataFrame, out_dir: str | Path) -> tuple[list[Path], dict[str, str]]:
    """Main table (md, tex) and every figure (png, pdf, csv) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = [], {}
    try:
        table = main_table(frame)
        for suffix, text in ((".md", table.markdown()), (".tex", table.latex())):
            path = out / f"main_table{suffix}"
            path.write_text(text)
            written.append(path)
    except Skip as why:
        skipped["main_table"] = str(why)
    figures, skipped_figures = build_figures(frame)
    skipped.update(skipped_figures)
    written += save_figures(figures, out)
    return written, skipped


def save_figures(figures: dict[str, tuple[Figure, pd.DataFrame]], out: Path) -> list[Path]:
    """Each figure as PNG and PDF beside a CSV of its plotted points; returns the paths."""
    written = []
    for stem, (figure, points) in figures.items():
        for suffix in (".png", ".pdf"):
            figure.savefig(out / f"{stem}{suffix}", **SAVE)
            written.append(out / f"{stem}{suffix}")
        points.to_csv(out / f"{stem}.csv", index=False)
        written.append(out / f"{stem}.csv")
        plt.close(figure)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", default=["results/runs"], help="result folders")
    parser.add_argument("--out", default="results/figures", help="output folder")
    args = parser.parse_args(argv)
    plt.switch_backend("Agg")
    frame = collect_or_say_why(args.results)
    if frame is None:
        return 2
    written, skipped = write_all(frame, args.out)
    for path in written:
        print(f"wrote {path}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if frame["debug"].any():
        print("WARNING: debug (smoke) runs were found; figures made only of them say so.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

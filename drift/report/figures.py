"""The paper's tables and figures, from result files only.

    drift figures results/runs --out results/figures
    make figures RESULTS=results/paper_cpu/runs FIGURES=results/paper_cpu/figures

Writes to --out the main table as main_table.md (one table per dataset and model pair, the pair
said once when all share it), main_table.tex (one table, a column group per dataset) and
main_table.csv (the same cells in one wide table, each column headed by its dataset, pair and
metric in full), and per figure a PNG, a PDF and a CSV of the plotted points (mean, s.d. and count
over seeds):

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
Each figure holds one (dataset, model pair); several give one file each, suffixed with both. Runs
that differ in a setting beyond the figure's own sweep (say, two la_rank sweeps at different Np)
are never pooled: each such design gets its own file, suffixed and subtitled with the setting
(--np_requested-500); the main table gives it its own column block. A rerun (same design and
seed) counts once, the newest file; the command lists the files it set aside. Runs that differ
only in a setting without a column in the tidy table stop the command with an error naming them.
Error bars: +-1 standard deviation over seeds (none with one seed), as each subtitle says.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from drift.adapters import ADAPTERS
from drift.core.records import short_model
from drift.report.collect import (
    PooledDesignsError,
    one_run_per_seed,
    setting_values,
    summarize,
    varying_settings,
)
from drift.retrieval.mixed.plan import MIXED_FAMILIES

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
# Display order and style (label, colour, marker) of the strategies that are no adapter, before
# and after the adapters; Okabe-Ito colours. Adapters carry theirs (`Adapter.display`).
STRATEGIES_BEFORE = {
    "full_reindex": ("Full re-index (oracle)", "#000000", "s"),
    "status_quo": ("Status quo (old model)", "#999999", "o"),
    "misaligned": ("Misaligned (no adapter)", "#D55E00", "x"),
}
STRATEGIES_AFTER = {
    "dual_index": ("Dual index (RRF)", "#56B4E9", "P"),
    "ceiling": ("Ceiling (uses ground truth)", "#F0E442", "*"),
    "oracle_query": ("Oracle query (uses ground truth)", "#DDCC77", "X"),
}
# Not deployable without a full re-embedding, or a diagnostic: tables only, not sweep figures.
TABLE_ONLY = ("dual_index", "ceiling", "oracle_query")
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
# Settings that may differ between runs drawn at one point (same x, strategy and seed) without
# their being different designs: the experiment's name (sample_size and sample_size_fraction feed
# one figure) and an Np request capped to the same Np (the same pairs). The newest run counts.
EQUIVALENT = ("experiment", "task_name", "np_requested", "np_fraction_requested")
SD_BARS = "error bars: ±1 s.d. over seeds"
PANEL_WIDTH, PANEL_HEIGHT = 3.4, 2.6  # inches: two panels fill a two-column paper's width


class Skip(Exception):
    """A figure cannot be made from the runs at hand; the message says why and what to run."""


def strategies() -> dict[str, tuple[str, str, str]]:
    """Display order and style of the known strategies: those before the adapters, the adapter
    kinds with a `display` in registry order, those after."""
    adapters = {f"adapter/{kind}": cls.display for kind, cls in ADAPTERS.items() if cls.display}
    return {**STRATEGIES_BEFORE, **adapters, **STRATEGIES_AFTER}


def strategy_order(strategy: str) -> tuple[int, bool, str]:
    """Known strategies in `strategies()` order, +DSM after its base; the others after them by
    name (a set's order would change from one process to the next)."""
    base = strategy.removesuffix("+dsm")
    known = list(strategies())
    rank = known.index(base) if base in known else len(known)
    return rank, strategy.endswith("+dsm"), strategy


def ordered(strategies: Sequence[str]) -> list[str]:
    return sorted(set(strategies), key=strategy_order)


def style(strategy: str) -> dict[str, object]:
    """matplotlib keywords for one strategy: +DSM variants share the colour, dashed and hollow."""
    base = strategy.removesuffix("+dsm")
    label, color, marker = strategies().get(base, (base.removeprefix("adapter/"), "#555555", "."))
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
    the default config also answer, have their own figures: drift/report/migration_figures.py); full
    runs only when there are any. Returns (rows, note)."""
    rows = frame[frame["experiment"].isin(experiments)] if not frame.empty else frame
    if rows.empty:
        commands = " and ".join(f"python -m drift.run -m experiment={e}" for e in experiments)
        raise Skip(f"no runs of experiment {'/'.join(experiments)}; make them with: {commands}")
    rows = rows[~rows["strategy"].str.split("/").str[0].isin(MIXED_FAMILIES)]
    if rows.empty:
        raise Skip(
            f"the runs of experiment {'/'.join(experiments)} hold only strategies beyond the "
            "paper (drift/report/migration_figures.py draws those); add the paper's to "
            "eval.strategies"
        )
    if (~rows["debug"]).any():
        return rows[~rows["debug"]], ""
    return rows, "SMOKE RUNS, NOT RESULTS: "


@dataclass(frozen=True)
class Context:
    """The runs one figure file (or one column block of the main table) shows."""

    suffix: str  # of the file name: "" when the figure has one context
    rows: pd.DataFrame
    note: str  # title prefix: says when the runs are smoke runs
    settings: tuple[tuple[str, str], ...] = ()  # (column, value) setting it apart from siblings

    def subtitle(self, bars: str = SD_BARS) -> str:
        """What the runs are, the settings that set them apart and what the error bars are."""
        text = ", ".join([describe(self.rows, self.note), *(f"{k}={v}" for k, v in self.settings)])
        one_seed = self.rows.groupby("group")["seed"].nunique().max() <= 1
        return f"{text}\n{'one seed: no error bars' if one_seed else bars}"


def contexts(
    rows: pd.DataFrame, split_by: Sequence[str], sweeps: Sequence[str], note: str
) -> list[Context]:
    """Split rows by `split_by` (e.g. dataset and pair; file suffix: their values, when there are
    several) and then by every run-level setting that still differs, other than `sweeps` (the
    settings the figure draws along; file suffix: --setting-value), so that no line pools designs.
    """
    split = list(split_by)
    groups = list(rows.groupby(split, sort=True, dropna=False))
    found = []
    for values, part in groups:
        stem = "".join(f"--{slug(str(v))}" for v in values) if len(groups) > 1 else ""
        extra = varying_settings(part, exclude=[*split, *sweeps])
        if not extra:
            found.append(Context(stem, part, note))
            continue
        for _, design in part.groupby(extra, sort=True, dropna=False):
            settings = tuple(zip(extra, setting_values(design[extra].iloc[0]), strict=True))
            suffix = stem + "".join(f"--{slug(f'{k}-{v}')}" for k, v in settings)
            found.append(Context(suffix, design, note, settings))
    return found


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
    if "corpus_subset" in rows and rows["corpus_subset"].nunique() == 1:
        subset = rows["corpus_subset"].iloc[0]
        if subset in ("random", "nested"):
            parts.append(f"{subset} corpus subsets")
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
    """Suptitle (the subtitle's own line breaks kept), one legend below all panels
    (deduplicated), light grids."""
    handles: dict[str, object] = {}
    for ax in axes.flat:
        ax.grid(alpha=0.3, linewidth=0.5)
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    width = int(fig.get_figwidth() * 15)  # characters per line at 9 pt
    lines = [line for part in subtitle.split("\n") for line in textwrap.wrap(part, width + 10)]
    fig.suptitle("\n".join(textwrap.wrap(title, width) + lines))
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncol=min(4, len(handles)),
            frameon=False,
        )
    return fig


def error_lines(ax: plt.Axes, points: pd.DataFrame, x: str) -> None:
    """One line per strategy through its (x, mean) points, +-1 s.d. error bars."""
    for strategy in ordered(points["strategy"]):
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


def category_points(ax: plt.Axes, points: pd.DataFrame, x: str, order_by: str | None) -> None:
    """Per category of `x` (in order of the column `order_by`, else of their values): each
    strategy's mean with +-1 s.d. error bars, the strategies side by side and unjoined (separate
    things, such as two losses or model pairs, have no scale to draw a line along)."""
    key = points.groupby(x)[order_by].mean() if order_by else None
    categories = sorted(points[x].unique(), key=lambda c: key[c] if key is not None else str(c))
    strategies = ordered(points["strategy"])
    step = min(0.1, 0.6 / len(strategies))
    for i, strategy in enumerate(strategies):
        mine = points[points["strategy"] == strategy]
        offset = step * (i - (len(strategies) - 1) / 2)
        ax.errorbar(
            mine[x].map({c: j for j, c in enumerate(categories)}) + offset,
            mine["mean"],
            yerr=mine["std"].fillna(0.0),
            capsize=2,
            markersize=4,
            **{**style(strategy), "linestyle": "none"},
        )
    ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    ax.set_xlim(-0.5, len(categories) - 0.5)


@dataclass(frozen=True)
class Axis:
    """An x axis: group runs by `by` (a design column), plot at `x` (`by`, or a measured column
    averaged over the group's runs, such as the drift), optionally on a log scale (base). A
    `categorical` axis places the values of `by` side by side as labels, in order of `x`."""

    by: str
    label: str
    x: str | None = None
    log: int | None = None
    categorical: bool = False


# Two tick labels of a log axis closer than this ratio would touch: the second moves a row down.
CLOSE = 1.3


def log_ticks_at(ax: plt.Axes, values: pd.Series, base: int = 10) -> None:
    """Log x axis labelled at the swept values themselves (5000 -> "5k"); a value too close to
    the one before to share its row of labels is labelled on a second row below (5000 and 5818),
    and one too close on both rows is left unlabelled; no minor labels."""
    ax.set_xscale("log", base=base)
    ticks = sorted(values.dropna().unique())
    last: list[float | None] = [None, None]  # the last labelled value on each row
    labels = []
    for value in ticks:
        row = next((r for r, v in enumerate(last) if v is None or value / v >= CLOSE), None)
        if row is not None:
            last[row] = value
        labels.append("" if row is None else "\n" * row + tick_label(value))
    ax.set_xticks(ticks, labels)
    ax.xaxis.set_minor_formatter(NullFormatter())


def tick_label(value: float) -> str:
    """A swept value as a short exact label: 1000 -> "1k", 2500 -> "2.5k", 1024 -> "1024";
    a fraction to two significant digits (8.59 -> "8.6")."""
    if not float(value).is_integer():
        return f"{value:.2g}" if value < 10 else f"{value:.0f}"
    whole = int(value)
    for unit, suffix in ((1_000_000, "M"), (1000, "k")):
        if whole >= unit and (whole * 10) % unit == 0:  # exact with one decimal at most
            return f"{whole / unit:g}{suffix}"
    return str(whole)


def sweep_points(rows: pd.DataFrame, by: str, protocol: str) -> pd.DataFrame:
    """Mean and s.d. over seeds of the protocol's primary metric, per (`by`, strategy)."""
    data = primary(rows, protocol)
    data = data[~data["strategy"].isin(TABLE_ONLY)].dropna(subset=[by])
    points = summarize(data, by=[by, "strategy"], same=EQUIVALENT)
    return points.assign(protocol=protocol, drift=1.0 - points["drift_knn_overlap"])


def sweep_figure(
    context: Context, *, axes_x: Sequence[Axis], title: str
) -> tuple[Figure, pd.DataFrame]:
    """Line plots: one row of panels per protocol, one column per x axis (one x axis: the
    protocols side by side)."""
    rows = context.rows
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
            if axis.categorical:
                category_points(ax, points, axis.by, axis.x)
            else:
                error_lines(ax, points, axis.x or axis.by)
            if axis.log:
                log_ticks_at(ax, points[axis.x or axis.by], axis.log)
            ax.set_xlabel(axis.label)
            ax.set_ylabel(PRIMARY[protocol][1])
            tables.append(points)
    table = pd.concat(tables, ignore_index=True).drop_duplicates(ignore_index=True)
    return finish(fig, axes, title, context.subtitle()), table


# -- figures ----------------------------------------------------------------------------------
def fig_drift_severity(context: Context) -> tuple[Figure, pd.DataFrame]:
    """One group of points per new model, in order of measured drift (each a separate pair: no
    lines join them), labelled with its drift and CKA."""
    fig, table = sweep_figure(
        context,
        axes_x=[Axis("pair", "new model (drift = 1 - 10-NN overlap)", "drift", categorical=True)],
        title="ARR vs. drift severity: one old model, new models ordered by measured drift",
    )
    pairs = table.drop_duplicates("pair").sort_values("drift")
    labels = [
        f"{SHORT_MODELS.get(new, new)}\ndrift {drift:.2f}\nCKA {cka:.2f}"
        for new, drift, cka in zip(
            pairs["pair"].str.split(" -> ").str[-1], pairs["drift"], pairs["drift_cka"], strict=True
        )
    ]
    for ax in fig.axes[: len(protocols_of(context.rows))]:
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
    return fig, table


def fig_drift_synthetic(context: Context) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        context,
        axes_x=[
            Axis("level", synthetic_level_label(context.rows)),
            Axis("level", "measured drift: 1 - 10-NN overlap (fraction)", "drift"),
        ],
        title="ARR vs. drift level: synthetic encoder family (not real models)",
    )


def synthetic_level_label(rows: pd.DataFrame) -> str:
    """The level axis says what level 0 is: no planted drift, yet the old and new synthetic
    models are different projections of one latent (rows of one random matrix), so their
    neighbourhoods already differ; the measured drift there is the runs' own."""
    dims = sorted({(int(o), int(n)) for o, n in zip(rows["old_dim"], rows["new_dim"], strict=True)})
    shapes = " / ".join(f"{o}-d and {n}-d" for o, n in dims)
    label = f"synthetic drift level (1: severe; 0: none planted,\nbut the {shapes} projections"
    label += " of one latent differ"
    at_zero = rows.loc[rows["level"] == 0, "drift_knn_overlap"]
    if at_zero.empty:
        return label + ")"
    return label + f":\n1 - 10-NN overlap {1 - at_zero.mean():.2f} at level 0)"


def fig_sample_size(context: Context) -> tuple[Figure, pd.DataFrame]:
    rows = context.rows
    return sweep_figure(
        replace(context, rows=rows.assign(np_percent=100.0 * rows["np_fraction"])),
        axes_x=[
            Axis("np", "Np: pairs encoded by both models (items, log scale)", log=10),
            Axis("np_percent", "Np as a share of the corpus (%, log scale)", log=10),
        ],
        title="ARR vs. number of pairs encoded by both models (Np)",
    )


def fig_la_rank(context: Context) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        context,
        axes_x=[Axis("la_rank", "low-rank affine rank r (log scale)", log=2)],
        title="Low-rank affine adapter: ARR vs. rank (OP refit as reference)",
    )


def fig_mlp_width(context: Context) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        context,
        axes_x=[Axis("mlp_hidden", "residual MLP hidden width (units, log scale)", log=2)],
        title="Residual MLP adapter: ARR vs. hidden width (closed-form adapters as reference)",
    )


def dsm_deltas(rows: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Per Np and adapter: ARR with DSM minus ARR without, paired by seed, over seeds."""
    data = primary(rows, protocol)
    data = one_run_per_seed(data[data["method"].notna()], ["np", "strategy"], EQUIVALENT)
    wide = data.pivot(index=["np", "method", "seed"], columns="dsm", values="value")
    if True not in wide or False not in wide:
        raise Skip("dsm_ablation: its runs lack adapters fitted both without and with DSM")
    delta = (wide[True] - wide[False]).dropna().rename("value").reset_index()
    delta["strategy"] = "adapter/" + delta["method"]
    return summarize(delta, by=["np", "strategy"]).assign(protocol=protocol)


def fig_dsm_ablation(context: Context) -> tuple[Figure, pd.DataFrame]:
    rows = context.rows
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
    bars = "error bars: ±1 s.d. over seeds of the difference, paired by seed"
    return finish(fig, axes, title, context.subtitle(bars)), pd.concat(tables, ignore_index=True)


def fig_mlp_loss(context: Context) -> tuple[Figure, pd.DataFrame]:
    return sweep_figure(
        context,
        axes_x=[Axis("mlp_loss", "residual MLP training loss", categorical=True)],
        title="Residual MLP adapter: cosine vs. MSE training loss (others as reference)",
    )


def fig_ann_sensitivity(context: Context) -> tuple[Figure, pd.DataFrame]:
    """R@10 against efSearch and against search time; Flat (exact) as dotted levels."""
    data = primary(context.rows, "knn")
    data = data[~data["strategy"].isin(TABLE_ONLY)]
    if data.empty:
        raise Skip("ann_sensitivity: no knn-protocol metrics in its runs")
    hnsw = summarize(data[data["index_kind"] == "hnsw"], ["ef_search", "strategy"], EQUIVALENT)
    flat = summarize(data[data["index_kind"] == "flat"], ["strategy"], EQUIVALENT)
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
    return finish(fig, axes, title, context.subtitle()), table


def fig_corpus_size(context: Context) -> tuple[Figure, pd.DataFrame]:
    fractions = context.rows.get("np_fraction_requested", pd.Series(dtype=float)).dropna()
    pairs = (
        f"Np = {fractions.iloc[0]:.0%} of N"
        if fractions.nunique() == 1 and len(fractions) == len(context.rows)
        else "a fixed number of pairs (Np)"
    )
    return sweep_figure(
        context,
        axes_x=[Axis("n_corpus", "corpus size N (items, log scale)", log=10)],
        title=f"ARR vs. corpus size at {pairs}",
    )


@dataclass(frozen=True)
class FigureSpec:
    """A figure: the experiments whose runs it draws, how it draws one context of them, the
    settings it draws along (which may differ between its runs) and the settings that split its
    runs into files by value; any other setting that differs splits them too (`contexts`)."""

    experiments: tuple[str, ...]
    draw: Callable[[Context], tuple[Figure, pd.DataFrame]]
    sweeps: tuple[str, ...]
    split_by: tuple[str, ...] = ("dataset", "pair")


NP = ("np_requested", "np_fraction_requested", "np")
FIGURES = {
    "drift_severity": FigureSpec(
        ("drift_severity",), fig_drift_severity, ("new_model", "pair", "new_dim"), ("dataset",)
    ),
    "drift_synthetic": FigureSpec(("drift_synthetic",), fig_drift_synthetic, ("level",)),
    "sample_size": FigureSpec(("sample_size", "sample_size_fraction"), fig_sample_size, NP),
    "dsm_ablation": FigureSpec(("dsm_ablation",), fig_dsm_ablation, NP),
    "la_rank": FigureSpec(("la_rank",), fig_la_rank, ("la_rank",)),
    "mlp_width": FigureSpec(("mlp_width",), fig_mlp_width, ("mlp_hidden",)),
    "mlp_loss": FigureSpec(("mlp_loss",), fig_mlp_loss, ("mlp_loss",)),
    "ann_sensitivity": FigureSpec(
        ("ann_sensitivity",), fig_ann_sensitivity, ("index_kind", "ef_search", "nprobe")
    ),
    "corpus_size": FigureSpec(
        ("corpus_size",), fig_corpus_size, ("n_corpus",), ("dataset", "pair", "level")
    ),
    "corpus_size_real": FigureSpec(
        ("corpus_size_real",), fig_corpus_size, ("n_corpus",), ("dataset", "pair", "corpus_subset")
    ),
    # GCIDE: Np grows with N in the 2% arm (so it is swept with N); one figure per index.
    "corpus_size_gcide": FigureSpec(
        ("corpus_size_gcide",),
        fig_corpus_size,
        ("n_corpus", *NP),
        ("dataset", "pair", "index_kind"),
    ),
    "corpus_size_gcide_np20k": FigureSpec(
        ("corpus_size_gcide_np20k",),
        fig_corpus_size,
        ("n_corpus",),
        ("dataset", "pair", "index_kind"),
    ),
}


def build_figures(
    frame: pd.DataFrame,
) -> tuple[dict[str, tuple[Figure, pd.DataFrame]], dict[str, str]]:
    """Every figure the runs allow: ({file stem: (figure, plotted points)}, {name: why skipped}).
    Raises PooledDesignsError, naming the figure, when its runs differ in a setting that
    `contexts` cannot keep apart."""
    made, skipped = {}, {}
    with plt.rc_context(PAPER_STYLE):
        for name, spec in FIGURES.items():
            try:
                rows, note = runs_of(frame, spec.experiments)
                for context in contexts(rows, spec.split_by, spec.sweeps, note):
                    made[name + context.suffix] = spec.draw(context)
            except Skip as why:
                skipped[name] = str(why)
            except PooledDesignsError as err:
                raise PooledDesignsError(f"figure {name}: {err}") from err
    return made, skipped


# -- the main table ---------------------------------------------------------------------------
# The experiments whose runs fill the main table: text (main_table) and image upgrades, one
# column block per dataset and model pair, as in the paper's Table 1.
MAIN_TABLE = ("main_table", "image_efficientnet", "image_clip_laion")
# (protocol, metric, short header, full header) of the main table's columns, per dataset and
# pair: the Markdown and LaTeX tables head them short (their notes say what the protocols are),
# main_table.csv in full.
TABLE_COLUMNS = [
    ("knn", "recall@10", "R@10 kNN", "R@10 (kNN ARR)"),
    ("knn", "mrr@10", "MRR@10 kNN", "MRR@10 (kNN)"),
    ("qrels", "ndcg@10", "nDCG@10 qrels", "nDCG@10 (qrels)"),
    ("qrels", "arr_ndcg@10", "ARR nDCG@10", "ARR nDCG@10 (qrels)"),
    ("knn", "vs_reindex_recall@10", "R@10 / re-index", "R@10 / full re-index's R@10 (kNN)"),
]
SPEED = ("us/query", "us/query")  # (short, full) header of each block's last column


@dataclass(frozen=True)
class Block:
    """A column block of the main table: the runs of one dataset and model pair, and the
    settings that set them apart from another block of the same dataset and pair."""

    dataset: str
    pair: str
    settings: tuple[tuple[str, str], ...]
    columns: list[tuple[str, str]]  # (short, full) header of each column
    n_seeds: int
    facts: str  # its corpus, queries, pairs, index and measured drift

    def title(self, with_pair: bool) -> str:
        return ", ".join(
            [self.dataset, *([self.pair] if with_pair else [])]
            + [f"{k}={v}" for k, v in self.settings]
        )


@dataclass
class Table:
    """The main table as cells, rendered to Markdown (one table per block), LaTeX (one table,
    a column group per block) and a wide frame (main_table.csv). What every block shares, the
    model pair and the number of seeds, is said once in the caption; else each block says it."""

    title: str
    blocks: list[Block]
    rows: list[tuple[str, list[str]]]  # (strategy label, cells across all blocks)
    notes: list[str]  # about every block

    @property
    def pair(self) -> str | None:
        """The model pair of every block; None when they differ."""
        pairs = {block.pair for block in self.blocks}
        return pairs.pop() if len(pairs) == 1 else None

    @property
    def n_seeds(self) -> int | None:
        """The number of seeds of every block; None when they differ."""
        counts = {block.n_seeds for block in self.blocks}
        return counts.pop() if len(counts) == 1 else None

    def caption(self) -> str:
        seeds = f"{self.n_seeds} seeds" if self.n_seeds else "seeds (their number per block)"
        text = (
            f"Mean ± s.d. over {seeds}; each run's 95% bootstrap CIs over queries are in the "
            "result files."
        )
        return f"Model pair (old -> new): {self.pair}. {text}" if self.pair else text

    def block_caption(self, block: Block) -> str:
        return block.facts if self.n_seeds else f"{block.n_seeds} seeds; {block.facts}"

    def block_rows(self) -> list[tuple[Block, list[tuple[str, list[str]]]]]:
        """Each block with its rows: (strategy label, the block's cells)."""
        found, start = [], 0
        for block in self.blocks:
            end = start + len(block.columns)
            found.append((block, [(label, cells[start:end]) for label, cells in self.rows]))
            start = end
        return found

    def markdown(self) -> str:
        lines = [f"# {self.title}", "", self.caption(), ""]
        for block, rows in self.block_rows():
            headers = [short for short, _ in block.columns]
            lines += [
                f"## {block.title(with_pair=self.pair is None)}",
                "",
                self.block_caption(block),
                "",
                "| Strategy | " + " | ".join(headers) + " |",
                "|---|" + "---:|" * len(headers),
                *[f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows],
                "",
            ]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        with_pair = self.pair is None
        n_cols = sum(len(block.columns) for block in self.blocks)
        spans, rules, start = [], [], 2
        for block in self.blocks:
            width = len(block.columns)
            spans.append(rf"\multicolumn{{{width}}}{{c}}{{{tex(block.title(with_pair))}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            start += width
        headers = [tex(short) for block in self.blocks for short, _ in block.columns]
        body = [
            f"{tex(label)} & " + " & ".join(tex_cell(c) for c in cells) + r" \\"
            for label, cells in self.rows
        ]
        caption = [
            f"{self.title}.",
            self.caption(),
            *(f"{block.title(with_pair)}: {self.block_caption(block)}" for block in self.blocks),
            *self.notes,
        ]
        return "\n".join(
            [
                "% Generated by drift/report/figures.py from result files; do not edit by hand.",
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
                r"\caption{" + " ".join(tex(part) for part in caption) + "}",
                r"\label{tab:main}",
                r"\end{table*}",
                "",
            ]
        )

    def wide(self) -> pd.DataFrame:
        """One row per strategy, one column per block and metric, headed in full by the block's
        dataset, pair and settings and the metric (main_table.csv)."""
        headers = [
            f"{block.title(with_pair=True)}: {full}"
            for block in self.blocks
            for _, full in block.columns
        ]
        return pd.DataFrame(
            [[label, *cells] for label, cells in self.rows], columns=["Strategy", *headers]
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
    """The paper's Table 1 shape: strategies x (dataset, pair) x metrics, mean ± s.d. over seeds.
    Runs of one dataset and pair that differ in a setting (say, the index) get a column block
    each, headed by the setting."""
    rows, note = runs_of(frame, MAIN_TABLE)
    blocks, columns = [], []
    for context in contexts(rows, ("dataset", "pair"), (), note):
        measured = pd.concat([context.rows, reindex_ratios(context.rows)], ignore_index=True)
        points = summarize(measured, by=["protocol", "strategy", "metric"], same=EQUIVALENT)
        present = [
            c for c in TABLE_COLUMNS if ((points.protocol == c[0]) & (points.metric == c[1])).any()
        ]
        blocks.append(block_of(context, [(short, full) for _, _, short, full in present]))
        columns.append((points, present))
    table_rows = []
    for strategy in ordered(pd.concat([points for points, _ in columns])["strategy"]):
        cells = []
        for points, present in columns:
            mine = points[points.strategy == strategy]
            for protocol, metric, _, _ in present:
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


def reindex_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """Each run's kNN R@10 divided by its full re-index's (the rows' `relative`), as metric
    vs_reindex_recall@10 (what result files store under `vs_reindex`; older ones do not). The
    kNN ARR is R@10 itself, which presumes that the re-index scores 1: under HNSW it does not."""
    recall = rows[(rows["protocol"] == "knn") & (rows["metric"] == "recall@10")]
    return recall.assign(
        metric="vs_reindex_recall@10", value=recall["relative"], ci_low=np.nan, ci_high=np.nan
    )


CAPPED = (
    ", capped by the eligible corpus items: every seed fits on the same pairs and differs only"
    " in the train/validation split and the fitting's randomness"
)


def block_of(context: Context, columns: list[tuple[str, str]]) -> Block:
    """A main-table column block of the context's runs, with what its caption says of them."""
    first = context.rows.iloc[0]
    part = context.rows.drop_duplicates("file")
    np_used = sorted(part["np"].unique())
    requested = sorted(part["np_requested"].unique())
    kinds = ", ".join(sorted(part["index_kind"].unique()))
    facts = (
        f"{int(part['n_corpus'].iloc[0]):,} documents, "
        f"{int(part['n_queries'].iloc[0]):,} queries; Np = "
        + "/".join(f"{int(n):,}" for n in np_used)
        + f" pairs (requested {'/'.join(f'{int(n):,}' for n in requested)}"
        + (CAPPED if max(requested) > max(np_used) else "")
        + f"); index {kinds}; "
        f"1 - 10-NN overlap {1 - part['drift_knn_overlap'].mean():.3f}, "
        f"CKA {part['drift_cka'].mean():.3f}."
    )
    return Block(
        dataset=str(first["dataset"]),
        pair=str(first["pair"]),
        settings=context.settings,
        columns=[*columns, SPEED],
        n_seeds=int(context.rows["seed"].nunique()),
        facts=facts,
    )


def table_notes(rows: pd.DataFrame) -> list[str]:
    """The notes under the main table that hold for every block of its runs (`rows`)."""
    notes = [
        "kNN protocol (the paper's): relevance = the new model's exact top-10 over the "
        "re-embedded corpus, so R@10 is the ARR and the full re-index with exact search scores 1; "
        "R@10 / re-index divides by the full re-index's R@10 in the same run, which is below 1 "
        "under an approximate index; qrels protocol: dataset relevance labels, ARR = strategy / "
        "full re-index.",
    ]
    reasons = sorted({r for r in rows["not_applicable"].dropna() if r})
    notes += [f"n/a: {reason}." for reason in reasons]
    notes.append(
        "us/query: whole-batch time / queries, faiss threads as recorded; the adapter's share "
        "is in the result files."
    )
    return notes


# -- writing ----------------------------------------------------------------------------------
def write_all(frame: pd.DataFrame, out_dir: str | Path) -> tuple[list[Path], dict[str, str]]:
    """Main table (md, tex) and every figure (png, pdf, csv) into `out_dir`. Raises
    PooledDesignsError when the runs of the table or a figure cannot be kept apart."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, skipped = [], {}
    try:
        table = main_table(frame)
        for suffix, text in ((".md", table.markdown()), (".tex", table.latex())):
            path = out / f"main_table{suffix}"
            path.write_text(text)
            written.append(path)
        table.wide().to_csv(out / "main_table.csv", index=False)
        written.append(out / "main_table.csv")
    except Skip as why:
        skipped["main_table"] = str(why)
    except PooledDesignsError as err:
        raise PooledDesignsError(f"main table: {err}") from err
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

"""Upgrade strategies beyond the paper: quality vs cost, query-stream costs, migration timelines.

    drift plot-migration results/runs --out results/figures/migration

Reads every result file under RESULTS_DIR (the files `python -m drift.run` writes) and writes to
--out, per figure a PNG, a PDF and a CSV of the plotted points:

    output             from runs of                        shows
    pareto             experiment=beyond_paper             nDCG@10 (qrels) and R@10 (kNN ARR) vs
                                                           share of the corpus encoded by the new
                                                           model; Pareto frontier as a step line
    strategy_costs.md  experiment=beyond_paper             per strategy: nDCG@10, R@10, share
                                                           encoded, encodes, us/query, frontier
    stream             experiment=query_stream             cumulative encodes and running quality
                                                           vs queries served; latency per query
                                                           (legend): cold (mean over the queries
                                                           that encoded), warm, amortised over
                                                           the stream; the CSV adds percentiles,
                                                           first query and added (minus status quo)
    demand             experiment=demand_migration         quality (mean over the last W served
                                                           queries) vs share of the corpus encoded
                                                           along the stream: demand-driven
                                                           migration, lazy re-rank of the same
                                                           candidates, backfill; status quo and
                                                           full re-index as lines
    timeline           experiment=migration_timeline,      quality over migration hours per mode
                       experiment=continuous_adaptation    (95% CI bands), references, share
                                                           migrated and each re-rank mode's
                                                           new-model encodes (background + on
                                                           demand); the CSV adds their counts

Runs are found by content: the pareto figure and the table use the runs whose strategies include
rerank, fusion or backfill (all of a run's deployable strategies are plotted; the ground-truth
ceiling is not deployable and left out); stream and timeline use the runs with a `stream` or a
`timeline` section, demand those whose stream section has a `demand` part (none: no demand
figure, and no message). An output whose runs are absent is skipped with a message naming the
experiment that makes them. Full runs are used
when there are any, else smoke runs, and then the title says so. Points: mean over seeds; error
bars +-1 s.d. over seeds (none with one seed).

One file per design, named `<figure>--<experiment>[--<dataset>--<pair>][--<key>-<value>...]`:
the experiment is the runs' first tag; the dataset and model pair are named only when the
experiment ran on several; the keys are the config settings in which the experiment's designs
differ (last component of the config path), e.g. `stream--query_stream--popularity-zipf.png`.
The pareto figure numbers its frontier points by cost and names them in a key below the panels
(the CSV's `key` column holds the same numbers).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib.path as mpath
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from matplotlib.transforms import Bbox

from drift.core.records import ResultRecord, design_settings, differences
from drift.migration.measured import (
    as_floats,
    mean_stream,
    measure_name,
    pareto_frontier,
    priced_rows,
)
from drift.migration.stream import format_us, mean_latency
from drift.report.figures import (
    PAPER_STYLE,
    Skip,
    describe,
    finish,
    label_of,
    new_figure,
    save_figures,
    slug,
    style,
)

# The quality panels: (protocol/metric, axis label, short name).
PANELS = [
    ("qrels/ndcg@10", "nDCG@10 with relevance labels\n(qrels)", "nDCG@10"),
    ("knn/recall@10", "R@10 vs. full re-embedding\n(kNN ARR, fraction)", "R@10"),
]
# Strategy families: (legend label, colour, marker). Paper strategies in OP's colour; the others
# in Paul Tol's colours, apart from the paper figures' Okabe-Ito colours of each paper strategy.
FAMILIES = {
    "paper": ("Paper strategies", "#0072B2", "o"),
    "rerank": ("Re-rank (on-demand encodes)", "#CC3311", "^"),
    "fusion": ("Score fusion", "#332288", "D"),
    "backfill": ("Partial backfill", "#AA4499", "s"),
}
# Timeline modes: (legend label, colour).
MODES = {
    "adapter_frozen": ("Adapter, frozen", "#E69F00"),
    "adapter_refit": ("Adapter, refit at every step", "#0072B2"),
    "backfill_status_quo": ("Backfill, rest by status quo", "#CC79A7"),
    "backfill_adapter": ("Backfill, rest by adapter", "#009E73"),
    "dual_index": ("Dual index (RRF)", "#56B4E9"),
    "rerank_status_quo": ("Re-rank status quo top {k}", "#D55E00"),
    "rerank_union": ("Re-rank union of top {k}s", "#882255"),
}
# Per-step encode counts of the rerank modes (drift.migration.timeline), added to the timeline CSV:
# all new-model encodes so far as a share of the corpus, and the background / on-demand counts.
ENCODE_QUANTITIES = ("share_encoded", "background_encodes", "on_demand_encodes")
REFERENCES = {
    "full_reindex": ("Full re-index", "#000000", "--"),
    "status_quo": ("Status quo", "#999999", ":"),
}
MAKE = {
    "pareto": "python -m drift.run -m experiment=beyond_paper",
    "stream": "python -m drift.run -m experiment=query_stream",
    "demand": "python -m drift.run -m experiment=demand_migration",
    "timeline": "python -m drift.run -m experiment=migration_timeline (and "
    "-m experiment=continuous_adaptation)",
}


# -- runs -------------------------------------------------------------------------------------
def load(results: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, ResultRecord]]:
    """(the rows of deployable strategies, one row per run, {file: record}) of the result files
    under `results`; the rows name their metric with its protocol (qrels/ndcg@10), as PANELS
    do."""
    records = {record.file: record for record in ResultRecord.iter(results)}
    runs = pd.DataFrame([record.run_columns() for record in records.values()])
    rows = pd.DataFrame(
        [
            {**row, "metric": measure_name(row)}
            for record in records.values()
            for row in priced_rows(record)
        ]
    )
    return rows, runs, records


def full_runs(frame: pd.DataFrame, name: str, why: str) -> tuple[pd.DataFrame, str]:
    """Full runs when there are any, else the smoke runs with a title note; Skip if none."""
    if frame.empty:
        raise Skip(f"{why}; make them with: {MAKE[name]}")
    if (~frame["debug"]).any():
        return frame[~frame["debug"]], ""
    return frame, "SMOKE RUNS, NOT RESULTS: "


# (short key, value) of a design's settings, as the titles name them.
Settings = Sequence[tuple[str, object]]


class Design(NamedTuple):
    """The runs of one design and how to name them."""

    suffix: str  # of the file names: --<experiment>[--<dataset>--<pair>][--<key>-<value>...]
    settings: Settings  # (short key, value) of the settings that set it apart
    rows: pd.DataFrame


def designs(frame: pd.DataFrame, records: dict[str, ResultRecord]) -> list[Design]:
    """One part per design, per experiment and (dataset, model pair): named by the experiment,
    the dataset and pair when the experiment ran on several, and the settings in which the
    design differs from the experiment's other designs on that (dataset, pair)."""
    parts = []
    for experiment, runs in frame.groupby("experiment", sort=True):
        pairs = list(runs.groupby(["dataset", "pair"], sort=True))
        for (dataset, pair), context in pairs:
            stem = "--" + slug(str(experiment))
            if len(pairs) > 1:
                stem += f"--{slug(str(dataset))}--{slug(str(pair).replace(' -> ', '-to-'))}"
            groups = dict(list(context.groupby("group", sort=True)))
            differing = differences(
                {
                    g: design_settings(records[part["file"].iloc[0]].config)
                    for g, part in groups.items()
                }
            )
            for group, part in groups.items():
                settings = differing[group]
                suffix = stem + name_of(settings, str(group))
                parts.append(Design(suffix, settings, part))
    counts = Counter(part.suffix for part in parts)
    return [  # a name shared by two designs (settings that slug alike) gets the design's hash
        part._replace(suffix=f"{part.suffix}--{part.rows['group'].iloc[0]}")
        if counts[part.suffix] > 1
        else part
        for part in parts
    ]


# Longest settings part of a file name; beyond it the settings are cut and the design hash added.
MAX_SETTINGS = 80


def name_of(settings: Settings, group: str) -> str:
    """The settings part of a file name: --key-value per differing setting."""
    text = "".join(f"--{slug(f'{key}-{value}')}" for key, value in settings)
    if len(text) <= MAX_SETTINGS:
        return text
    return text[:MAX_SETTINGS].rsplit("--", 1)[0] + f"--etc-{group}"


def beyond_paper_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Rows of the designs that ran a strategy beyond the paper, on the panels' metrics."""
    mixed = rows[rows["family"] != "paper"]["group"].unique() if not rows.empty else []
    chosen = rows[rows["group"].isin(mixed)] if len(mixed) else rows.iloc[0:0]
    chosen, note = full_runs(
        chosen, "pareto", "no runs with strategies beyond the paper (rerank, fusion, backfill)"
    )
    return chosen[chosen["metric"].isin([m for m, _, _ in PANELS])], note


# -- Pareto -----------------------------------------------------------------------------------
def pareto_points(rows: pd.DataFrame) -> pd.DataFrame:
    """Per metric and strategy: mean and s.d. over seeds of quality and cost, frontier flag."""
    points = (
        rows.groupby(["metric", "family", "strategy"], sort=False)
        .agg(
            mean=("value", "mean"),
            std=("value", "std"),
            share=("share_encoded", "mean"),
            share_std=("share_encoded", "std"),
            encodes=("new_doc_encodes", "mean"),
            us_per_query=("us_per_query", "mean"),
            n_corpus=("n_corpus", "mean"),
            n_seeds=("seed", "nunique"),
        )
        .reset_index()
    )
    points["frontier"] = False
    for _, part in points.groupby("metric"):
        mask = pareto_frontier(part["share"], part["mean"])
        points.loc[part.index, "frontier"] = mask
    family_rank = {family: i for i, family in enumerate(FAMILIES)}
    order = points["family"].map(family_rank).fillna(len(FAMILIES))
    return (
        points.assign(_order=order)
        .sort_values(["metric", "_order", "share", "strategy"])
        .drop(columns="_order")
    )


def short_label(strategy: str) -> str:
    """A compact point label: paper strategies as in the paper figures, others from their name."""
    family = strategy.split("/", 1)[0]
    if family == "rerank":
        return "rerank " + strategy.split("/", 1)[1].replace("_", " ")
    if family == "fusion":
        norm, weight = strategy.split("/", 1)[1].split("@")
        return f"fusion {norm} w={weight}"
    if family == "backfill":
        base, order, merge_at = strategy.split("/")[1:]
        merge, fraction = merge_at.split("@")
        return f"backfill {float(fraction):.0%} ({base.replace('_', ' ')}, {order}, {merge})"
    return label_of(strategy).split(" (")[0]


def share_axis(ax: plt.Axes, shares: pd.Series) -> None:
    """Symlog x axis in % of the corpus: linear around 0 (so 0 shows), log from the smallest
    positive share's decade up to 100%."""
    positive = shares[shares > 0]
    low = 10.0 ** np.floor(np.log10(positive.min())) if len(positive) else 0.01
    low = min(low, 0.01)
    ax.set_xscale("symlog", linthresh=low, linscale=0.4)
    ticks = [0.0, *10.0 ** np.arange(np.log10(low), 0.5)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "0" if v == 0 else f"{100 * v:g}%"))
    ax.set_xlim(-0.4 * low, max(1.0, float(shares.max())) * 1.6)


MARKER_SIZE = 5  # points
NUMBER_SIZE = 6.5  # font size of the frontier points' numbers and of the key
# Where a frontier point's number may go: offsets in points from the point to the middle of the
# number's near side, cheapest first. Left and up are cheaper: no point lies up and to the left of
# a frontier point (it would dominate it), and the frontier's step line runs below and right.
OFFSETS = sorted(
    ((dx, dy) for dx in (-4, -10, -17, -25, -35, -47, 4, 10, 17, 25) for dy in range(-44, 45, 4)),
    key=lambda o: np.hypot(*o) * (1.0 if o[0] < 0 else 1.4) * (1.0 if o[1] >= 0 else 1.2),
)
NEAR = 6  # points: a number further from its point than this gets a leader line
LEADER = {"arrowstyle": "-", "color": "#777777", "linewidth": 0.5, "shrinkA": 0.5}


def fig_pareto(rows: pd.DataFrame, note: str, settings: Settings) -> tuple[Figure, pd.DataFrame]:
    points = pareto_points(rows)
    panels = [p for p in PANELS if p[0] in set(points["metric"])]
    keyed = key_numbers(points)
    points["key"] = points["strategy"].map(keyed).astype("Int64")
    n_cols = 3 if len(panels) > 1 else 2
    key_rows = -(-len(keyed) // n_cols)
    key_height = 0.25 + 0.13 * key_rows  # inches: the key's title and rows at NUMBER_SIZE pt
    fig = plt.figure(figsize=(4.6 * len(panels), 4.2 + key_height), layout="constrained")
    grid = fig.add_gridspec(2, len(panels), height_ratios=[3.4, key_height])
    axes = np.array([[fig.add_subplot(grid[0, j]) for j in range(len(panels))]])
    for ax, (metric, ylabel, _) in zip(axes[0], panels, strict=True):
        part = points[points["metric"] == metric]
        frontier = part[part["frontier"]].sort_values("share")
        ax.step(
            frontier["share"],
            frontier["mean"],
            where="post",
            color="#333333",
            linewidth=1.0,
            zorder=1,
            label="Pareto frontier",
        )
        for family, (label, color, marker) in FAMILIES.items():
            mine = part[part["family"] == family]
            for on, face, alpha in ((True, color, 1.0), (False, "white", 0.6)):
                some = mine[mine["frontier"] == on]
                if some.empty:
                    continue
                ax.errorbar(
                    some["share"],
                    some["mean"],
                    yerr=some["std"].fillna(0.0),
                    xerr=some["share_std"].fillna(0.0),
                    fmt=marker,
                    color=color,
                    markerfacecolor=face,
                    markersize=MARKER_SIZE,
                    capsize=2,
                    linewidth=0.8,
                    alpha=alpha,
                    zorder=3,
                )
            if not mine.empty:  # legend entry: a filled marker, whichever points were drawn
                ax.plot([], [], marker, color=color, markersize=MARKER_SIZE, label=label)
        share_axis(ax, part["share"])
        ax.set_xlabel("share of the corpus encoded by the new model\n(% of documents, symlog)")
        ax.set_ylabel(ylabel)
    key_axes = fig.add_subplot(grid[1, :])
    draw_key(key_axes, points, keyed, n_cols)
    title = (
        "Quality vs. cost of an embedding-model upgrade; filled: on the Pareto frontier "
        "(numbered by cost, named below), hollow: dominated"
    )
    finish(fig, axes, title, subtitle(rows, note, settings))
    fig.draw_without_rendering()  # lay the figure out, then keep that layout: the numbers are
    fig.set_layout_engine("none")  # placed in display coordinates
    for ax, (metric, _, _) in zip(axes[0], panels, strict=True):
        number_points(ax, points[points["metric"] == metric])
    return fig, points


def key_numbers(points: pd.DataFrame) -> dict[str, int]:
    """{strategy: number} of the strategies on the frontier of any panel, numbered by cost (then
    quality), so that the numbers grow along each panel's frontier."""
    frontier = points[points["frontier"]].groupby("strategy")[["share", "mean"]].mean()
    ordered_ = frontier.sort_values(["share", "mean"]).index
    return {strategy: i for i, strategy in enumerate(ordered_, start=1)}


def draw_key(ax: plt.Axes, points: pd.DataFrame, keyed: dict[str, int], n_cols: int) -> None:
    """The key of the frontier points' numbers, in the family's colour and marker."""
    ax.axis("off")
    family = points.drop_duplicates("strategy").set_index("strategy")["family"]
    handles = [
        Line2D(
            [],
            [],
            linestyle="",
            marker=FAMILIES[family[strategy]][2],
            color=FAMILIES[family[strategy]][1],
            markersize=4,
        )
        for strategy in keyed
    ]
    labels = [f"{number}  {short_label(strategy)}" for strategy, number in keyed.items()]
    ax.legend(
        handles,
        labels,
        loc="upper center",
        ncol=n_cols,
        frameon=False,
        fontsize=NUMBER_SIZE,
        title="Frontier points (numbered in the panels)",
        title_fontsize=NUMBER_SIZE + 0.5,
        handletextpad=0.3,
        columnspacing=1.2,
        labelspacing=0.25,
    )


def number_points(ax: plt.Axes, part: pd.DataFrame) -> None:
    """Write each frontier point's key number beside it (top point first), at the cheapest of
    OFFSETS where the number stays inside the axes, overlaps no number placed before and crosses
    no leader line, and, when it needs a leader line, that line crosses no number nor another
    line; one clear of every point's marker if there is one. A number with no such place is left
    out (the key and the CSV still name its point). Run on the final layout."""
    renderer = ax.figure.canvas.get_renderer()
    px = ax.figure.dpi / 72  # display units per point
    frame = ax.get_window_extent(renderer)
    centre = ax.transData.transform(part[["share", "mean"]].to_numpy(dtype=float))
    r = (MARKER_SIZE / 2 + 1) * px
    markers = [Bbox.from_extents(x - r, y - r, x + r, y + r) for x, y in centre]
    boxes: list[Bbox] = []
    leaders: list[mpath.Path] = []
    frontier = part.assign(x=centre[:, 0], y=centre[:, 1])[part["frontier"]]
    for point in frontier.sort_values(["mean", "share"], ascending=False).itertuples():
        text = str(point.key)
        probe = ax.text(0, 0, text, fontsize=NUMBER_SIZE)
        size = probe.get_window_extent(renderer)
        probe.remove()
        options = []
        for dx, dy in OFFSETS:
            box = text_box(point.x, point.y, dx * px, dy * px, size.width, size.height)
            if not frame.containsx(box.x0) or not frame.containsx(box.x1):
                continue
            if not frame.containsy(box.y0) or not frame.containsy(box.y1):
                continue
            if any(box.overlaps(other) for other in boxes):
                continue
            if any(line.intersects_bbox(box) for line in leaders):
                continue
            leader = None
            if max(abs(dx), abs(dy)) > NEAR:
                middle = ((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2)
                leader = mpath.Path([(point.x, point.y), middle])
                if any(leader.intersects_bbox(other) for other in boxes):
                    continue
                if any(leader.intersects_path(line) for line in leaders):
                    continue
            options.append((dx, dy, box, leader))
        clear = [o for o in options if not any(o[2].overlaps(m) for m in markers)]
        if not options:
            continue
        dx, dy, box, leader = (clear or options)[0]
        boxes.append(box.padded(1))
        if leader is not None:
            leaders.append(leader)
        ax.annotate(
            text,
            (point.share, point.mean),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="right" if dx < 0 else "left",
            va="center",
            fontsize=NUMBER_SIZE,
            color="#222222",
            zorder=4,
            arrowprops=None if leader is None else {**LEADER, "shrinkB": MARKER_SIZE / 2 + 1},
        ).set_in_layout(False)


def text_box(x: float, y: float, dx: float, dy: float, width: float, height: float) -> Bbox:
    """Display box of a text whose near side's middle is (dx, dy) from the point (x, y): right
    aligned left of the point, left aligned right of it, centred vertically."""
    left = x + dx - (width if dx < 0 else 0)
    return Bbox.from_bounds(left, y + dy - height / 2, width, height)


def subtitle(rows: pd.DataFrame, note: str, settings: Settings = ()) -> str:
    """What the runs are (see make_figures.describe), which experiment made them and the settings
    that set their design apart from the experiment's others (or others worth naming)."""
    text = f"{describe(rows, note)}; experiment {', '.join(sorted(set(rows['experiment'])))}"
    if settings:
        text += "; " + ", ".join(f"{key}={value}" for key, value in settings)
    return text


# -- strategy table ---------------------------------------------------------------------------
def cost_table(parts: Sequence[Design], note: str) -> str:
    """strategy_costs.md: one table per design (as the pareto figures)."""
    lines = [
        f"# {note}Strategies and their cost in new-model document encodes",
        "",
        "Mean ± s.d. over seeds. Share encoded / encodes: corpus documents encoded by the new "
        "model (the full re-embedding's N, the adapter's pairs, rerank's on-demand encodes over "
        "the evaluation queries, the backfill's share). us/query: whole-batch time / queries "
        "(rerank's excludes its encodes). Frontier: no other strategy is at least as good for at "
        "most the cost on that metric. The ground-truth ceiling is not deployable: left out.",
    ]
    for _, settings, rows in parts:
        points = pareto_points(rows)
        metrics = [(m, short) for m, _, short in PANELS if m in set(points["metric"])]
        found = {(row.strategy, row.metric): row for row in points.itertuples()}
        n_corpus = int(rows["n_corpus"].iloc[0])
        lines += [
            "",
            f"## {subtitle(rows, '', settings)}; {n_corpus:,} documents",
            "",
            "| Strategy | "
            + " | ".join(short for _, short in metrics)
            + " | Share encoded | Encodes | us/query | "
            + " | ".join(f"Frontier ({short})" for _, short in metrics)
            + " |",
            "|---|" + "---:|" * (len(metrics) + 3) + ":---:|" * len(metrics),
        ]
        for strategy in dict.fromkeys(points["strategy"]):
            mine = [found.get((strategy, m)) for m, _ in metrics]
            cost = next(row for row in mine if row is not None)
            us = f"{cost.us_per_query:,.1f}" if pd.notna(cost.us_per_query) else "n/a"
            lines.append(
                f"| {strategy} | "
                + " | ".join("n/a" if row is None else cell(row.mean, row.std) for row in mine)
                + f" | {cost.share:.1%} | {cost.encodes:,.0f} | {us} | "
                + " | ".join("yes" if row is not None and row.frontier else "no" for row in mine)
                + " |"
            )
    return "\n".join(lines) + "\n"


def cell(mean: float, std: float) -> str:
    return f"{mean:.3f}" + (f" ± {std:.3f}" if pd.notna(std) else "")


# -- stream -----------------------------------------------------------------------------------
# Latency keys of drift.migration.stream.stream_latency that are not in µs (the others get a
# _us suffix).
NOT_US = ("cold_query_encodes", "queries_with_encodes")


def stream_points(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """Long table of the runs' stream curves averaged over seeds: per strategy and checkpoint,
    the share encoded and each running quality metric, with the strategy's latency per query
    (drift.migration.stream.stream_latency, mean over runs; empty where the files did not record
    it): cold_query_* over the queries that encoded, amortised_* over every served query, added_*
    minus the status quo's."""
    streams = [r.stream for r in records if r.stream]
    names = list(dict.fromkeys(n for s in streams for n in s["strategies"]))
    tables = []
    for name in names:
        served = [s for s in streams if name in s["strategies"]]
        curve = mean_stream(served, name)
        series = {"share_encoded": curve["share_encoded"], **curve["quality"]}
        latency = {
            key if key in NOT_US else f"{key}_us": value
            for key, value in mean_latency(served, name).items()
        }
        for quantity, values in series.items():
            tables.append(
                pd.DataFrame(
                    {
                        "strategy": name,
                        "quantity": quantity,
                        "queries": curve["queries"],
                        "value": values,
                        **latency,
                        "n_corpus": curve["n_corpus"],
                        "length": curve["length"],
                        "n_unique_queries": curve["n_unique_queries"],
                        "n_runs": curve["n_streams"],
                    }
                )
            )
    return pd.concat(tables, ignore_index=True)


# Line styles of a family's variants in the stream figure: by candidate source or backfill base.
DASHES = {"status_quo": "-", "union": "--", "adapter": ":"}


def family_of(strategy: str) -> str:
    family = strategy.split("/", 1)[0]
    return family if family in FAMILIES else "paper"


def line_styles(strategies: Sequence[str]) -> dict[str, dict[str, object]]:
    """Colour and dash per strategy: paper strategies as in the paper figures; the others in
    their family's colour, darker for a larger depth / weight / fraction (the number after @),
    dashed by candidate source or backfill base."""
    styles: dict[str, dict[str, object]] = {}
    for family in FAMILIES:
        mine = [s for s in strategies if family_of(s) == family]
        if family == "paper":
            for strategy in mine:
                paper = style(strategy)
                styles[strategy] = {"color": paper["color"], "linestyle": paper["linestyle"]}
            continue
        levels = sorted({float(s.rsplit("@", 1)[1]) for s in mine})
        base = np.asarray(to_rgb(FAMILIES[family][1]))
        for strategy in mine:
            level = levels.index(float(strategy.rsplit("@", 1)[1]))
            light = 0.55 * (len(levels) - 1 - level) / max(len(levels) - 1, 1)  # 0: darkest
            source = strategy.split("/")[1].split("@")[0]
            styles[strategy] = {
                "color": tuple(base + (1 - base) * light),
                "linestyle": DASHES.get(source, "-"),
            }
    return styles


def fig_stream(
    runs: pd.DataFrame, records: dict[str, ResultRecord], note: str, settings: Settings
) -> tuple[Figure, pd.DataFrame]:
    """The encodes panel and one panel per quality metric, the legend in a cell of its own: two
    by two with both metrics, which fits a two-column paper's width."""
    points = stream_points([records[f] for f in runs["file"]])
    metrics = [p for p in PANELS if p[0] in set(points["quantity"])]
    cells = len(metrics) + 2
    n_cols = 2 if cells == 4 else cells
    fig, grid = new_figure(cells // n_cols, n_cols)
    encodes, *panels, legend_cell = grid.flat
    first = points.iloc[0]
    names = sorted(
        dict.fromkeys(points["strategy"]), key=lambda n: list(FAMILIES).index(family_of(n))
    )
    styles = line_styles(names)
    handles, labels = [], []
    for name in names:
        mine = points[points["strategy"] == name]
        latency = mine.iloc[0]
        label = short_label(name)
        if pd.notna(latency["cold_query_mean_us"]):
            label += ": " + " / ".join(
                format_us(latency[key])
                for key in ("cold_query_mean_us", "warm_mean_us", "amortised_mean_us")
            )
        elif pd.notna(latency["warm_mean_us"]):
            label += f": {format_us(latency['warm_mean_us'])}"
        share = mine[mine["quantity"] == "share_encoded"]
        (line,) = encodes.plot(share["queries"], 100 * share["value"], **styles[name], lw=1.2)
        handles.append(line)
        labels.append(label)
        for ax, (metric, _, _) in zip(panels, metrics, strict=True):
            quality = mine[mine["quantity"] == metric]
            ax.plot(quality["queries"], quality["value"], **styles[name], lw=1.2)
    encodes.set_ylabel("new-model documents encoded\n(cumulative, % of the corpus)")
    for ax, (_, ylabel, _) in zip(panels, metrics, strict=True):
        ax.set_ylabel(f"running mean over queries served:\n{ylabel}")
    for ax in (encodes, *panels):
        ax.set_xscale("log")
        ax.set_xlabel("queries served (log scale)")
    legend_cell.axis("off")
    legend_cell.legend(
        handles,
        labels,
        loc="center",
        frameon=False,
        fontsize=7,
        title="latency per query, at the measured encode rate:\ncold (mean over the queries "
        "that encoded) /\nwarm / amortised over the stream; one value: never encodes",
        title_fontsize=7.5,
        labelspacing=0.3,
    )
    title = (
        "Query stream: cumulative new-model encodes and running quality as queries arrive "
        f"({int(first['length']):,} queries, {int(first['n_unique_queries']):,} distinct, "
        f"N = {int(first['n_corpus']):,})"
    )
    finish(fig, np.array([encodes, *panels]), title, subtitle(runs, note, settings))
    return fig, points


# -- demand-driven migration ------------------------------------------------------------------
DEMAND_COLOUR = "#117733"
# The demand figure's lines start at this many queries served: means over fewer are noise.
DEMAND_FIRST = 30


def demand_view(stream: dict, windowed: bool) -> dict:
    """A stream section whose strategies are its own and its demand part's, their `quality` the
    windowed one (the mean over the last W served queries) when `windowed` and recorded."""
    strategies = {**stream["strategies"], **stream["demand"]["strategies"]}
    if windowed:
        strategies = {
            name: {**curve, "quality": curve.get("quality_window") or curve["quality"]}
            for name, curve in strategies.items()
        }
    return {**stream, "strategies": strategies}


def demand_points(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """Long table, averaged over runs (drift.migration.measured.mean_stream): per strategy of the
    runs' stream sections and their demand parts, checkpoint and quality metric, the share of
    the corpus encoded so far, the windowed quality (`value`; running where no window was
    recorded) and the running quality since the first query."""
    streams = [r.stream for r in records if r.stream and r.stream.get("demand")]
    windowed = [demand_view(s, True) for s in streams]
    running = [demand_view(s, False) for s in streams]
    names = list(dict.fromkeys(n for s in windowed for n in s["strategies"]))
    tables = []
    for name in names:
        served = [i for i, s in enumerate(windowed) if name in s["strategies"]]
        window = mean_stream([windowed[i] for i in served], name)
        since_start = mean_stream([running[i] for i in served], name)
        for metric, values in window["quality"].items():
            tables.append(
                pd.DataFrame(
                    {
                        "strategy": name,
                        "metric": metric,
                        "queries": window["queries"],
                        "share_encoded": window["share_encoded"],
                        "value": values,
                        "running": since_start["quality"][metric],
                        "window": streams[served[0]]["demand"]["config"]["window"],
                        "n_corpus": window["n_corpus"],
                        "length": window["length"],
                        "n_unique_queries": window["n_unique_queries"],
                        "n_runs": window["n_streams"],
                    }
                )
            )
    return pd.concat(tables, ignore_index=True)


def fig_demand(
    runs: pd.DataFrame, records: dict[str, ResultRecord], note: str, settings: Settings
) -> tuple[Figure, pd.DataFrame]:
    """Per quality metric: windowed quality against share of the corpus encoded as the stream
    goes on, for demand-driven migration and the lazy re-rank of the same candidates; backfill
    as points (its share is fixed; quality over the whole stream); status quo and full
    re-index as horizontal lines (quality over the whole stream)."""
    points = demand_points([records[f] for f in runs["file"]])
    metrics = [p for p in PANELS if p[0] in set(points["metric"])]
    if not metrics:
        raise Skip("demand: no qrels/ndcg@10 or knn/recall@10 curves in its runs")
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(5.6 * len(metrics), 4.6), squeeze=False, layout="constrained"
    )
    first = points.iloc[0]
    demand = [n for n in dict.fromkeys(points["strategy"]) if n.startswith("demand/")]
    lazy = [f"rerank/{n.split('/', 1)[1]}" for n in demand]
    for ax, (metric, _, short) in zip(axes[0], metrics, strict=True):
        part = points[points["metric"] == metric]
        for name in dict.fromkeys(part["strategy"]):
            line = part[part["strategy"] == name]
            if name in demand or name in lazy:
                line = line[line["queries"] >= DEMAND_FIRST]
                source = name.split("/")[1].split("@")[0]
                ax.plot(
                    100 * line["share_encoded"],
                    line["value"],
                    color=DEMAND_COLOUR if name in demand else FAMILIES["rerank"][1],
                    linestyle=DASHES.get(source, "-"),
                    linewidth=1.6 if name in demand else 1.1,
                    marker="o" if name in demand else None,
                    markersize=2.5,
                    label=("demand-driven " if name in demand else "lazy re-rank ")
                    + name.split("/", 1)[1].replace("_", " "),
                )
            elif family_of(name) == "backfill":
                end = line.iloc[-1]
                ax.plot(
                    100 * end["share_encoded"],
                    end["running"],
                    FAMILIES["backfill"][2],
                    color=FAMILIES["backfill"][1],
                    markersize=MARKER_SIZE,
                    label=FAMILIES["backfill"][0] + " (whole stream)",
                )
            elif name in REFERENCES:
                label, color, dash = REFERENCES[name]
                ax.axhline(
                    line.iloc[-1]["running"],
                    color=color,
                    linestyle=dash,
                    linewidth=1.0,
                    label=f"{label} (whole stream)",
                )
        ax.set_xlim(0, 102)
        ax.set_xlabel("new-model documents encoded so far (% of the corpus)")
        ax.set_ylabel(f"{short}, mean over the last\n{int(first['window']):,} queries served")
    title = (
        "Demand-driven migration: quality as the corpus is encoded along the query stream "
        f"({int(first['length']):,} queries, {int(first['n_unique_queries']):,} distinct, "
        f"N = {int(first['n_corpus']):,}); a line's points are its checkpoints from the "
        f"{DEMAND_FIRST}th query served on"
    )
    finish(fig, axes, title, subtitle(runs, note, settings))
    return fig, points


# -- timeline ---------------------------------------------------------------------------------
def timeline_points(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """Long table of the runs' timelines averaged over runs (onto the first run's hours): per
    mode or reference, metric and hour, the mean and 95% CI bounds, and the share migrated. A
    reference given as one number is a constant line. Modes that count their own new-model
    encodes (rerank) add rows whose metric is one of ENCODE_QUANTITIES (mean only: share_encoded
    is all their encodes so far / N, background_encodes cumulative, on_demand_encodes per step)."""
    timelines = [r.timeline for r in records if r.timeline]
    hours = np.asarray(timelines[0]["hours"], dtype=float)

    def on_hours(timeline: dict, values: object) -> np.ndarray:
        values = as_floats(np.atleast_1d(np.asarray(values, dtype=object)))
        return np.interp(
            hours, timeline["hours"], np.broadcast_to(values, (len(timeline["hours"]),))
        )

    share = np.mean([on_hours(t, t["share_migrated"]) for t in timelines], axis=0)
    tables = []
    for kind, key in (("mode", "modes"), ("reference", "references")):
        found: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
        for t in timelines:
            for name, by_metric in (t.get(key) or {}).items():
                for metric, stats in by_metric.items():
                    if isinstance(stats, dict) and "mean" in stats:  # not notes, refit times
                        found.setdefault((name, metric), []).append((t, stats))
        for (name, metric), curves in found.items():
            columns = {
                stat: np.mean([on_hours(t, s.get(stat)) for t, s in curves], axis=0)
                for stat in ("mean", "ci_low", "ci_high")
            }
            tables.append(
                pd.DataFrame(
                    {
                        "kind": kind,
                        "name": name,
                        "metric": metric,
                        "hours": hours,
                        **columns,
                        "share_migrated": share,
                        "n_runs": len(curves),
                    }
                )
            )
    counted: dict[str, list[tuple[dict, dict]]] = {}
    for t in timelines:
        for name, by_metric in (t.get("modes") or {}).items():
            if "new_doc_encodes" in by_metric:
                counted.setdefault(name, []).append((t, by_metric))
    for name, found in counted.items():
        series = {
            quantity: [
                on_hours(t, np.asarray(m["new_doc_encodes"]) / t["n_corpus"])
                if quantity == "share_encoded"
                else on_hours(t, m[quantity])
                for t, m in found
            ]
            for quantity in ENCODE_QUANTITIES
        }
        for quantity, values in series.items():
            tables.append(
                pd.DataFrame(
                    {
                        "kind": "mode",
                        "name": name,
                        "metric": quantity,
                        "hours": hours,
                        "mean": np.mean(values, axis=0),
                        "ci_low": np.nan,
                        "ci_high": np.nan,
                        "share_migrated": share,
                        "n_runs": len(found),
                    }
                )
            )
    return pd.concat(tables, ignore_index=True)


def fig_timeline(
    runs: pd.DataFrame, records: dict[str, ResultRecord], note: str, settings: Settings
) -> tuple[Figure, pd.DataFrame]:
    chosen = [records[f] for f in runs["file"]]
    points = timeline_points(chosen)
    metrics = [p for p in PANELS if p[0] in set(points["metric"])]
    if not metrics:
        raise Skip("timeline: no qrels/ndcg@10 or knn/recall@10 curves in its runs")
    fig, axes = plt.subplots(
        2,
        len(metrics),
        figsize=(max(6.4, 4.6 * len(metrics)), 4.8),
        squeeze=False,
        sharex=True,
        height_ratios=[3, 1],
        layout="constrained",
    )
    config = (chosen[0].timeline or {}).get("config") or {}
    encoded = points[points["metric"] == "share_encoded"]
    for j, (metric, ylabel, _) in enumerate(metrics):
        ax, below = axes[0, j], axes[1, j]
        part = points[points["metric"] == metric]
        palette = iter(plt.get_cmap("Dark2").colors)
        colors = {}
        for name, line in part[part["kind"] == "mode"].groupby("name", sort=False):
            label, color = MODES.get(name, (name, next(palette)))
            label, colors[name] = label.format(k=config.get("rerank_k")), color
            ax.plot(line["hours"], line["mean"], color=color, linewidth=1.4, label=label)
            ax.fill_between(
                line["hours"],
                line["ci_low"],
                line["ci_high"],
                color=color,
                alpha=0.18,
                linewidth=0,
            )
        for name, line in part[part["kind"] == "reference"].groupby("name", sort=False):
            label, color, dash = REFERENCES.get(name, (name, "#555555", "-."))
            ax.plot(
                line["hours"], line["mean"], color=color, linestyle=dash, linewidth=1.1, label=label
            )
        ax.set_ylabel(ylabel)
        share = part.drop_duplicates("hours")
        below.plot(share["hours"], 100 * share["share_migrated"], color="#444444", linewidth=1.2)
        below.fill_between(
            share["hours"],
            0,
            100 * share["share_migrated"],
            color="#444444",
            alpha=0.12,
            linewidth=0,
        )
        for name, line in encoded.groupby("name", sort=False):
            below.plot(
                line["hours"],
                100 * line["mean"],
                color=colors.get(name, "#555555"),
                linestyle="--",
                linewidth=1.2,
            )
        below.set_ylim(0, 105)
        below.set_ylabel(("encoded" if len(encoded) else "migrated") + "\n(% of corpus)")
        below.set_xlabel("hours since the migration started (h)")
    named = {key for key, _ in settings}
    scalars = [
        (k, v) for k, v in config.items() if isinstance(v, int | float | str) and k not in named
    ]
    bands = "95% CI" if len(chosen) == 1 else f"95% CIs averaged over {len(chosen)} runs"
    title = (
        "Migration timeline: quality while the corpus is re-embedded in the background "
        f"(bands: {bands}; dashed: full re-index, dotted: status quo"
        + (
            "; below, grey: migrated; dashed: a re-rank mode's new-model encodes so far, by the "
            "background job and on demand, each document once)"
            if len(encoded)
            else ")"
        )
    )
    finish(fig, axes, title, subtitle(runs, note, [*settings, *scalars[:6]]))
    return fig, points


# -- writing ----------------------------------------------------------------------------------
def write_all(results: Path, out: Path) -> tuple[list[Path], dict[str, str]]:
    """Every output the runs allow into `out`: (written paths, {output: why skipped})."""
    rows, runs, records = load(results)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    skipped: dict[str, str] = {}
    figures: dict[str, tuple[Figure, pd.DataFrame]] = {}
    with plt.rc_context(PAPER_STYLE):
        try:
            chosen, note = beyond_paper_rows(rows)
            parts = designs(chosen, records)
            for suffix, settings, part in parts:
                figures["pareto" + suffix] = fig_pareto(part, note, settings)
            (out / "strategy_costs.md").write_text(cost_table(parts, note), encoding="utf-8")
            written.append(out / "strategy_costs.md")
        except Skip as why:
            skipped["pareto and strategy_costs.md"] = str(why)
        for name, draw in (
            ("stream", fig_stream),
            ("demand", fig_demand),
            ("timeline", fig_timeline),
        ):
            has = runs["file"].map(lambda f, name=name: has_section(records[f], name))
            if name == "demand" and not has.any():
                continue  # an optional part of a stream section: the stream figure speaks for it
            try:
                chosen, note = full_runs(runs[has], name, f"no runs with a {name} section")
                for suffix, settings, part in designs(chosen, records):
                    figures[name + suffix] = draw(part, records, note, settings)
            except Skip as why:
                skipped[name] = str(why)
    written += save_figures(figures, out)
    return written, skipped


def has_section(record: ResultRecord, name: str) -> bool:
    """Whether the record has the section `name` draws from (demand: a stream's demand part)."""
    if name == "demand":
        return bool((record.data.get("stream") or {}).get("demand"))
    return bool(record.data.get(name))

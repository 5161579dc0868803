"""Upgrade strategies beyond the paper: quality vs cost, query-stream costs, migration timelines.

    python scripts/plot_migration.py results/runs --out results/figures/migration

Reads every result file under RESULTS_DIR (the files `python -m drift.run` writes) and writes to
--out, per figure a PNG, a PDF and a CSV of the plotted points:

    output             from runs of                        shows
    pareto             experiment=beyond_paper             nDCG@10 (qrels) and R@10 (kNN ARR) vs
                                                           share of the corpus encoded by the new
                                                           model; Pareto frontier as a step line
    strategy_costs.md  experiment=beyond_paper             per strategy: nDCG@10, R@10, share
                                                           encoded, encodes, us/query, frontier
    stream             experiment=query_stream             cumulative encodes and running quality
                                                           vs queries served
    timeline           experiment=migration_timeline,      quality over migration hours per mode
                       experiment=continuous_adaptation    (95% CI bands), references, share
                                                           migrated

Runs are found by content: the pareto figure and the table use the runs whose strategies include
rerank, fusion or backfill (all of a run's deployable strategies are plotted; the ground-truth
ceiling is not deployable and left out); stream and timeline use the runs with a `stream` or a
`timeline` section. An output whose runs are absent is skipped with a message naming the
experiment that makes them. Full runs are used when there are any, else smoke runs, and then the
title says so. One file per (dataset, model pair), and per design when one pair has several
(suffixed). Points: mean over seeds; error bars +-1 s.d. over seeds (none with one seed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from collect_results import run_info
from make_figures import (
    PAPER_STYLE,
    Skip,
    contexts,
    describe,
    finish,
    label_of,
    new_figure,
    save_figures,
    style,
)
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from drift.errors import DriftError
from drift.recommend import as_floats, mean_stream, pareto_frontier, strategy_rows
from drift.results import read_results

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
}
REFERENCES = {
    "full_reindex": ("Full re-index", "#000000", "--"),
    "status_quo": ("Status quo", "#999999", ":"),
}
MAKE = {
    "pareto": "python -m drift.run -m experiment=beyond_paper",
    "stream": "python -m drift.run -m experiment=query_stream",
    "timeline": "python -m drift.run -m experiment=migration_timeline (and "
    "-m experiment=continuous_adaptation)",
}


# -- runs -------------------------------------------------------------------------------------
def load(results: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict]]:
    """(strategy rows with run columns, one row per run, {file: record}) of the result files."""
    records = {str(path): record for path, record in read_results([results])}
    if not records:
        raise ValueError(f"no result files under {results}")
    runs = pd.DataFrame([{**run_info(r), "file": f} for f, r in records.items()])
    rows = pd.DataFrame(
        [
            {**info, **row}
            for info in runs.to_dict("records")
            for row in strategy_rows(records[info["file"]], info["file"])
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


def split(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One part per (dataset, model pair, design); file suffix only when there are several."""
    return contexts(frame, ["dataset", "pair", "group"])


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


def fig_pareto(rows: pd.DataFrame, note: str) -> tuple[Figure, pd.DataFrame]:
    points = pareto_points(rows)
    panels = [p for p in PANELS if p[0] in set(points["metric"])]
    fig, axes = new_figure(1, len(panels))
    fig.set_size_inches(4.6 * len(panels), 4.2)
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
                    markersize=5,
                    capsize=2,
                    linewidth=0.8,
                    alpha=alpha,
                    zorder=3,
                )
            if not mine.empty:  # legend entry: a filled marker, whichever points were drawn
                ax.plot([], [], marker, color=color, markersize=5, label=label)
        label_points(ax, frontier)
        share_axis(ax, part["share"])
        ax.set_xlabel("share of the corpus encoded by the new model\n(% of documents, symlog)")
        ax.set_ylabel(ylabel)
    title = (
        "Quality vs. cost of upgrading the embedding model: filled points are on the Pareto "
        "frontier, hollow ones are dominated"
    )
    finish(fig, axes, title, subtitle(rows, note))
    return fig, points


def subtitle(rows: pd.DataFrame, note: str) -> str:
    """What the runs are (see make_figures.describe) and which experiment made them."""
    return f"{describe(rows, note)}; experiment {', '.join(sorted(set(rows['experiment'])))}"


def label_points(ax: plt.Axes, frontier: pd.DataFrame) -> None:
    """Label the frontier points (sorted by cost) above and to the left: no point lies there, as
    it would dominate the labelled one, and the step line runs below. The cheapest point's label
    goes to its right, to stay inside the axes."""
    for i, (_, point) in enumerate(frontier.iterrows()):
        ax.annotate(
            short_label(point["strategy"]),
            (point["share"], point["mean"]),
            xytext=(4, 4) if i == 0 else (-4, 4),
            textcoords="offset points",
            ha="left" if i == 0 else "right",
            va="bottom",
            fontsize=6.5,
            color="#222222",
        )


# -- strategy table ---------------------------------------------------------------------------
def cost_table(parts: Sequence[tuple[str, pd.DataFrame]], note: str) -> str:
    """strategy_costs.md: one table per (dataset, model pair[, design])."""
    lines = [
        f"# {note}Strategies and their cost in new-model document encodes",
        "",
        "Mean ± s.d. over seeds. Share encoded / encodes: corpus documents encoded by the new "
        "model (the full re-embedding's N, the adapter's pairs, rerank's on-demand encodes over "
        "the evaluation queries, the backfill's share). us/query: whole-batch time / queries "
        "(rerank's excludes its encodes). Frontier: no other strategy is at least as good for at "
        "most the cost on that metric. The ground-truth ceiling is not deployable: left out.",
    ]
    for _, rows in parts:
        points = pareto_points(rows)
        metrics = [(m, short) for m, _, short in PANELS if m in set(points["metric"])]
        found = {(row.strategy, row.metric): row for row in points.itertuples()}
        n_corpus = int(rows["n_corpus"].iloc[0])
        lines += [
            "",
            f"## {subtitle(rows, '')}; {n_corpus:,} documents",
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
def stream_points(records: Sequence[dict]) -> pd.DataFrame:
    """Long table of the runs' stream curves averaged over seeds: per strategy and checkpoint,
    the share encoded and each running quality metric."""
    streams = [r["stream"] for r in records]
    names = list(dict.fromkeys(n for s in streams for n in s["strategies"]))
    tables = []
    for name in names:
        curve = mean_stream([s for s in streams if name in s["strategies"]], name)
        series = {"share_encoded": curve["share_encoded"], **curve["quality"]}
        latency = curve["latency_us"]
        for quantity, values in series.items():
            tables.append(
                pd.DataFrame(
                    {
                        "strategy": name,
                        "quantity": quantity,
                        "queries": curve["queries"],
                        "value": values,
                        "cold_us_mean": latency.get("cold_mean"),
                        "warm_us_mean": latency.get("warm_mean"),
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
    runs: pd.DataFrame, records: dict[str, dict], note: str
) -> tuple[Figure, pd.DataFrame]:
    points = stream_points([records[f] for f in runs["file"]])
    metrics = [p for p in PANELS if p[0] in set(points["quantity"])]
    fig, axes = new_figure(1, 1 + len(metrics))
    fig.set_size_inches(3.9 * (1 + len(metrics)), 4.3)
    first = points.iloc[0]
    names = sorted(
        dict.fromkeys(points["strategy"]), key=lambda n: list(FAMILIES).index(family_of(n))
    )
    styles = line_styles(names)
    for name in names:
        mine = points[points["strategy"] == name]
        latency = mine.iloc[0]
        label = name
        if pd.notna(latency["cold_us_mean"]):
            label += f" ({latency['cold_us_mean']:,.0f} / {latency['warm_us_mean']:,.0f} µs)"
        kwargs = {**styles[name], "linewidth": 1.3, "label": label}
        share = mine[mine["quantity"] == "share_encoded"]
        axes[0, 0].plot(share["queries"], 100 * share["value"], **kwargs)
        for ax, (metric, _, _) in zip(axes[0, 1:], metrics, strict=True):
            quality = mine[mine["quantity"] == metric]
            ax.plot(quality["queries"], quality["value"], **kwargs)
    axes[0, 0].set_ylabel("new-model documents encoded\n(cumulative, % of the corpus)")
    for ax, (_, ylabel, _) in zip(axes[0, 1:], metrics, strict=True):
        ax.set_ylabel(f"running mean over queries served:\n{ylabel}")
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("queries served (log scale)")
    title = (
        f"Query stream: cumulative new-model encodes and running quality as queries arrive "
        f"({int(first['length']):,} queries, {int(first['n_unique_queries']):,} distinct, "
        f"N = {int(first['n_corpus']):,}); legend: time per query cold / warm, the encodes of a "
        "cold query at the measured encode rate included"
    )
    finish(fig, axes, title, subtitle(runs, note))
    return fig, points


# -- timeline ---------------------------------------------------------------------------------
def timeline_points(records: Sequence[dict]) -> pd.DataFrame:
    """Long table of the runs' timelines averaged over runs (onto the first run's hours): per
    mode or reference, metric and hour, the mean and 95% CI bounds, and the share migrated. A
    reference given as one number is a constant line."""
    timelines = [r["timeline"] for r in records]
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
    return pd.concat(tables, ignore_index=True)


def fig_timeline(
    runs: pd.DataFrame, records: dict[str, dict], note: str
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
    for j, (metric, ylabel, _) in enumerate(metrics):
        ax, below = axes[0, j], axes[1, j]
        part = points[points["metric"] == metric]
        palette = iter(plt.get_cmap("Dark2").colors)
        for name, line in part[part["kind"] == "mode"].groupby("name", sort=False):
            label, color = MODES.get(name, (name, next(palette)))
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
        below.set_ylim(0, 105)
        below.set_ylabel("migrated\n(% of corpus)")
        below.set_xlabel("hours since the migration started (h)")
    config = chosen[0]["timeline"].get("config") or {}
    scalars = [(k, v) for k, v in config.items() if isinstance(v, int | float | str)]
    settings = ", ".join(f"{k}={v}" for k, v in scalars[:6])
    bands = "95% CI" if len(chosen) == 1 else f"95% CIs averaged over {len(chosen)} runs"
    title = (
        "Migration timeline: quality while the corpus is re-embedded in the background "
        f"(bands: {bands}; dashed: full re-index, dotted: status quo)"
    )
    finish(fig, axes, title, subtitle(runs, note) + (f"; {settings}" if settings else ""))
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
            parts = split(chosen)
            for suffix, part in parts:
                figures["pareto" + suffix] = fig_pareto(part, note)
            (out / "strategy_costs.md").write_text(cost_table(parts, note), encoding="utf-8")
            written.append(out / "strategy_costs.md")
        except Skip as why:
            skipped["pareto and strategy_costs.md"] = str(why)
        for name, draw in (("stream", fig_stream), ("timeline", fig_timeline)):
            try:
                has = runs["file"].map(lambda f, name=name: bool(records[f].get(name)))
                chosen, note = full_runs(runs[has], name, f"no runs with a {name} section")
                for suffix, part in split(chosen):
                    figures[name + suffix] = draw(part, records, note)
            except Skip as why:
                skipped[name] = str(why)
    written += save_figures(figures, out)
    return written, skipped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="folder of result files (searched recursively)")
    parser.add_argument("--out", type=Path, default=Path("results/figures/migration"))
    args = parser.parse_args(argv)
    plt.switch_backend("Agg")
    try:
        written, skipped = write_all(args.results, args.out)
    except (DriftError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

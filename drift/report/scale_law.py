"""The scale law: how each strategy's quality changes with the corpus size, with CIs over seeds.

    drift scale-law results/corpus_size_gcide/runs --out results/corpus_size_gcide/scale_law

A corpus-size sweep (experiment=corpus_size, corpus_size_real, corpus_size_gcide, ...) measures
each strategy at several corpus sizes N, once per seed. A figure of means answers "does it fall?";
a researcher also needs "how fast, and how sure are we?" and "where does it cross the status
quo?". For every experiment x dataset x model pair x index x protocol x metric x strategy:

- points: at each N, the mean over seeds with its 95% t-interval, and the same for the paired
  difference to the baseline strategy (default the status quo: each seed's run against the same
  seed's baseline, so the CI is that of the difference, not of two overlapping bands);
- laws: value ~ a + b log10(N) fitted by least squares per seed, over every size of the sweep,
  with the seeds measured at all of them (a seed missing a size is left out of the fit and
  counted); b is the change per tenfold corpus, reported as its mean and 95% t-interval over
  seeds (one seed: no interval). For a difference to the baseline, the N where the mean fit
  crosses zero, with a 95% t-interval of the seeds' own crossings in log10 N when every seed's
  line slopes the same way, and whether it lies inside the measured sizes (beyond them it is an
  extrapolation and says so).

A straight line in log N is a description of the measured range, not a model of what lies beyond
it: the points are kept beside the fit so a reader can see where it bends.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from drift.core.errors import DataError
from drift.report.collect import one_run_per_seed, summarize, t_half_width
from drift.report.figures import (
    finish,
    label_of,
    log_ticks_at,
    new_figure,
    ordered,
    style,
)

# What one curve is about (a strategy's value against n_corpus, one per seed and size).
CURVE = ["experiment", "dataset", "pair", "level", "index_kind", "protocol", "metric"]
# Settings that may differ between the runs of one curve: the Np of a 2%-of-N sweep grows with N.
ALONG_THE_CURVE = ("np_requested", "np", "np_fraction", "n_queries")
DIFF = " - "  # "adapter/procrustes - status_quo": a paired difference's strategy name
# Each protocol's headline metric: agreement with the new model's top 10 (= ARR under exact search),
# and nDCG@10 against the relevance labels.
HEADLINE = (("knn", "recall@10"), ("qrels", "ndcg@10"))
EXTRAPOLATE = 10  # a crossing up to this factor beyond the measured sizes is shown, marked


def measured(frame: pd.DataFrame, metrics: Sequence[str] | None) -> pd.DataFrame:
    """One value per curve, strategy, corpus size and seed (reruns: the newest), from the tidy
    table of `drift.report.collect.collect`; debug runs left out. `metrics`: those under every
    protocol; None: each protocol's headline metric (HEADLINE)."""
    if metrics:
        chosen = frame["metric"].isin(metrics)
    else:
        chosen = pd.Series(
            list(zip(frame["protocol"], frame["metric"], strict=True)), index=frame.index
        ).isin(HEADLINE)
    rows = frame[chosen & ~frame["debug"].astype(bool)]
    if rows.empty:
        raise DataError(
            f"no non-debug run reports {', '.join(metrics or [m for _, m in HEADLINE])}"
        )
    rows = one_run_per_seed(rows, [*CURVE, "strategy", "n_corpus"], same=ALONG_THE_CURVE)
    return rows[[*CURVE, "strategy", "n_corpus", "seed", "value"]].reset_index(drop=True)


def paired_differences(data: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Each strategy's value minus the same seed's `baseline` value at the same size (rows
    without a baseline run are dropped)."""
    keys = [*CURVE, "n_corpus", "seed"]
    base = data[data["strategy"] == baseline].set_index(keys)["value"]
    others = data[data["strategy"] != baseline]
    paired = base.reindex(pd.MultiIndex.from_frame(others[keys])).to_numpy(dtype=float)
    out = others.assign(
        value=others["value"].to_numpy() - paired, strategy=others["strategy"] + DIFF + baseline
    )
    return out[~np.isnan(paired)].reset_index(drop=True)


def points(data: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per curve, strategy and size, with the 95% t-interval (NaN for one seed)."""
    keys = [*CURVE, "strategy", "n_corpus"]
    return summarize(data, by=keys).sort_values(keys, ignore_index=True)


def power_of_ten(exponent: float) -> float:
    """10 ** exponent, held to 1e-300..1e300 where a nearly flat line puts a crossing out of
    float range."""
    return float(10.0 ** np.clip(exponent, -300.0, 300.0))


def fit_one(curve: pd.DataFrame) -> dict[str, object]:
    """The per-seed log10(N) fits of one strategy's curve, summarised over seeds."""
    sizes = np.sort(curve["n_corpus"].unique())
    table = curve.pivot_table(index="seed", columns="n_corpus", values="value")
    complete = table.dropna()
    row: dict[str, object] = {
        "sizes": ",".join(str(int(n)) for n in sizes),
        "n_sizes": len(sizes),
        "smallest": int(sizes[0]),
        "largest": int(sizes[-1]),
        "seeds": ",".join(str(int(s)) for s in complete.index),
        "n_seeds": len(complete),
        "seeds_left_out": len(table) - len(complete),
    }
    if len(sizes) < 2 or complete.empty:
        return row
    x = np.log10(sizes.astype(float))
    slopes, intercepts = np.polyfit(x, complete[sizes].to_numpy().T, 1)
    slope, intercept = float(np.mean(slopes)), float(np.mean(intercepts))
    half = float(t_half_width(np.std(slopes, ddof=1), len(slopes))) if len(slopes) > 1 else np.nan
    row |= {
        "slope_per_tenfold": slope,
        "slope_ci_low": slope - half,
        "slope_ci_high": slope + half,
        "intercept": intercept,
        "value_at_smallest": float(complete[sizes[0]].mean()),
        "value_at_largest": float(complete[sizes[-1]].mean()),
    }
    if DIFF in str(curve["strategy"].iloc[0]) and slope != 0:
        crossing = power_of_ten(-intercept / slope)
        row |= {
            "crossing_n": crossing,
            "crossing_within_sizes": bool(sizes[0] <= crossing <= sizes[-1]),
        }
        if len(slopes) > 1 and np.all(np.sign(slopes) == np.sign(slope)):
            # every seed's line crosses the same way: a t-interval of log10 of their crossings
            logs = -intercepts / slopes
            spread = float(t_half_width(np.std(logs, ddof=1), len(logs)))
            row |= {
                "crossing_ci_low": power_of_ten(float(np.mean(logs)) - spread),
                "crossing_ci_high": power_of_ten(float(np.mean(logs)) + spread),
            }
    return row


def laws(data: pd.DataFrame) -> pd.DataFrame:
    """`fit_one` for every curve and strategy of `data` (values or paired differences)."""
    rows = [
        {**dict(zip([*CURVE, "strategy"], key, strict=True)), **fit_one(curve)}
        for key, curve in data.groupby([*CURVE, "strategy"], sort=True, dropna=False)
    ]
    return pd.DataFrame(rows)


def scale_law(
    frame: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    baseline: str = "status_quo",
    strategies: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(points, laws) of the tidy table `frame`, values and paired differences to `baseline`
    together (module docstring); `strategies` keeps those (and the baseline) only."""
    data = measured(frame, metrics)
    if strategies:
        data = data[data["strategy"].isin([*strategies, baseline])]
    if data["n_corpus"].nunique() < 2:
        raise DataError(
            f"a scale law needs runs at two corpus sizes or more; these have only "
            f"{', '.join(str(int(n)) for n in sorted(data['n_corpus'].unique()))}"
        )
    both = pd.concat([data, paired_differences(data, baseline)], ignore_index=True)
    return points(both), laws(both)


def figure(points_of_curve: pd.DataFrame, laws_of_curve: pd.DataFrame, title: str) -> Figure:
    """Left: each strategy's mean and 95% CI over seeds against N (log), its fitted line dashed.
    Right: the paired differences to the baseline, zero marked (the full re-index's left out of
    the panel, which it would flatten; it is in the tables)."""
    fig, axes = new_figure(1, 2)
    slopes = laws_of_curve.set_index("strategy")
    for ax, paired in zip(axes.flat, (False, True), strict=True):
        rows = points_of_curve[points_of_curve["strategy"].str.contains(DIFF) == paired]
        if paired:
            rows = rows[~rows["strategy"].str.startswith("full_reindex" + DIFF)]
        for strategy in ordered(rows["strategy"].str.split(DIFF).str[0]):
            name = next(s for s in rows["strategy"].unique() if s.split(DIFF)[0] == strategy)
            line = rows[rows["strategy"] == name].sort_values("n_corpus")
            look = style(strategy)
            ax.errorbar(
                line["n_corpus"],
                line["mean"],
                yerr=[line["mean"] - line["ci_low"], line["ci_high"] - line["mean"]],
                capsize=2,
                markersize=4,
                linewidth=1.2,
                **look,
            )
            law = slopes.loc[name] if name in slopes.index else None
            if law is not None and pd.notna(law.get("slope_per_tenfold")):
                x = line["n_corpus"].to_numpy(dtype=float)
                fitted = law["intercept"] + law["slope_per_tenfold"] * np.log10(x)
                ax.plot(x, fitted, linestyle=":", linewidth=1.0, color=look["color"])
        log_ticks_at(ax, rows["n_corpus"])
        ax.set_xlabel("corpus size N")
        if paired:
            ax.axhline(0.0, color="black", linewidth=0.8)
            baseline = rows["strategy"].iloc[0].split(DIFF)[1] if len(rows) else "baseline"
            ax.set_ylabel("paired difference")
            ax.set_title(f"minus {label_of(baseline)}", fontsize=9)
        else:
            ax.set_ylabel(str(points_of_curve["metric"].iloc[0]))
    subtitle = "mean and 95% t-interval over seeds; dotted: value ~ a + b log10 N per seed"
    return finish(fig, axes, title, subtitle)


def crossing_text(row: object) -> str:
    """Where a paired difference's mean fit crosses zero: inside the measured sizes as a number,
    up to tenfold beyond them marked as extrapolated, further out not at all."""
    crossing = getattr(row, "crossing_n", np.nan)
    if pd.isna(crossing):
        return ""
    low, high = getattr(row, "crossing_ci_low", np.nan), getattr(row, "crossing_ci_high", np.nan)
    interval = "" if pd.isna(low) else f" [{low:,.0f}, {high:,.0f}]"
    if row.crossing_within_sizes:
        return f"{crossing:,.0f}{interval}"
    if row.smallest / EXTRAPOLATE <= crossing <= row.largest * EXTRAPOLATE:
        return f"{crossing:,.0f}{interval} (extrapolated)"
    return "-"


def markdown(laws_table: pd.DataFrame) -> str:
    """The laws as a Markdown table: slope per tenfold with its CI, the values at both ends, and
    the crossing of the baseline (`crossing_text`)."""
    lines = [
        "| experiment | level | index | protocol | metric | strategy | sizes | seeds "
        "| per tenfold [95% CI] | smallest -> largest | crosses 0 at N |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in laws_table.itertuples():
        if pd.isna(getattr(row, "slope_per_tenfold", np.nan)):
            continue
        ci = (
            f" [{row.slope_ci_low:+.3f}, {row.slope_ci_high:+.3f}]"
            if pd.notna(row.slope_ci_low)
            else ""
        )
        level = "" if pd.isna(row.level) else row.level
        lines.append(
            f"| {row.experiment} | {level} | {row.index_kind} | {row.protocol} | {row.metric} "
            f"| {row.strategy} | {row.n_sizes} | {row.n_seeds} "
            f"| {row.slope_per_tenfold:+.3f}{ci} "
            f"| {row.value_at_smallest:.3f} -> {row.value_at_largest:.3f} "
            f"| {crossing_text(row)} |"
        )
    return "\n".join(lines) + "\n"

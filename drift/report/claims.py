"""The claims ledger: every quantitative claim of the paper beside what this harness measured.

    drift claims                    # writes results/claims.md and results/claims.json

Each claim names the paper's number, the experiment that tests it, and the committed result
files that hold the measurement; the measured value, its interval and setting are computed from
those files here, so the ledger cannot drift from them. A verdict is one of:

- reproduced: the measured interval meets the paper's number (or range);
- not reproduced: it does not; the setting says how our test differs from the paper's, if it does;
- not testable here: the paper's data or models cannot be had on these machines (the reason is
  given), or no committed result holds the measurement yet.

Intervals are 95% t-intervals over seeds (one run: its 95% bootstrap CI over queries). The paper
reports no intervals, so "meets" means the paper's value lies inside ours, or ours inside the
paper's range, or the claimed inequality holds for the whole interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drift.core.errors import DataError
from drift.core.records import ResultRecord
from drift.report.collect import t_half_width

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = "reproduced", "not reproduced", "not testable here"
TEXT_PAIR = ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-mpnet-base-v2")
# The paper's main table (R@10 ARR): dataset -> (OP, LA, MLP).
PAPER_MAIN = {
    "AG-News": (0.974, 0.983, 0.992),
    "DBpedia-14": (0.968, 0.979, 0.990),
    "Emotion": (0.953, 0.967, 0.984),
    "LAION-400M (CLIP ViT-B/32 -> ViT-L/14)": (0.942, 0.961, 0.978),
}
PAPER_EXPERIMENTS = {
    "AG-News": "experiment=main_table dataset=ag_news",
    "DBpedia-14": "experiment=main_table dataset=dbpedia_14",
    "Emotion": "experiment=main_table dataset=emotion",
    "LAION-400M (CLIP ViT-B/32 -> ViT-L/14)": "experiment=image_clip_laion",
}
ADAPTERS = {"OP": "procrustes", "LA": "low_rank_affine", "MLP": "residual_mlp"}


@dataclass(frozen=True)
class Estimate:
    """A measured mean with its 95% interval and what it is over."""

    mean: float
    low: float
    high: float
    over: str  # "5 seeds" or "1 run (bootstrap CI)"

    def text(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class Entry:
    """One row of the ledger."""

    claim: str
    paper: str
    experiment: str
    measured: str
    setting: str
    verdict: str
    why: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    """A paper claim and how to measure it from the result files under a results folder."""

    claim: str
    paper: str
    experiment: str
    sources: tuple[str, ...]  # folders under the results root
    measure: Callable[[list[ResultRecord]], tuple[str, str, str, str]]  # measured, setting,
    # verdict, why


def over_seeds(values: Sequence[float], run_ci: tuple[float, float] | None = None) -> Estimate:
    """Mean and 95% t-interval over seeds; one value keeps its run's bootstrap CI."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise DataError("no measurement to summarise")
    if x.size == 1:
        low, high = run_ci if run_ci is not None else (math.nan, math.nan)
        return Estimate(float(x[0]), low, high, "1 run (95% bootstrap CI over queries)")
    half = t_half_width(x.std(ddof=1), x.size)
    return Estimate(float(x.mean()), x.mean() - half, x.mean() + half, f"{x.size} seeds")


def metric_values(
    records: Iterable[ResultRecord], strategy: str, protocol: str = "knn", metric: str = "recall@10"
) -> tuple[list[float], tuple[float, float] | None]:
    """The strategy's metric in each record (one per seed), and the last run's bootstrap CI."""
    values, ci = [], None
    for record in records:
        summary = record.protocols.get(protocol, {}).get("strategies", {}).get(strategy)
        if summary is None:
            continue
        found = summary["metrics"][metric]
        values.append(found["mean"])
        ci = (found["ci_low"], found["ci_high"])
    return values, ci


def estimate(records: Sequence[ResultRecord], strategy: str, **where: str) -> Estimate:
    values, ci = metric_values(records, strategy, **where)
    return over_seeds(values, ci)


def newest_per_seed(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    """One record per seed (the newest file of each), so a rerun counts once."""
    by_seed: dict[Any, ResultRecord] = {}
    for record in sorted(records, key=lambda r: r.data.get("created", "")):
        by_seed[record.seed] = record
    return [by_seed[s] for s in sorted(by_seed, key=str)]


def select(records: Iterable[ResultRecord], experiment: str, **fields: Any) -> list[ResultRecord]:
    """Records of one experiment whose properties equal `fields` (one per seed)."""
    chosen = [
        r
        for r in records
        if r.experiment == experiment
        and not r.debug
        and all(getattr(r, k) == v for k, v in fields.items())
    ]
    return newest_per_seed(chosen)


def inside(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def overlaps(estimate_: Estimate, low: float, high: float) -> bool:
    return estimate_.low <= high and estimate_.high >= low


def adapters_against_paper(runs: Sequence[ResultRecord]) -> tuple[str, bool]:
    """Each adapter's and the status quo's kNN R@10 in words, and whether every adapter's
    interval lies below the paper's lowest main-table ARR."""
    cells, below = [], True
    for label, kind in ADAPTERS.items():
        found = estimate(runs, f"adapter/{kind}")
        below &= found.high < min(v for values in PAPER_MAIN.values() for v in values)
        cells.append(f"{label} {found.text()}")
    status_quo = estimate(runs, "status_quo")
    return f"{', '.join(cells)}; status quo {status_quo.text()}", below


# -- the claims ---------------------------------------------------------------------------------
def _main_table_offline(records: list[ResultRecord]) -> tuple[str, str, str, str]:
    lines, below = [], True
    for dataset in sorted({r.dataset for r in records if r.experiment == "main_table"}):
        runs = select(records, "main_table", dataset=dataset, old_model=TEXT_PAIR[0],
                      new_model=TEXT_PAIR[1])  # fmt: skip
        if not runs:
            continue
        cells, all_below = adapters_against_paper(runs)
        below &= all_below
        lines.append(f"{dataset}: {cells}")
    if not lines:
        return "no committed main_table runs", "", NOT_TESTABLE, "run experiment=main_table"
    scale = [
        r
        for r in records
        if r.experiment == "corpus_size_gcide_np20k" and r.data["index"]["spec"]["kind"] == "hnsw"
    ]
    if scale:  # the paper's Np on the largest real corpus measured
        largest = max(r.n_corpus for r in scale)
        scale = select(scale, "corpus_size_gcide_np20k", n_corpus=largest)
        cells, all_below = adapters_against_paper(scale)
        below &= all_below
        lines.append(f"gcide ({largest:,} documents, Np = 20,000): {cells}")
    n = len(select(records, "main_table", dataset="offline_mix"))
    verdict = NOT_REPRODUCED if below else REPRODUCED
    why = (
        "every adapter's interval lies below the paper's lowest ARR (.942)"
        if below
        else "some adapter reaches the paper's range"
    )
    setting = (
        f"the paper's text pair (all-MiniLM-L6-v2 -> all-mpnet-base-v2) on the offline real-text "
        f"corpora (Np capped at each corpus), HNSW, kNN R@10, {n} seeds"
        + (
            f"; and on GCIDE at the paper's Np = 20,000 (experiment=corpus_size_gcide_np20k, the "
            f"largest corpus measured, {len(scale)} seed(s))"
            if scale
            else ""
        )
    )
    return "; ".join(lines), setting, verdict, why


def _misaligned(records: list[ResultRecord]) -> tuple[str, str, str, str]:
    runs = [
        r
        for r in records
        if r.experiment == "drift_severity"
        and r.data["models"]["old"]["dim"] == r.data["models"]["new"]["dim"]
    ]
    if not runs:
        return "-", "", NOT_TESTABLE, "no committed run of a pair with equal dimensions"
    found = {
        model: estimate(newest_per_seed(r for r in runs if r.new_model == model), "misaligned")
        for model in sorted({r.new_model for r in runs})
    }
    measured = "; ".join(f"-> {model}: {e.text()}" for model, e in found.items())
    met = [model for model, e in found.items() if overlaps(e, 0.59, 0.72)]
    why = (
        "the paper's text pair maps 384 -> 768 dims, where a new query cannot search the old "
        "index at all; measured on the real pairs of equal dimensions here, "
        + (f"and {', '.join(met)} lands in the range" if met else "and neither lands in the range")
    )
    over = next(iter(found.values())).over
    setting = f"from {runs[0].old_model}, {runs[0].dataset}, kNN R@10, {over}"
    return measured, setting, REPRODUCED if met else NOT_REPRODUCED, why


def _drift_severity(records: list[ResultRecord]) -> tuple[str, str, str, str]:
    runs = select(records, "drift_severity", new_model="intfloat/multilingual-e5-small")
    if not runs:
        return "-", "", NOT_TESTABLE, "no committed drift_severity run"
    found = {label: estimate(runs, f"adapter/{kind}") for label, kind in ADAPTERS.items()}
    order = sorted(found, key=lambda label: found[label].mean)
    measured = ", ".join(f"{label} {e.text()}" for label, e in found.items())
    measured += f"; status quo {estimate(runs, 'status_quo').text()}"
    ordering = "OP < LA < MLP" if order == ["OP", "LA", "MLP"] else " < ".join(order)
    why = (
        "GloVe-300d vectors cannot be had on these machines (conf/encoder/glove_300d.yaml loads "
        "them online); measured on the hardest real pair here instead, where the paper's ordering "
        f"OP < LA < MLP {'holds' if order == ['OP', 'LA', 'MLP'] else 'does not hold'} "
        f"(measured {ordering})"
    )
    return (
        measured,
        f"all-MiniLM-L6-v2 -> multilingual-e5-small, faq, kNN R@10, {len(runs)} seeds",
        NOT_TESTABLE,
        why,
    )


def _dsm(records: list[ResultRecord]) -> tuple[str, str, str, str]:
    runs = [r for r in records if r.experiment == "dsm_ablation" and not r.debug]
    if not runs:
        return "-", "", NOT_TESTABLE, "no committed dsm_ablation run"
    largest = max(r.data["pairs"]["n_train"] + r.data["pairs"]["n_val"] for r in runs)
    runs = newest_per_seed(
        r for r in runs if r.data["pairs"]["n_train"] + r.data["pairs"]["n_val"] == largest
    )
    deltas, verdicts = [], []
    for label, kind in ADAPTERS.items():
        with_dsm, _ = metric_values(runs, f"adapter/{kind}+dsm")
        without, _ = metric_values(runs, f"adapter/{kind}")
        if not with_dsm or len(with_dsm) != len(without):
            continue
        found = over_seeds(np.subtract(with_dsm, without))
        deltas.append(f"{label} {found.text(4)}")
        verdicts.append(found.low >= 0.005 or inside(0.005, found.low, found.high))
    verdict = REPRODUCED if verdicts and all(verdicts) else NOT_REPRODUCED
    why = (
        "DSM's gain (with minus without, paired by seed) stays below +.005 for every adapter"
        if not any(verdicts)
        else "the gain reaches +.005 for some adapters only"
        if verdict == NOT_REPRODUCED
        else "every adapter gains at least +.005"
    )
    setting = f"the paper's text pair, offline_mix, Np = {largest}, kNN R@10, {len(runs)} seeds"
    return "; ".join(deltas), setting, verdict, why


def _routing(records: list[ResultRecord]) -> tuple[str, str, str, str]:
    runs = [r for r in records if r.experiment == "routed_adapters" and r.data.get("synthetic")]
    if not runs:
        return "-", "", NOT_TESTABLE, "no committed routed_adapters run"

    def routed(base: str, clusters: int) -> Estimate:
        chosen = newest_per_seed(
            r
            for r in runs
            if r.config["adapter"]["methods"]["routed"]["base"] == base
            and r.config["adapter"]["methods"]["routed"]["n_clusters"] == clusters
        )
        return estimate(chosen, "adapter/routed")

    mlp_global, mlp_two = routed("residual_mlp", 1), routed("residual_mlp", 2)
    op_global, op_best = routed("procrustes", 1), routed("procrustes", 8)
    measured = (
        f"MLP: global {mlp_global.text()}, 2 routed {mlp_two.text()}; OP: global "
        f"{op_global.text()}, 8 routed {op_best.text()}"
    )
    gain = mlp_two.low > mlp_global.high
    why = (
        "two routed MLPs do not beat one global MLP on planted regional drift (routing does "
        "rescue OP); on the real pair routing lowers every adapter (results/routed_adapters/)"
        if not gain
        else "two routed MLPs beat one global MLP"
    )
    setting = (
        "synthetic (labelled synthetic): 8 latent components in 2 regions, each region's drift "
        f"its own rotation; kNN R@10, {mlp_global.over}; the paper used 500k DBpedia items"
    )
    return measured, setting, REPRODUCED if gain else NOT_REPRODUCED, why


def _continuous(records: list[ResultRecord]) -> tuple[str, str, str, str]:
    runs = select(records, "continuous_adaptation")
    if not runs:
        return "-", "", NOT_TESTABLE, "no committed continuous_adaptation run"
    hour = 24.0

    def at_hour(mode: str) -> Estimate:
        values = []
        for record in runs:
            timeline = record.timeline or {}
            values.append(timeline["modes"][mode]["knn/recall@10"]["mean"][
                timeline["hours"].index(hour)])  # fmt: skip
        return over_seeds(values)

    refit, frozen = at_hour("adapter_refit"), at_hour("adapter_frozen")
    holds = refit.low > 0.95
    why = (
        "the hourly refit stays far below .95 (the re-embedded share grows the pairs, not the "
        "adapter's reach), though it does beat the frozen adapter"
        if not holds
        else "the hourly refit stays above .95"
    )
    setting = f"the paper's text pair, offline_mix, 5%/hour re-embedded, OP, kNN R@10 at 24 h, " \
        f"{refit.over}"  # fmt: skip
    measured = f"refit {refit.text()}, frozen {frozen.text()}"
    return measured, setting, REPRODUCED if holds else NOT_REPRODUCED, why


def _latency(bench: dict[str, Any]) -> tuple[str, str, str, str]:
    checks = bench["summary"]["checks"]
    numpy_op = {c["batch"]: c["per_query_median_us"] for c in checks
                if c["adapter"] == "OP" and c["backend"] == "numpy"}  # fmt: skip
    fastest_single = min(c["per_query_median_us"] for c in checks if c["batch"] == 1)
    measured = (
        f"OP (numpy) {numpy_op[1]:.1f} us at batch 1, {numpy_op[max(numpy_op)]:.1f} us per query "
        f"at batch {max(numpy_op)}; fastest single-query apply of any adapter and backend "
        f"{fastest_single:.1f} us"
    )
    single_ok = fastest_single <= 9.8
    why = (
        "batched applies fall in the paper's range; a single query costs more (Python call and "
        "a weight read per query), so the range holds only for batched serving"
        if not single_ok
        else "single-query applies fall in the paper's range"
    )
    settings = bench["settings"]
    setting = f"768 -> 384, {settings['threads']} thread(s), median of >= {settings['min_runs']} " \
        f"timed runs, {bench['machine'].get('cpu', 'this CPU')}"  # fmt: skip
    return measured, setting, REPRODUCED if single_ok else NOT_REPRODUCED, why


def _cost(cost: dict[str, Any]) -> tuple[str, str, str, str]:
    rows = [r for r in cost["rows"] if r["hardware"].startswith("CPU, this machine")]
    if not rows:
        rows = cost["rows"]
    ratios = {r["n_items"]: r["ratio"]["usd"] for r in rows}
    measured = ", ".join(f"{ratio:.0f}x at N = {n:.0e}" for n, ratio in sorted(ratios.items()))
    at_1m = ratios.get(1_000_000)
    holds = at_1m is not None and at_1m > 100
    # The ratio grows about linearly with N (the adapter's cost is fixed by Np).
    n, ratio = min(ratios.items())
    why = (
        f"full re-embedding costs about N / Np times the adapter's pair encodes; the ratio passes "
        f"100x near N = {n * 100 / ratio:.1e}, so at the paper's 1M it is {at_1m:.0f}x"
        if not holds
        else "above 100x at the paper's 1M"
    )
    return measured, "USD, full re-embedding / adapter, Np = 20k, measured encode rates", \
        REPRODUCED if holds else NOT_REPRODUCED, why  # fmt: skip


CLAIMS: tuple[Claim, ...] = tuple(
    Claim(
        claim=f"Main table, {dataset}: R@10 ARR of OP / LA / MLP",
        paper=" / ".join(f"{v:.3f}" for v in values),
        experiment=PAPER_EXPERIMENTS[dataset],
        sources=(),
        measure=lambda _, dataset=dataset: (
            "-",
            "",
            NOT_TESTABLE,
            f"{dataset} needs the Hugging Face hub"
            + (
                " and LAION images with real CLIP weights (no package ships them)"
                if "LAION" in dataset
                else ""
            )
            + "; the same claim on the offline real-text corpora is the next row",
        ),
    )
    for dataset, values in PAPER_MAIN.items()
) + (
    Claim(
        "Adapters reach R@10 ARR of .95-.99 with the paper's text pair",
        ".953-.992 (text); .942-.978 (images)",
        "experiment=main_table (offline_mix, manpages, faq, pydoc); "
        "experiment=corpus_size_gcide_np20k",
        ("paper_cpu/runs", "corpus_size_gcide/runs"),
        _main_table_offline,
    ),
    Claim(
        "A new-model query in the old index (misaligned) keeps R@10 ARR of .59-.72",
        ".59-.72",
        "experiment=drift_severity (the 384 -> 384 pair)",
        ("paper_cpu/runs",),
        _misaligned,
    ),
    Claim(
        "Severe drift (GloVe-300d -> MPNet-768, AG-News): misaligned .213, OP .587, LA .632, "
        "MLP .715",
        "OP < LA < MLP",
        "experiment=drift_severity",
        ("paper_cpu/runs",),
        _drift_severity,
    ),
    Claim(
        "Diagonal scaling (DSM) adds +.005 to +.015 ARR",
        "+.005 to +.015",
        "experiment=dsm_ablation",
        ("paper_cpu/runs",),
        _dsm,
    ),
    Claim(
        "Heterogeneous drift: one global MLP .85, two class-routed MLPs .94",
        ".85 -> .94",
        "experiment=routed_adapters",
        ("routed_adapters/synthetic_regimes",),
        _routing,
    ),
    Claim(
        "Continuous adaptation: hourly refits keep ARR > .95 over 24 h, a frozen adapter falls "
        "to about .83",
        "> .95 refit, ~.83 frozen",
        "experiment=continuous_adaptation",
        ("beyond_paper/runs",),
        _continuous,
    ),
)
FILE_CLAIMS: tuple[tuple[str, str, str, str, Callable[[dict[str, Any]], tuple[str, ...]]], ...] = (
    (
        "The adapter adds 3.0-9.8 us per query",
        "3.0-9.8 us",
        "scripts/bench_latency.py",
        "bench/latency.json",
        _latency,
    ),
    (
        "An adapter is > 100x cheaper than full re-indexing or dual-index serving",
        "> 100x",
        "drift cost --measure",
        "cost/cost.json",
        _cost,
    ),
)


def ledger(results_root: str | Path) -> list[Entry]:
    """Every claim's entry, measured from the result files under `results_root`."""
    root = Path(results_root)
    entries = []
    cached: dict[tuple[str, ...], list[ResultRecord]] = {}
    for claim in CLAIMS:
        if claim.sources not in cached:
            folders = [root / s for s in claim.sources if (root / s).is_dir()]
            cached[claim.sources] = ResultRecord.iter(folders) if folders else []
        measured, setting, verdict, why = claim.measure(cached[claim.sources])
        entries.append(
            Entry(
                claim.claim,
                claim.paper,
                claim.experiment,
                measured,
                setting,
                verdict,
                why,
                tuple(f"results/{s}" for s in claim.sources),
            )  # fmt: skip
        )
    for text, paper, how, source, measure in FILE_CLAIMS:
        path = root / source
        if path.is_file():
            measured, setting, verdict, why = measure(json.loads(path.read_text()))
        else:
            measured, setting, verdict, why = "-", "", NOT_TESTABLE, f"no {source} committed"
        entries.append(Entry(text, paper, how, measured, setting, verdict, why,
                             (f"results/{source}",)))  # fmt: skip
    return entries


def markdown(entries: Sequence[Entry]) -> str:
    counts = {v: sum(e.verdict == v for e in entries) for v in (REPRODUCED, NOT_REPRODUCED,
                                                                 NOT_TESTABLE)}  # fmt: skip
    lines = [
        "# Claims ledger: the paper's numbers beside ours",
        "",
        "Drift-Adapter (Vejendla, EMNLP 2025, arXiv 2509.23471), claim by claim. Generated by "
        "`drift claims` from the committed result files named in each row (do not edit by hand). "
        "Intervals: 95% t-interval over seeds, or one run's 95% bootstrap CI over queries.",
        "",
        ", ".join(f"{n} {verdict}" for verdict, n in counts.items()) + ".",
        "",
    ]
    for i, entry in enumerate(entries, start=1):
        lines += [
            f"## {i}. {entry.claim}",
            "",
            f"- **Verdict: {entry.verdict}** ({entry.why})",
            f"- Paper: {entry.paper}",
            f"- Measured: {entry.measured}",
        ]
        if entry.setting:
            lines.append(f"- Setting: {entry.setting}")
        lines.append(f"- Tested by: `{entry.experiment}`")
        if entry.sources:
            lines.append(f"- Result files: {', '.join(f'`{s}`' for s in entry.sources)}")
        lines.append("")
    return "\n".join(lines)


def write(entries: Sequence[Entry], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "claims.md", out / "claims.json"
    md.write_text(markdown(entries), encoding="utf-8")
    js.write_text(json.dumps([asdict(e) for e in entries], indent=1) + "\n", encoding="utf-8")
    return [md, js]

"""Score every strategy under each protocol: means, bootstrap CIs, ARR, and a paper-style table.

    evaluation = evaluate(results, knn_truth_ids=truth, qrels=qrels_per_row)
    print(format_table(evaluation, "knn"))

Protocols (definitions in drift/scoring/metrics.py): "knn" (the paper's: relevance is the exact
top-k of the new-model query over the new-model corpus) and "qrels" (relevance labels, as in MTEB).
All metrics are higher-is-better; the CIs are 95% percentile bootstraps over queries, drawn with
the same seed for every strategy (so the resamples are paired across strategies).

ARR is the paper's headline under each protocol. Under knn it is the metric itself, which presumes
that the full re-index scores 1; with an approximate index it does not (its R@10 falls with HNSW's
efSearch), so knn also reports each metric divided by the full re-index's (`vs_reindex`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from drift.core.errors import ConfigError
from drift.core.rankings import StrategyResult
from drift.scoring.metrics import (
    KS,
    Qrels,
    drop_rows,
    knn_metrics,
    qrels_metrics,
    score_unjudged,
    summarize_many,
    unjudged_definition,
)

REFERENCE = "full_reindex"
PRIMARY_METRIC = {"knn": "recall@10", "qrels": "ndcg@10"}
DEFINITIONS = {
    "knn": "relevance = exact top-k of the new-model query over the new-model corpus (per k); "
    "MRR@k = reciprocal rank of the exact nearest neighbour within the top k",
    "qrels": "relevance = dataset labels (graded); recall and MRR count rel > 0, nDCG uses the "
    "grades with linear gain (pytrec_eval, as in BEIR/MTEB)",
}
ARR_DEFINITIONS = {
    "knn": "ARR = the strategy's metric itself: the ground truth is what a full re-embedding "
    "with exact search returns, which scores 1 by construction",
    "qrels": f"ARR = strategy mean / {REFERENCE} mean over the same queries; "
    "95% CI by paired bootstrap of the ratio",
}
RATIO_DEFINITION = (
    f"vs_reindex = strategy mean / {REFERENCE} mean over the same queries; 95% CI by paired "
    f"bootstrap of the ratio. {REFERENCE} searches an index of the same kind as the others, so "
    "with an approximate index its own recall is below 1 and the ratio above the ARR"
)
# Strategies whose new-model document encodes are the whole corpus (the others': the adapter's
# pairs, rerank's on-demand encodes, the backfill's migrated documents).
WHOLE_CORPUS = ("full_reindex", "dual_index")


def evaluate(
    results: Mapping[str, StrategyResult],
    *,
    knn_truth_ids: np.ndarray | None = None,
    qrels: Qrels | None = None,
    ks: Sequence[int] = KS,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    unjudged: str = "exclude",
    identical_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per protocol and strategy: metric summaries, ARR, counts, timings (a JSON-able dict).

    Args:
        results: strategy name -> result, e.g. from `run_strategies`.
        knn_truth_ids: exact new-model top-K row ids [nq, K >= max(ks)]; enables "knn".
        qrels: per query row, {corpus row id: relevance}; enables "qrels".
        unjudged: "exclude" or "zero": how a query without a relevant document scores
            (drift.scoring.metrics.score_unjudged).
        identical_rows: per query, the corpus row with the query's own id (-1: none), for a
            dataset that asks for mteb's ignore_identical_ids (None: nothing dropped). That row is
            dropped from every ranking and from the kNN truth before scoring, so that a full
            re-index still finds the truth it is scored against (where it was dropped, the
            lists hold one item fewer at the deepest k: mteb retrieves deeper).
    """
    definition = unjudged_definition(unjudged)

    def ranked(ids: np.ndarray) -> np.ndarray:
        return ids if identical_rows is None else drop_rows(ids, identical_rows)

    per_protocol: dict[str, Callable[[np.ndarray], dict[str, np.ndarray]]] = {}
    n_queries: dict[str, int] = {}
    if knn_truth_ids is not None:
        truth = ranked(knn_truth_ids)
        per_protocol["knn"] = lambda ids: knn_metrics(ranked(ids), truth, ks)
        n_queries["knn"] = int(truth.shape[0])
    if qrels is not None:
        per_protocol["qrels"] = lambda ids: qrels_metrics(ranked(ids), qrels, ks)
        n_queries["qrels"] = len(qrels)
    if not per_protocol:
        raise ConfigError("evaluate needs knn_truth_ids (knn protocol) or qrels (qrels protocol)")

    boot = {"n_boot": n_boot, "alpha": alpha, "seed": seed}
    applicable = {name: r for name, r in results.items() if r.applicable}
    identical = {"ignore_identical_ids": identical_rows is not None}
    if identical_rows is not None:
        identical["n_queries_with_identical_id"] = int((np.asarray(identical_rows) >= 0).sum())
    return {
        "ks": list(ks),
        **boot,
        "unjudged": unjudged,
        "unjudged_definition": definition,
        **identical,
        "order": list(results),
        "not_applicable": {name: r.reason for name, r in results.items() if not r.applicable},
        "protocols": {
            protocol: _evaluate_protocol(
                protocol, fn, applicable, n_queries[protocol], boot, unjudged
            )
            for protocol, fn in per_protocol.items()
        },
    }


def format_table(evaluation: Mapping[str, Any], protocol: str, k: int = 10) -> str:
    """A Markdown table shaped like the paper's: one row per strategy (not-applicable ones as
    n/a, with the reason below), metrics at k as mean [CI], ARR of the protocol's primary metric
    (under knn also that metric / the full re-index's), us/query with the adapter's (or the
    fusion's) share, and the new-model document encodes with what they are."""
    if protocol not in evaluation["protocols"]:
        raise ConfigError(
            f"no {protocol!r} protocol in this evaluation; it has {sorted(evaluation['protocols'])}"
        )
    if k not in evaluation["ks"]:
        raise ConfigError(f"k={k} was not evaluated; ks were {evaluation['ks']}")
    block = evaluation["protocols"][protocol]
    arr_metric = PRIMARY_METRIC[protocol].split("@")[0] + f"@{k}"
    columns = [f"recall@{k}", f"mrr@{k}", f"ndcg@{k}"]
    short = _short(arr_metric)
    ratios = [("arr", f"arr_{arr_metric}", f"ARR ({short})")]
    if protocol == "knn":
        ratios.append(("vs_reindex", f"vs_reindex_{arr_metric}", f"{short} / re-index"))
    headers = [f"R@{k}", f"MRR@{k}", f"nDCG@{k}", *(h for _, _, h in ratios), "us/query", "Encoded"]
    lines = [
        f"Protocol {protocol}: {_query_counts(block, evaluation['unjudged'])}.",
        "",
        "| Strategy | " + " | ".join(headers) + " |",
        "|---|" + "---|" * len(headers),
    ]
    noted: dict[str, list[str]] = {}  # note -> strategies (each note printed once)
    for name in evaluation["order"]:
        if name in evaluation["not_applicable"]:
            lines.append(f"| {name} | " + " | ".join(["n/a"] * len(headers)) + " |")
            noted.setdefault(f"not applicable ({evaluation['not_applicable'][name]})", [])
            noted[f"not applicable ({evaluation['not_applicable'][name]})"].append(name)
            continue
        row = block["strategies"][name]
        cells = [_fmt_summary(row["metrics"][c]) for c in columns]
        cells += [_fmt_summary(row.get(part, {}).get(key)) for part, key, _ in ratios]
        cells.append(_fmt_timing(row["timings"]))
        cells.append(_fmt_cost(name, row.get("cost", {})))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if row["notes"]:
            noted.setdefault(row["notes"], []).append(name)
    notes = [f"{', '.join(names)}: {note}" for note, names in noted.items()]
    notes += [
        "Encoded = corpus documents encoded by the new model: share of the corpus (count: what "
        "they are): the full re-embedding's corpus, the adapter's pairs (none when they are "
        "held-out queries), rerank's on-demand encodes beside the pairs it holds from the start, "
        "the backfill's migrated documents",
        DEFINITIONS[protocol],
        block["arr_definition"],
        *([block["vs_reindex_definition"]] if protocol == "knn" else []),
        f"unjudged={evaluation['unjudged']}: {evaluation['unjudged_definition']}",
        *(
            [
                f"ignore_identical_ids (the mteb task's): a document with the query's own id is "
                f"dropped from rankings and truth ({evaluation['n_queries_with_identical_id']} "
                "queries have one)"
            ]
            if evaluation["ignore_identical_ids"]
            else []
        ),
        f"mean [{100 * (1 - evaluation['alpha']):.0f}% bootstrap CI]; "
        "us/query = whole-batch time / queries (faiss threads: "
        + ", ".join(sorted({str(_threads(block, n)) for n in block["strategies"]}))
        + ")",
    ]
    return "\n".join(lines + [""] + [f"- {note}" for note in notes])


def table_rows(evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per protocol x applicable strategy (means only): for trackers and dataframes."""
    rows = []
    for protocol, block in evaluation["protocols"].items():
        for name, row in block["strategies"].items():
            flat: dict[str, Any] = {"protocol": protocol, "strategy": name}
            for part in ("metrics", "arr", "vs_reindex"):
                flat.update({metric: s["mean"] for metric, s in row.get(part, {}).items()})
            flat["us_per_query"] = row["timings"].get("us_per_query")
            rows.append(flat)
    return rows


# -- internals --------------------------------------------------------------------------------
def _evaluate_protocol(
    protocol: str,
    per_query_fn: Callable[[np.ndarray], dict[str, np.ndarray]],
    results: Mapping[str, StrategyResult],
    n_queries: int,
    boot: dict[str, Any],
    unjudged: str,
) -> dict[str, Any]:
    per_query = {name: per_query_fn(r.ids) for name, r in results.items()}
    # Unjudged queries are NaN before the convention applies, the same ones for every strategy.
    first = next(iter(per_query.values()), {})
    n_unjudged = int(np.isnan(next(iter(first.values()))).sum()) if first else 0
    per_query = {name: score_unjudged(values, unjudged) for name, values in per_query.items()}
    ratios_apart = protocol == "knn"  # under qrels, the ratio to the full re-index is the ARR
    strategies: dict[str, dict[str, Any]] = {
        name: {
            "metrics": {},
            "arr": {},
            **({"vs_reindex": {}} if ratios_apart else {}),
            "timings": r.timings,
            "notes": r.notes,
            "cost": r.cost,
            "params": r.params,
        }
        for name, r in results.items()
    }
    metrics = list(first)
    n_effective = {}
    for metric in metrics:
        summaries, ratios = summarize_many(
            {name: values[metric] for name, values in per_query.items()},
            reference=REFERENCE,
            **boot,
        )
        for name, summary in summaries.items():
            strategies[name]["metrics"][metric] = summary
            if ratios_apart:  # the ground truth scores 1: ARR is the metric itself
                arr = {key: summary[key] for key in ("mean", "ci_low", "ci_high")}
                if name in ratios:
                    strategies[name]["vs_reindex"][f"vs_reindex_{metric}"] = ratios[name]
            else:
                arr = ratios.get(name)
            if arr is not None:
                strategies[name]["arr"][f"arr_{metric}"] = arr
            # Queries averaged: under unjudged=exclude, those with a relevant document.
            n_effective[metric] = summary["n"]
    block = {
        "definition": DEFINITIONS[protocol],
        "primary_metric": PRIMARY_METRIC[protocol],
        "higher_is_better": True,
        "arr_definition": ARR_DEFINITIONS[protocol],
        **({"vs_reindex_definition": RATIO_DEFINITION} if ratios_apart else {}),
        "n_queries": n_queries,
        "n_queries_unjudged": n_unjudged,
        "n_queries_effective": n_effective,
        "strategies": strategies,
    }
    if REFERENCE not in results:
        missing = f" (not computed: {REFERENCE} was not run or not applicable)"
        block["vs_reindex_definition" if ratios_apart else "arr_definition"] += missing
    return block


def _query_counts(block: Mapping[str, Any], unjudged: str) -> str:
    """A table's first line: how many queries, how many with a relevant document, and what
    became of the others (e.g. "300 queries, 280 with a relevant document; the other 20 ...")."""
    n, n_unjudged = block["n_queries"], block["n_queries_unjudged"]
    text = f"{n} queries, {n - n_unjudged} with a relevant document"
    if n_unjudged:
        text += f"; the other {n_unjudged} " + (
            "score 0 (unjudged=zero)" if unjudged == "zero" else "are left out (unjudged=exclude)"
        )
    return text


def _fmt_summary(summary: Mapping[str, Any] | None) -> str:
    if summary is None or not _finite(summary.get("mean")):
        return "n/a"
    low, high = summary.get("ci_low"), summary.get("ci_high")
    ci = f" [{low:.3f}, {high:.3f}]" if _finite(low) and _finite(high) else ""
    return f"{summary['mean']:.3f}{ci}"


def _fmt_cost(name: str, cost: Mapping[str, Any]) -> str:
    """The share of the corpus encoded by the new model, the count and what it is, e.g.
    "100.0% (1,200: the adapter's pairs)"."""
    share = cost.get("share_encoded")
    if not _finite(share):
        return "n/a"
    what = _encodes_are(name, cost)
    return f"{100 * share:.1f}% ({cost['new_doc_encodes']:,}" + (f": {what})" if what else ")")


def _encodes_are(name: str, cost: Mapping[str, Any]) -> str:
    """What a strategy's new-model document encodes are ("" for none): the corpus, encodes on
    demand (rerank) or migrated documents (backfill), and the adapter's pairs besides them. The
    labels matter when the pairs are the whole corpus: a rerank then holds every document from
    the start and encodes none on demand."""
    n = int(cost["new_doc_encodes"])
    if n == 0:
        return ""
    if name in WHOLE_CORPUS:
        return "the corpus"
    own = [
        (int(cost[key]), label)
        for key, label in (("on_demand_encodes", "on demand"), ("migrated", "migrated"))
        if key in cost
    ]
    parts = [f"{count:,} {label}" for count, label in own]
    pairs = n - sum(count for count, _ in own)
    if pairs:
        parts.append(f"{pairs:,} the adapter's pairs" if own else "the adapter's pairs")
    return ", ".join(parts)


def _fmt_timing(timings: Mapping[str, Any]) -> str:
    """Total us/query, with any stage besides the index search (adapter, fusion) in brackets."""
    total = timings.get("us_per_query")
    if not _finite(total):
        return "n/a"
    extra = [
        f"{key.removesuffix('_us_per_query')} {value:.1f}"
        for key, value in timings.items()
        if key.endswith("_us_per_query") and key != "search_us_per_query" and _finite(value)
    ]
    return f"{total:.1f}" + (f" (incl. {', '.join(extra)})" if extra else "")


def _threads(block: Mapping[str, Any], name: str) -> Any:
    return block["strategies"][name]["timings"].get("threads", "?")


def _short(metric: str) -> str:
    name, k = metric.split("@")
    return {"recall": "R", "mrr": "MRR", "ndcg": "nDCG"}[name] + f"@{k}"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)

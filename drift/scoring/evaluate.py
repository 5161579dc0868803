"""Score every strategy under each protocol: means, bootstrap CIs, ARR, and a paper-style table.

    evaluation = evaluate(results, knn_truth_ids=truth, qrels=qrels_per_row)
    print(format_table(evaluation, "knn"))

Protocols (definitions in drift/scoring/metrics.py): "knn" (the paper's: relevance is the exact
top-k of the new-model query over the new-model corpus) and "qrels" (relevance labels, as in MTEB).
All metrics are higher-is-better; the CIs are 95% percentile bootstraps over queries, drawn with
the same seed for every strategy (so the resamples are paired across strategies).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from drift.core.errors import ConfigError
from drift.core.rankings import StrategyResult
from drift.scoring.metrics import KS, Qrels, knn_metrics, qrels_metrics, summarize_many

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


def evaluate(
    results: Mapping[str, StrategyResult],
    *,
    knn_truth_ids: np.ndarray | None = None,
    qrels: Qrels | None = None,
    ks: Sequence[int] = KS,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Per protocol and strategy: metric summaries, ARR, counts, timings (a JSON-able dict).

    Args:
        results: strategy name -> result, e.g. from `run_strategies`.
        knn_truth_ids: exact new-model top-K row ids [nq, K >= max(ks)]; enables "knn".
        qrels: per query row, {corpus row id: relevance}; enables "qrels".
    """
    per_protocol: dict[str, Callable[[np.ndarray], dict[str, np.ndarray]]] = {}
    n_queries: dict[str, int] = {}
    if knn_truth_ids is not None:
        per_protocol["knn"] = lambda ids: knn_metrics(ids, knn_truth_ids, ks)
        n_queries["knn"] = int(np.asarray(knn_truth_ids).shape[0])
    if qrels is not None:
        per_protocol["qrels"] = lambda ids: qrels_metrics(ids, qrels, ks)
        n_queries["qrels"] = len(qrels)
    if not per_protocol:
        raise ConfigError("evaluate needs knn_truth_ids (knn protocol) or qrels (qrels protocol)")

    boot = {"n_boot": n_boot, "alpha": alpha, "seed": seed}
    applicable = {name: r for name, r in results.items() if r.applicable}
    return {
        "ks": list(ks),
        **boot,
        "order": list(results),
        "not_applicable": {name: r.reason for name, r in results.items() if not r.applicable},
        "protocols": {
            protocol: _evaluate_protocol(protocol, fn, applicable, n_queries[protocol], boot)
            for protocol, fn in per_protocol.items()
        },
    }


def format_table(evaluation: Mapping[str, Any], protocol: str, k: int = 10) -> str:
    """A Markdown table shaped like the paper's: one row per strategy (not-applicable ones as
    n/a, with the reason below), metrics at k as mean [CI], ARR of the protocol's primary metric,
    us/query with the adapter's (or the fusion's) share, and the new-model document encodes."""
    if protocol not in evaluation["protocols"]:
        raise ConfigError(
            f"no {protocol!r} protocol in this evaluation; it has {sorted(evaluation['protocols'])}"
        )
    if k not in evaluation["ks"]:
        raise ConfigError(f"k={k} was not evaluated; ks were {evaluation['ks']}")
    block = evaluation["protocols"][protocol]
    arr_metric = PRIMARY_METRIC[protocol].split("@")[0] + f"@{k}"
    columns = [f"recall@{k}", f"mrr@{k}", f"ndcg@{k}"]
    lines = [
        f"Protocol {protocol}: {block['n_queries']} queries, "
        f"{block['n_queries_effective'].get(f'recall@{k}', 0)} with a relevant document.",
        "",
        f"| Strategy | R@{k} | MRR@{k} | nDCG@{k} | ARR ({_short(arr_metric)}) | us/query "
        "| Encoded |",
        "|---|---|---|---|---|---|---|",
    ]
    noted: dict[str, list[str]] = {}  # note -> strategies (each note printed once)
    for name in evaluation["order"]:
        if name in evaluation["not_applicable"]:
            lines.append(f"| {name} | n/a | n/a | n/a | n/a | n/a | n/a |")
            noted.setdefault(f"not applicable ({evaluation['not_applicable'][name]})", [])
            noted[f"not applicable ({evaluation['not_applicable'][name]})"].append(name)
            continue
        row = block["strategies"][name]
        cells = [_fmt_summary(row["metrics"][c]) for c in columns]
        cells.append(_fmt_summary(row["arr"].get(f"arr_{arr_metric}")))
        cells.append(_fmt_timing(row["timings"]))
        cells.append(_fmt_cost(row.get("cost", {})))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if row["notes"]:
            noted.setdefault(row["notes"], []).append(name)
    notes = [f"{', '.join(names)}: {note}" for note, names in noted.items()]
    notes += [
        "Encoded = corpus documents encoded by the new model (share of the corpus): the full "
        "re-embedding's N, the adapter's pairs (none when they are held-out queries), rerank's "
        "on-demand encodes, the backfill",
        DEFINITIONS[protocol],
        block["arr_definition"],
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
            flat.update({metric: s["mean"] for metric, s in row["metrics"].items()})
            flat.update({metric: s["mean"] for metric, s in row["arr"].items()})
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
) -> dict[str, Any]:
    per_query = {name: per_query_fn(r.ids) for name, r in results.items()}
    strategies: dict[str, dict[str, Any]] = {
        name: {
            "metrics": {},
            "arr": {},
            "timings": r.timings,
            "notes": r.notes,
            "cost": r.cost,
            "params": r.params,
        }
        for name, r in results.items()
    }
    metrics = list(next(iter(per_query.values()), {}))
    n_effective = {}
    for metric in metrics:
        summaries, ratios = summarize_many(
            {name: values[metric] for name, values in per_query.items()},
            reference=REFERENCE if protocol == "qrels" else None,
            **boot,
        )
        for name, summary in summaries.items():
            strategies[name]["metrics"][metric] = summary
            if protocol == "knn":  # the ground truth scores 1: ARR is the metric itself
                arr = {key: summary[key] for key in ("mean", "ci_low", "ci_high")}
            else:
                arr = ratios.get(name)
            if arr is not None:
                strategies[name]["arr"][f"arr_{metric}"] = arr
            # Queries with a relevant document (the others are NaN and excluded).
            n_effective[metric] = summary["n"]
    block = {
        "definition": DEFINITIONS[protocol],
        "primary_metric": PRIMARY_METRIC[protocol],
        "higher_is_better": True,
        "arr_definition": ARR_DEFINITIONS[protocol],
        "n_queries": n_queries,
        "n_queries_effective": n_effective,
        "strategies": strategies,
    }
    if protocol == "qrels" and REFERENCE not in results:
        block["arr_definition"] += f" (not computed: {REFERENCE} was not run or not applicable)"
    return block


def _fmt_summary(summary: Mapping[str, Any] | None) -> str:
    if summary is None or not _finite(summary.get("mean")):
        return "n/a"
    low, high = summary.get("ci_low"), summary.get("ci_high")
    ci = f" [{low:.3f}, {high:.3f}]" if _finite(low) and _finite(high) else ""
    return f"{summary['mean']:.3f}{ci}"


def _fmt_cost(cost: Mapping[str, Any]) -> str:
    share = cost.get("share_encoded")
    if not _finite(share):
        return "n/a"
    return f"{100 * share:.1f}% ({cost['new_doc_encodes']:,})"


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

"""drift recommend on hand-made result records: which strategy reaches a quality target cheapest.

The records are planted (round numbers, checkable by hand), not measurements; `make_record` is
shared with tests/test_plot_migration.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drift.cli import COMMANDS
from drift.cli.recommend import main
from drift.core.errors import ConfigError, DataError
from drift.core.records import ResultRecord
from drift.migration.measured import pareto_frontier, priced_rows
from drift.migration.prediction_check import check_prediction
from drift.migration.recommend import (
    Request,
    TargetUnreachableError,
    Traffic,
    coverage_share,
    expected_distinct,
    on_demand_share,
    recommend,
)

N_MEASURED = 1000
# name: (nDCG@10, R@10, share of the corpus encoded by the new model)
POINTS: dict[str, tuple[float, float, float]] = {
    "full_reindex": (0.50, 1.00, 1.0),
    "status_quo": (0.40, 0.50, 0.0),
    "adapter/procrustes": (0.42, 0.60, 0.02),
    "dual_index": (0.48, 0.90, 1.0),
    "rerank/status_quo@50": (0.485, 0.95, 0.3),  # 0.97 of the full re-index's nDCG@10
    "fusion/zscore@0.5": (0.43, 0.62, 0.02),
    "backfill/status_quo/random/rrf@0.5": (0.45, 0.70, 0.5),
    "backfill/status_quo/random/rrf@0.25": (0.41, 0.45, 0.25),  # dominated on both metrics
}
COLD_PER_QUERY = 3.0  # rerank: 100 distinct queries x 3 cold encodes = 0.3 of 1000 documents


def params_of(name: str) -> dict[str, Any]:
    family = name.split("/")[0]
    if family == "rerank":
        source, depth = name.split("/")[1].split("@")
        return {"family": "rerank", "source": source, "depth": int(depth)}
    if family == "fusion":
        norm, weight = name.split("/")[1].split("@")
        return {"family": "fusion", "normalisation": norm, "weight": float(weight)}
    if family == "backfill":
        base, order, merge_at = name.split("/")[1:]
        merge, fraction = merge_at.split("@")
        return {"family": "backfill", "base": base, "order": order, "merge": merge,
                "fraction": float(fraction)}  # fmt: skip
    return {}


def strategy_block(name: str, ndcg: float, r10: float, share: float, n_corpus: int) -> dict:
    cost: dict[str, Any] = {"new_doc_encodes": round(share * n_corpus), "share_encoded": share}
    if name.startswith("rerank/"):
        cost.update(cold_encodes_per_query=COLD_PER_QUERY, candidates_per_query=50.0)
    timings = {"us_per_query": 100.0 + 10 * share, "n_queries": 100}
    common = {"arr": {}, "timings": timings, "notes": "", "cost": cost, "params": params_of(name)}
    return {
        "qrels": {**common, "metrics": {"ndcg@10": {"mean": ndcg}, "recall@10": {"mean": r10}}},
        "knn": {**common, "metrics": {"recall@10": {"mean": r10}}},
    }


def make_record(
    points: dict[str, tuple[float, float, float]] | None = None,
    *,
    seed: int = 0,
    dataset: str = "toy",
    experiment: str = "beyond_paper",
    debug: bool = False,
    n_corpus: int = N_MEASURED,
    stream: dict | None = None,
    timeline: dict | None = None,
) -> dict[str, Any]:
    """A result record as drift.run writes it, reduced to what the readers use."""
    points = POINTS if points is None else points
    blocks = {name: strategy_block(name, *p, n_corpus) for name, p in points.items()}
    record: dict[str, Any] = {
        "schema_version": 1,
        "created": f"2025-01-01T00:00:0{seed}+00:00",
        "config_hash": f"hash{seed}",
        "debug": debug,
        "task_name": "smoke" if debug else experiment,
        "seed": seed,
        "real_weights": True,
        "synthetic": False,
        "config": {
            "tags": [experiment],
            "seed": seed,
            "new_encoder": {"type": "sentence_transformers"},
            "adapter": {"methods": {"procrustes": {"center": False}}},
            "dataset": {"name": dataset},
        },
        "models": {
            "old": {"name": "org/old-model", "dim": 4},
            "new": {"name": "org/new-model", "dim": 8},
        },
        "dataset": {"name": dataset, "n_corpus": n_corpus, "n_queries": 100},
        "pairs": {"n_requested": 20, "n_train": 16, "n_val": 4},
        "index": {"spec": {"kind": "flat", "ef_search": 50, "nprobe": 16}},
        "drift": {"knn_overlap@10": 0.5, "linear_cka": 0.8},
        "metrics": {
            "not_applicable": {},
            "protocols": {
                protocol: {"strategies": {name: b[protocol] for name, b in blocks.items()}}
                for protocol in ("knn", "qrels")
            },
        },
    }
    if stream is not None:
        record["stream"] = stream
    if timeline is not None:
        record["timeline"] = timeline
    return record


def make_stream(
    n_corpus: int = N_MEASURED,
    *,
    rerank_share: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3),
    popularity: str = "zipf",
    capacity: int | None = None,
) -> dict[str, Any]:
    """Rerank's encodes grow as queries arrive; the full re-index pays everything upfront. The
    latencies are in the schema of files written before cold queries were told apart (cold_*:
    over every served query), which the readers still take."""
    checkpoints = [1, 10, 100, 1000]

    def strategy(shares: Sequence[float], ndcg: float, r10: float, cold_us: float) -> dict:
        encodes = [round(s * n_corpus) for s in shares]
        return {
            "encodes": encodes,
            "share_encoded": shares,
            "encode_seconds": [e / 50.0 for e in encodes],
            "quality": {
                "qrels/ndcg@10": [None, ndcg - 0.02, ndcg + 0.01, ndcg],
                "knn/recall@10": [r10, r10 - 0.01, r10, r10],
            },
            "latency_us": {
                "warm_mean": 150.0,
                "cold_mean": cold_us,
                "cold_p50": 150.0,
                "cold_p99": 2 * cold_us,
                "first_query": cold_us,
            },  # fmt: skip
            "queries_with_encodes": 0.1,
            "final_encodes": encodes[-1],
        }

    return {
        "config": {"popularity": popularity, "zipf_s": 1.0, "capacity": capacity},
        "popularity": popularity,
        "length": 1000,
        "n_unique_queries": 100,
        "n_corpus": n_corpus,
        "encode_rate": 50.0,
        "checkpoints": checkpoints,
        "strategies": {
            "rerank/status_quo@50": strategy(rerank_share, 0.485, 0.95, 9000.0),
            "full_reindex": strategy([1.0] * 4, 0.5, 1.0, 150.0),
            "status_quo": strategy([0.0] * 4, 0.4, 0.5, 100.0),
        },
    }


def make_timeline(n_corpus: int = N_MEASURED) -> dict[str, Any]:
    """5% of the corpus per hour for 20 hours; the backfill reaches 0.96 of the full re-index's
    nDCG@10 (0.48 / 0.5) at hour 12 (60% migrated)."""
    hours = list(range(21))
    share = [min(1.0, 0.05 * h) for h in hours]

    def curve(values: list[float]) -> dict[str, list[float]]:
        return {"mean": values, "ci_low": [v - 0.02 for v in values],
                "ci_high": [v + 0.02 for v in values]}  # fmt: skip

    backfill = [0.40 + 0.1 * min(1.0, h / 20) for h in hours]  # 0.40 -> 0.50
    frozen = [0.42 - 0.002 * h for h in hours]
    refit = [0.42 + 0.001 * h for h in hours]
    return {
        "config": {"rate_per_hour": 0.05, "hours": 20, "base": "status_quo"},
        "hours": hours,
        "share_migrated": share,
        "new_doc_encodes": [round(s * n_corpus) for s in share],
        "n_corpus": n_corpus,
        "modes": {
            "backfill_status_quo": {
                "qrels/ndcg@10": curve(backfill),
                "knn/recall@10": curve([0.5 + 0.5 * s for s in share]),
            },
            "adapter_frozen": {
                "qrels/ndcg@10": curve(frozen),
                "knn/recall@10": curve([0.6 - 0.01 * h for h in hours]),
            },
            "adapter_refit": {
                "qrels/ndcg@10": curve(refit),
                "knn/recall@10": curve([0.6 + 0.01 * h for h in hours]),
                # drift.migration.timeline adds these beside the metrics
                "refit_seconds": [0.1] * 21,
                "notes": [],
            },
        },
        "references": {
            "full_reindex": {
                "qrels/ndcg@10": curve([0.5] * 21),
                "knn/recall@10": curve([1.0] * 21),
            },
            "status_quo": {
                "qrels/ndcg@10": {"mean": 0.4, "ci_low": 0.38, "ci_high": 0.42},
                "knn/recall@10": {"mean": 0.5, "ci_low": 0.48, "ci_high": 0.52},
            },
        },
    }


def write_records(folder: Path, records: list[dict[str, Any]]) -> Path:
    for i, record in enumerate(records):
        path = folder / record["dataset"]["name"] / f"run-{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    return folder


def records_of(*records: dict[str, Any]) -> list[ResultRecord]:
    return [ResultRecord(Path(f"run-{i}.json"), record) for i, record in enumerate(records)]


def ask(**changes: Any) -> Request:
    """1M documents, 100 documents/s, 0.1 queries/s over 30 days (259,200 queries), target 0.95."""
    base = {"corpus_size": 1_000_000, "encode_rate": 100.0, "query_rate": 0.1, "target": 0.95}
    return Request(**{**base, **changes})


# -- choosing ---------------------------------------------------------------------------------
def test_rerank_wins_when_its_on_demand_cost_stays_below_a_full_reindex() -> None:
    result = recommend(records_of(make_record()), ask())
    best = result.recommended
    assert result.metric == "qrels/ndcg@10"  # qrels measured: the default metric
    assert best is not None and best.strategy == "rerank/status_quo@50"
    assert best.hours_to_target == 0.0 and best.accrual == "on demand"
    assert math.isclose(best.relative, 0.97)
    # No stream: 0.3 of the corpus after its 100 distinct queries, growing linearly up to that
    # share (every distinct query served). 259,200 queries on a 1000x larger corpus read as 259.2
    # measured queries, beyond the 100: 0.3 x 2.592 linearly, capped at 0.3.
    assert math.isclose(best.share, 0.3) and math.isclose(best.encodes, 300_000)
    assert math.isclose(best.encode_hours, 300_000 / 100 / 3600)
    assert math.isclose(best.extrapolation, 2.592) and best.capped_at == 0.3
    assert best.traffic == ""  # priced without a stream
    # 25.92 measured queries: 0.3 x 0.2592, below the cap.
    short = recommend(records_of(make_record()), ask(horizon_days=3)).recommended
    assert math.isclose(short.share, 0.07776) and short.capped_at is None
    # Then by cost; the full re-index and dual index tie on cost and time: the better first.
    reach = [o.strategy for o in result.options if o.ok]
    assert reach == ["rerank/status_quo@50", "full_reindex", "dual_index"]
    fail = {o.strategy: o for o in result.options if not o.ok}
    assert "0.050 below" in fail["backfill/status_quo/random/rrf@0.5"].shortfall  # 0.95 - 0.9
    assert any("drift recommend" in line for line in result.text().splitlines()[:1])
    assert "Recommended: rerank/status_quo@50" in result.text()


def test_only_the_full_reindex_reaches_a_high_target() -> None:
    result = recommend(records_of(make_record()), ask(target=0.99))
    assert result.recommended is not None and result.recommended.strategy == "full_reindex"
    assert math.isclose(result.recommended.hours_to_target, 1e6 / 100 / 3600)
    rerank = next(o for o in result.options if o.strategy == "rerank/status_quo@50")
    assert not rerank.ok and "0.020 below" in rerank.shortfall
    assert [o.strategy for o in result.options if o.ok] == ["full_reindex"]


def test_target_above_every_strategy_is_an_error_naming_the_best() -> None:
    with pytest.raises(TargetUnreachableError, match=r"best is full_reindex at 1\.000") as err:
        recommend(records_of(make_record()), ask(target=1.05))
    assert isinstance(err.value, ConfigError)
    assert "Only the full re-index" in str(err.value)


def test_nothing_within_the_horizon_gives_no_recommendation(capsys, tmp_path: Path) -> None:
    folder = write_records(tmp_path, [make_record()])
    result = recommend(records_of(make_record()), ask(target=0.99, encode_rate=0.1))
    assert result.recommended is None  # 1e7 s of encoding: 116 days > 30
    assert all("beyond the 30-day horizon" in o.shortfall for o in result.options if o.reaches)
    with pytest.raises(SystemExit) as done:
        main(["--results", str(folder), "--corpus-size", "1e6", "--encode-rate", "0.1",
              "--query-rate", "0.1", "--target", "0.99"])  # fmt: skip
    assert done.value.code == 1
    assert "No strategy reaches the target within the horizon" in capsys.readouterr().out


def test_rerank_that_cannot_keep_up_with_the_traffic_is_not_recommended() -> None:
    # 50 queries/s x 3 cold encodes = 150 documents/s of on-demand encoding > 100/s.
    result = recommend(records_of(make_record()), ask(query_rate=50.0))
    rerank = next(o for o in result.options if o.strategy == "rerank/status_quo@50")
    assert rerank.reaches and not rerank.keeps_up and "1.5x the encode rate" in rerank.shortfall
    assert result.recommended is not None and result.recommended.strategy == "full_reindex"


def test_quality_is_the_mean_over_seeds_and_smoke_runs_give_way_to_full_runs() -> None:
    low = {**POINTS, "rerank/status_quo@50": (0.47, 0.95, 0.3)}  # 0.94
    high = {**POINTS, "rerank/status_quo@50": (0.49, 0.95, 0.3)}  # 0.98
    smoke = {**POINTS, "rerank/status_quo@50": (0.10, 0.95, 0.3)}
    result = recommend(
        records_of(
            make_record(low, seed=0), make_record(high, seed=1), make_record(smoke, debug=True)
        ),
        ask(),
    )
    rerank = next(o for o in result.options if o.strategy == "rerank/status_quo@50")
    assert math.isclose(rerank.relative, 0.96) and rerank.seeds == [0, 1]
    assert math.isclose(rerank.relative_sd, np.std([0.94, 0.98], ddof=1))
    assert not any("smoke" in w for w in result.warnings)
    only_smoke = recommend(records_of(make_record(debug=True)), ask())
    assert any("debug (smoke) runs" in w for w in only_smoke.warnings)


def test_rerank_extrapolated_far_beyond_its_curve_is_capped_and_warned() -> None:
    # 10x the traffic: 2,592 measured queries, 25.9x the 100 measured: capped at the batch share
    # (0.3), where the distance no longer matters, so no warning; uncapped it is warned.
    result = recommend(records_of(make_record()), ask(query_rate=1.0))
    best = result.recommended
    assert best.strategy == "rerank/status_quo@50" and best.share == 0.3
    assert not any("extrapolated" in w for w in result.warnings)
    # A stream far below the cap: 10,368 measured queries, 10.4x its 1,000, still below it.
    rising = make_stream(rerank_share=(0.001, 0.002, 0.003, 0.004))
    far = recommend(records_of(make_record(stream=rising)), ask(query_rate=4.0))
    assert far.recommended.capped_at is None and far.recommended.share < 0.3
    assert any("extrapolated 10x beyond its measured curve" in w for w in far.warnings)


def test_far_extrapolation_in_corpus_size_is_warned() -> None:
    result = recommend(records_of(make_record()), ask())
    assert any("1,000x the largest measured one (1,000)" in w for w in result.warnings)
    near = recommend(records_of(make_record()), ask(corpus_size=2000))
    assert not any("largest measured" in w for w in near.warnings)


def test_knn_metric_and_metric_choice() -> None:
    knn_only = make_record()
    del knn_only["metrics"]["protocols"]["qrels"]
    result = recommend(records_of(knn_only), ask())
    assert result.metric == "knn/recall@10"
    assert result.recommended.strategy == "rerank/status_quo@50"  # 0.95 / 1.0 = 0.95
    with pytest.raises(ConfigError, match="measured: knn/recall@10"):
        recommend(records_of(knn_only), ask(metric="qrels/ndcg@10"))


# -- curves -----------------------------------------------------------------------------------
def test_stream_curve_is_read_per_corpus_document_and_extrapolated_at_the_last_slope() -> None:
    curve = {
        "queries": [1, 10, 100, 1000],
        "share_encoded": [0.05, 0.1, 0.2, 0.3],
        "n_corpus": 1000,
    }
    assert math.isclose(on_demand_share(curve, 55.0, corpus_size=1000), 0.15)  # interpolated
    # 2,000,000 queries on a 1000x larger corpus = 2,000 measured queries: 1,000 beyond the
    # last point at slope 0.1 / 900 per query.
    share = on_demand_share(curve, 2_000_000.0, corpus_size=1_000_000)
    assert math.isclose(share, 0.3 + 1000 * 0.1 / 900)
    assert on_demand_share(curve, 1e12, corpus_size=1000) == 1.0  # each document once at most
    lru = {**curve, "share_encoded": [0.05, 0.5, 1.0, 1.5]}  # a bounded store re-encodes
    assert on_demand_share(lru, 1e4, corpus_size=1000) > 1.5
    # Capped at the share with every distinct query served, where one is given.
    assert on_demand_share(curve, 2_000_000.0, corpus_size=1_000_000, ceiling=0.35) == 0.35
    assert math.isclose(on_demand_share(curve, 55.0, corpus_size=1000, ceiling=0.35), 0.15)


def test_expected_distinct_queries_per_traffic_shape() -> None:
    assert expected_distinct(50, 100, None) == 50 and expected_distinct(500, 100, None) == 100
    assert expected_distinct(500, 100, Traffic("sequential")) == 100
    assert math.isclose(expected_distinct(100, 100, Traffic("uniform")), 100 * (1 - 0.99**100))
    rng = np.random.default_rng(0)  # zipf s=1 against a simulation of it
    p = 1 / np.arange(1, 101)
    drawn = [np.unique(rng.choice(100, 300, p=p / p.sum())).size for _ in range(400)]
    assert math.isclose(
        expected_distinct(300, 100, Traffic("zipf", 1.0)), np.mean(drawn), rel_tol=0.02
    )


def test_coverage_model_recovers_a_planted_random_coverage() -> None:
    """Queries that each encode 5 random documents of 1,000: K_eff fitted from 100 of them is
    about 5, and the model then predicts 300 such queries on 10,000 documents."""
    rng = np.random.default_rng(0)

    def covered(n_docs: int, n_queries: int) -> float:
        return np.unique(rng.integers(0, n_docs, size=(n_queries, 5))).size / n_docs

    measured = covered(1000, 100)
    share, k_eff = coverage_share(measured, 0.0, 100, 1000, 1000, 100)
    assert math.isclose(share, measured) and abs(k_eff - 5) < 0.3  # self-consistent, K ~ 5
    predicted, _ = coverage_share(measured, 0.0, 100, 1000, 10_000, 300)
    truth = np.mean([covered(10_000, 300) for _ in range(20)])
    assert math.isclose(predicted, truth, rel_tol=0.03)
    # An upfront share (an adapter's pairs) is paid first on both corpora.
    share, _ = coverage_share(0.1 + 0.9 * measured, 0.1, 100, 1000, 1000, 100)
    assert math.isclose(share, 0.1 + 0.9 * measured)
    assert coverage_share(1.0, 0.0, 100, 1000, 10_000, 5)[0] == 1.0  # saturated: the whole corpus


def test_a_query_pool_prices_rerank_by_coverage_not_by_the_curve() -> None:
    # 259,200 zipf queries from a pool of the measured 100 serve about all of them; each encodes
    # K_eff documents fitted to the batch run (100 queries covered 0.3 of 1,000 documents), so on
    # the 1M corpus rerank pays about 100 x K_eff encodes, not the curve's share of 1M.
    result = recommend(records_of(make_record(stream=make_stream())), ask(query_pool=100))
    rerank = next(o for o in result.options if o.strategy == "rerank/status_quo@50")
    k_eff = 1000 * (1 - 0.7 ** (1 / 100))
    distinct = expected_distinct(259_200, 100, Traffic("zipf", 1.0))
    assert math.isclose(rerank.encodes, 1e6 * (1 - (1 - k_eff / 1e6) ** distinct))
    assert rerank.capped_at is None and rerank.extrapolation == 1.0
    assert any(n.startswith("query pool 100 given") for n in rerank.notes)
    default = recommend(records_of(make_record(stream=make_stream())), ask())
    assert next(o for o in default.options if o.strategy == rerank.strategy).encodes > 1e5
    with pytest.raises(ConfigError, match="--query-pool"):
        ask(query_pool=0)


def test_check_sets_a_prediction_beside_the_measurement(tmp_path: Path, capsys) -> None:
    """Predicted from a 1,000-document corpus for 10,000 documents; measured on 10,000 documents
    where rerank encoded half the share the curve read per document said and kept less quality."""
    request = ask(corpus_size=10_000, query_rate=1000 / 86_400 / 30)  # 1,000 queries
    predicted = recommend(records_of(make_record(stream=make_stream())), request)
    points = {**POINTS, "rerank/status_quo@50": (0.47, 0.9, 0.1)}
    big = make_record(points, n_corpus=10_000,
                      stream=make_stream(10_000, rerank_share=(0.01, 0.02, 0.05, 0.1)))  # fmt: skip
    measured = recommend(records_of(big), request)
    rows = {row.strategy: row for row in check_prediction(predicted, measured)}
    rerank = rows["rerank/status_quo@50"]
    # 1,000 queries on 10x the corpus read as 100 measured queries: 0.2 predicted; the measured
    # curve at its own 1,000 queries: 0.1
    assert math.isclose(rerank.predicted_share, 0.2) and math.isclose(rerank.measured_share, 0.1)
    assert math.isclose(rerank.encodes_ratio, 2.0) and rerank.traffic == "zipf s=1"
    assert math.isclose(rerank.relative_error, 0.485 / 0.5 - 0.47 / 0.5)
    assert rows["full_reindex"].encodes_ratio == 1.0 and rows["status_quo"].encodes_ratio == 1.0
    with pytest.raises(DataError, match="different requests: corpus_size"):
        check_prediction(predicted, recommend(records_of(big), ask(corpus_size=20_000)))
    small = write_records(tmp_path / "small", [make_record(stream=make_stream())])
    large = write_records(tmp_path / "large", [big])
    rate = str(1000 / 86_400 / 30)
    args = ["--results", str(small), "--corpus-size", "10000", "--encode-rate", "100",
            "--query-rate", rate, "--target", "0.95", "--check", str(large)]  # fmt: skip
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "| rerank/status_quo@50 | on demand, zipf s=1 | 20.0% | 10.0% | 2.00 |" in out
    with pytest.raises(SystemExit) as done:  # a pool models the prediction, never the measurement
        main([*args, "--query-pool", "100"])
    assert "| 10.0% |" in capsys.readouterr().out.split("rerank/status_quo@50")[1]
    with pytest.raises(SystemExit) as done:
        main([*args, "--json"])
    check = json.loads(capsys.readouterr().out)["check"]
    assert {row["strategy"] for row in check} >= {"rerank/status_quo@50", "full_reindex"}


def test_extrapolated_rerank_cost_stops_at_the_share_with_every_distinct_query_served() -> None:
    """A Zipf-like stream still rising at its end (0.28 after 1,000 queries, 0.08 per 900) whose
    batch run, every distinct query served once, encoded 0.3: beyond the curve the last slope
    would pass 0.3, which no traffic drawn from that pool can; a bounded store can (re-encodes)."""
    rising = (0.05, 0.1, 0.2, 0.28)
    # 1.9M queries over the horizon on a 1000x larger corpus read as 1,900 measured queries,
    # 900 beyond the last point.
    request = ask(query_rate=1_000_000 / 86_400 * 1.9 / 30)
    assert math.isclose(request.horizon_queries, 1_900_000)
    capped = recommend(records_of(make_record(stream=make_stream(rerank_share=rising))), request)
    rerank = next(o for o in capped.options if o.strategy == "rerank/status_quo@50")
    assert rerank.share == 0.3 and rerank.capped_at == 0.3  # the last slope alone: 0.36
    assert any("capped at 30.00%, the batch share with every distinct" in n for n in rerank.notes)
    assert any("capped at the share the same runs' batch evaluation" in a
               for a in capped.assumptions)  # fmt: skip
    # 1,100 measured queries: 0.28 + 0.08 x 100 / 900, below the cap.
    near = recommend(
        records_of(make_record(stream=make_stream(rerank_share=rising))),
        ask(query_rate=1_000_000 / 86_400 * 1.1 / 30),
    )
    rerank = next(o for o in near.options if o.strategy == "rerank/status_quo@50")
    assert math.isclose(rerank.share, 0.28 + 0.08 / 9) and rerank.capped_at is None
    lru = make_stream(rerank_share=rising, capacity=200)  # a bounded store: no such bound
    bounded = recommend(records_of(make_record(stream=lru)), request)
    rerank = next(o for o in bounded.options if o.strategy == "rerank/status_quo@50")
    assert math.isclose(rerank.share, 0.36) and rerank.capped_at is None


def test_stream_section_prices_rerank_and_gives_the_encode_rate() -> None:
    result = recommend(records_of(make_record(stream=make_stream())), ask(encode_rate=None))
    assert result.encode_rate == 50.0 and "stream" in result.encode_rate_source
    rerank = next(o for o in result.options if o.strategy == "rerank/status_quo@50")
    # 259,200 queries -> 259.2 measured queries: between checkpoints 100 (0.2) and 1000 (0.3).
    assert math.isclose(rerank.share, 0.2 + 0.1 * 159.2 / 900)
    # Files of the old schema hold the whole-stream mean (9,000 µs) as cold_mean: the cold mean
    # over the 10% of queries that encoded is 150 + (9,000 - 150) / 0.1 = 88,650 µs, 4.425
    # documents each at the stream's 50/s; the status quo's 150 µs per query is subtracted.
    note = next(n for n in rerank.notes if n.startswith("latency per query"))
    assert (
        "cold 88.7 ms (mean over the 10.0% of queries that encoded anything, 4.42 documents "
        "each: 88.7 ms at 50 documents/s; p99 not recorded in these files; first query 9 ms), "
        "warm 150 µs, amortised over the stream 9 ms; added to the status quo's 150 µs: "
        "cold +88.5 ms, warm +0 µs, amortised +8.85 ms" in note
    )
    newer = make_stream()
    newer["strategies"]["rerank/status_quo@50"]["latency_us"] = {
        "warm_mean": 150.0, "cold_query_mean": 88_650.0, "cold_query_p50": 60_000.0,
        "cold_query_p99": 200_000.0, "amortised_mean": 9000.0, "amortised_p50": 150.0,
        "amortised_p99": 150_000.0, "first_query": 9000.0,
    }  # fmt: skip
    result = recommend(records_of(make_record(stream=newer)), ask(encode_rate=500.0))
    rerank = next(o for o in result.options if o.strategy == "rerank/status_quo@50")
    note = next(n for n in rerank.notes if n.startswith("latency per query"))
    assert "cold 88.7 ms" in note and "p99 200 ms" in note and "9 ms at 500 documents/s" in note
    assert result.recommended.strategy == "rerank/status_quo@50"
    with pytest.raises(ConfigError, match="--encode-rate"):
        recommend(records_of(make_record()), ask(encode_rate=None))


def test_timeline_modes_are_priced_at_the_share_where_they_reach_the_target() -> None:
    result = recommend(records_of(make_record(timeline=make_timeline())), ask(target=0.95))
    backfill = next(o for o in result.options if o.strategy == "timeline/backfill_status_quo")
    # 0.40 + 0.1 h / 20 >= 0.475 first at h = 15 (75% migrated).
    assert math.isclose(backfill.share, 0.75) and backfill.accrual == "background migration"
    assert math.isclose(backfill.hours_to_target, 750_000 / 100 / 3600)
    frozen = next(o for o in result.options if o.strategy == "timeline/adapter_frozen")
    assert not frozen.reaches and "below the target" in frozen.shortfall


# -- traffic ----------------------------------------------------------------------------------
def stream_run(popularity: str, rerank_share: tuple[float, ...], seed: int = 0) -> dict[str, Any]:
    """A query_stream run whose traffic is `popularity` (in its config, as drift.run writes it)."""
    stream = make_stream(rerank_share=rerank_share, popularity=popularity)
    record = make_record(seed=seed, experiment="query_stream", stream=stream)
    record["config"]["stream"] = {"enabled": True, "length": 1000, **stream["config"]}
    return record


# 259.2 measured queries (ask()): zipf repeats more, so it encodes less than uniform traffic.
ZIPF = (0.02, 0.05, 0.1, 0.15)  # 0.1 + 0.05 x 159.2 / 900 at 259.2 measured queries
UNIFORM = (0.05, 0.1, 0.2, 0.3)  # 0.2 + 0.1 x 159.2 / 900


def test_traffic_is_an_input_not_a_strategy() -> None:
    records = records_of(stream_run("zipf", ZIPF), stream_run("uniform", UNIFORM))
    zipf = recommend(records, ask(popularity="zipf"))
    labels = [o.label for o in zipf.options if o.strategy == "rerank/status_quo@50"]
    assert labels == ["rerank/status_quo@50"]  # one option, priced in the asked traffic
    rerank = zipf.recommended
    assert rerank.strategy == "rerank/status_quo@50" and rerank.traffic == "zipf s=1"
    assert math.isclose(rerank.share, 0.1 + 0.05 * 159.2 / 900) and rerank.seeds == [0]
    assert zipf.context["traffic"].startswith("zipf, any measured exponent (given")
    assert "on demand, zipf s=1 traffic" in zipf.text()
    exact = recommend(records, ask(popularity="zipf", zipf_s=1.0)).recommended
    assert exact.share == rerank.share and exact.traffic == "zipf s=1"
    uniform = recommend(records, ask(popularity="uniform")).recommended
    assert uniform.traffic == "uniform" and math.isclose(uniform.share, 0.2 + 0.1 * 159.2 / 900)
    # Not given: the costliest measured shape, said as such.
    worst = recommend(records, ask())
    assert worst.recommended.traffic == "uniform"
    assert math.isclose(worst.recommended.share, uniform.share)
    assert worst.context["traffic"].startswith("not given; each on-demand strategy is priced")
    assert "a worst case" in worst.context["traffic"]
    assert worst.recommended.notes[0].startswith("traffic not given: priced under uniform")
    # Upfront strategies do not depend on the traffic: one option each, one traffic's seeds.
    full = [o for o in worst.options if o.strategy == "full_reindex"]
    assert len(full) == 1 and full[0].traffic == "" and full[0].seeds == [0]


def test_traffic_not_measured_is_an_error_and_bad_traffic_is_refused() -> None:
    records = records_of(stream_run("zipf", ZIPF), stream_run("uniform", UNIFORM))
    with pytest.raises(ConfigError, match=r"measured sequential.*measured: uniform, zipf s=1"):
        recommend(records, ask(popularity="sequential"))
    with pytest.raises(ConfigError, match="zipf s=2 traffic"):
        recommend(records, ask(popularity="zipf", zipf_s=2.0))
    with pytest.raises(ConfigError, match="--popularity zipf"):
        ask(zipf_s=1.0)
    with pytest.raises(ConfigError, match="--popularity must be one of"):
        ask(popularity="pareto")
    # No stream measured: the traffic cannot change the batch bound; a warning says so.
    batch = recommend(records_of(make_record()), ask(popularity="zipf"))
    assert any("--popularity zipf" in w and "not used" in w for w in batch.warnings)
    assert batch.context["traffic"].startswith("no stream run measured any")


# -- input ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"corpus_size": 0}, "--corpus-size"),
        ({"encode_rate": -1.0}, "--encode-rate"),
        ({"query_rate": float("nan")}, "--query-rate"),
        ({"target": 0.0}, "--target"),
        ({"target": 95.0}, "a percentage"),
        ({"horizon_days": float("inf")}, "--horizon-days"),
    ],
)
def test_bad_numbers_are_config_errors(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ask(**changes)


def test_several_datasets_need_a_choice() -> None:
    records = records_of(make_record(dataset="a"), make_record(dataset="b"))
    with pytest.raises(ConfigError, match="--dataset a --new-model org/new-model"):
        recommend(records, ask())
    assert recommend(records, ask(), dataset="b").context["dataset"] == "b"
    with pytest.raises(DataError, match="no measured strategy"):
        recommend(records, ask(), dataset="c")


def test_command_line_text_json_and_errors(tmp_path: Path, capsys) -> None:
    assert COMMANDS["recommend"][0] == "drift.cli.recommend:main"
    folder = write_records(tmp_path, [make_record()])
    args = ["--results", str(folder), "--corpus-size", "1e6", "--encode-rate", "100",
            "--query-rate", "0.1", "--target", "0.95"]  # fmt: skip
    with pytest.raises(SystemExit) as done:
        main([*args, "--json"])
    assert done.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["recommended"]["strategy"] == "rerank/status_quo@50"
    assert report["request"]["metric"] == "qrels/ndcg@10"
    assert {o["strategy"] for o in report["fail"]} >= {"status_quo", "adapter/procrustes"}
    assert report["context"]["n_corpus"] == [N_MEASURED] and report["assumptions"]
    with pytest.raises(SystemExit) as done:
        main([*args, "--popularity", "zipf", "--zipf-s", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["request"]["popularity"] == "zipf" and report["request"]["zipf_s"] == 1.0
    for bad, message in (
        (["--zipf-s", "1"], "ConfigError: --zipf-s is the exponent of Zipf traffic"),
        (["--corpus-size", "-5"], "ConfigError: --corpus-size"),
        (["--corpus-size", "2.5"], "whole number"),
        (["--target", "1.5"], "TargetUnreachableError"),
    ):
        with pytest.raises(SystemExit) as done:
            main([*args, *bad])
        assert done.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main([*args[:4], "--query-rate", "fast", "--target", "0.9"])  # argparse: not a number
    assert done.value.code == 2


# -- shared pieces ----------------------------------------------------------------------------
def test_pareto_frontier_excludes_dominated_points() -> None:
    costs = [0.0, 0.1, 0.2, 0.5, 1.0, 1.0, 0.1]
    quality = [0.5, 0.6, 0.55, 0.8, 1.0, 0.9, 0.6]
    on = pareto_frontier(costs, quality)
    # 0.2 -> 0.55 is beaten by 0.1 -> 0.6; 1.0 -> 0.9 by 1.0 -> 1.0; the repeated (0.1, 0.6)
    # keeps its first copy only.
    assert on.tolist() == [True, True, False, True, True, False, False]
    with pytest.raises(DataError):
        pareto_frontier([0.0, 1.0], [1.0])


def test_priced_rows_skip_the_ceiling_and_arr_and_compute_relative_quality() -> None:
    record = make_record()
    qrels = record["metrics"]["protocols"]["qrels"]["strategies"]
    qrels["ceiling"] = {
        "metrics": {"ndcg@10": {"mean": 0.9}}, "cost": {}, "params": {}, "timings": {},
    }  # fmt: skip
    qrels["status_quo"]["arr"] = {"arr_ndcg@10": {"mean": 0.8}}
    rows = priced_rows(ResultRecord(Path("f.json"), record))
    assert {r["strategy"] for r in rows} == set(POINTS)  # not the ceiling: no cost
    assert not any(r["metric"].startswith("arr_") for r in rows)
    row = next(
        r
        for r in rows
        if (r["strategy"], r["protocol"], r["metric"]) == ("status_quo", "qrels", "ndcg@10")
    )
    assert math.isclose(row["relative"], 0.8) and row["family"] == "paper"
    assert row["experiment"] == "beyond_paper" and row["share_encoded"] == 0.0
    assert row["file"] == "f.json" and row["new_doc_encodes"] == 0


def test_one_strategy_from_several_experiments_is_labelled_by_experiment() -> None:
    records = records_of(
        make_record(), make_record(experiment="query_stream", stream=make_stream())
    )
    result = recommend(records, ask(encode_rate=100.0, query_rate=0.5))
    labels = {o.label for o in result.options}
    assert {"rerank/status_quo@50 [query_stream]", "rerank/status_quo@50 [beyond_paper]"} <= labels
    # Both reach the share with every distinct query served (0.3) after 1,296 measured queries:
    # the tie goes to the one priced from a stream.
    assert result.recommended.label == "rerank/status_quo@50 [query_stream]"
    assert result.recommended.share == 0.3

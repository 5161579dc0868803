"""drift.migration.stream: exact encode counts, running quality and latency on hand-made streams."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from drift.core.errors import ConfigError, DataError
from drift.migration.stream import (
    StreamStrategy,
    make_stream,
    mean_latency,
    simulate_stream,
    stream_latency,
    summarise_stream,
)

N = 10
# Three queries with overlapping candidates; query 1 is padded, query 2 repeats row 4.
CANDIDATES = np.array([[0, 1, 2], [2, 3, -1], [1, 4, 4]])
STREAM = np.array([0, 1, 0, 2, 1])
QUALITY = {"knn/recall@10": np.array([0.5, np.nan, 1.0])}


def rerank(**kwargs) -> StreamStrategy:
    return StreamStrategy(per_query=QUALITY, candidates=CANDIDATES, **kwargs)


def simulate(strategies: dict[str, StreamStrategy], stream=STREAM, **kwargs) -> dict:
    """Report at every step, so per-step counts are the differences of the cumulative ones."""
    kwargs.setdefault("checkpoints", range(1, len(stream) + 1))
    return simulate_stream(stream, strategies, n_corpus=N, encode_rate=100.0, **kwargs)


def test_encodes_counted_exactly_on_a_stream_with_repeats():
    # q0 encodes 0,1,2; q1 only 3 (2 held); q0 again nothing; q2 only 4 (1 held, 4 once); q1 none.
    out = simulate({"rerank": rerank(upfront_encodes=0)})["strategies"]["rerank"]
    assert out["encodes"] == [3, 4, 4, 5, 5]
    assert out["final_encodes"] == 5
    assert out["share_encoded"] == pytest.approx([0.3, 0.4, 0.4, 0.5, 0.5])
    assert out["encode_seconds"] == pytest.approx([0.03, 0.04, 0.04, 0.05, 0.05])
    assert out["queries_with_encodes"] == pytest.approx(3 / 5)


def test_already_encoded_rows_are_reused_and_counted_upfront():
    # Rows 1 and 3 (e.g. the adapter's pairs) are paid upfront: q0 encodes 0,2; q1 nothing; q2 4.
    strategy = rerank(upfront_encodes=2, already_encoded=np.array([1, 3]))
    out = simulate({"rerank": strategy})["strategies"]["rerank"]
    assert out["encodes"] == [4, 4, 4, 5, 5]
    assert out["final_encodes"] == 5
    assert out["queries_with_encodes"] == pytest.approx(2 / 5)


def test_strategies_without_candidates_only_pay_upfront():
    strategies = {
        "status_quo": StreamStrategy(per_query=QUALITY, upfront_encodes=0),
        "full_reindex": StreamStrategy(per_query=QUALITY, upfront_encodes=N),
    }
    out = simulate(strategies)["strategies"]
    assert out["status_quo"]["encodes"] == [0] * 5
    assert out["full_reindex"]["encodes"] == [N] * 5
    assert out["full_reindex"]["share_encoded"] == [1.0] * 5
    assert out["full_reindex"]["queries_with_encodes"] == 0.0


def test_quality_is_the_running_mean_of_served_queries_without_nan():
    # Served values 0.5, NaN, 0.5, 1.0, NaN.
    out = simulate({"rerank": rerank(upfront_encodes=0)})["strategies"]["rerank"]
    assert out["quality"]["knn/recall@10"] == pytest.approx([0.5, 0.5, 0.5, 2 / 3, 2 / 3])
    # Nothing judged served yet: no mean (None, so the result stays plain JSON).
    first_unjudged = simulate({"s": rerank(upfront_encodes=0)}, stream=np.array([1, 0]))
    assert first_unjudged["strategies"]["s"]["quality"]["knn/recall@10"] == [None, 0.5]


def test_latency_adds_encode_time_at_the_measured_rate():
    # 100 docs/s: one encode is 10,000 us; warm 100 us. Cold encodes per query: 3, 1, 0, 1, 0.
    strategy = rerank(upfront_encodes=0, warm_seconds_per_query=1e-4)
    latency = simulate({"r": strategy})["strategies"]["r"]["latency_us"]
    served = np.array([30_100, 10_100, 100, 10_100, 100])
    cold = np.array([30_100, 10_100, 10_100])  # the three queries that encoded
    assert latency["warm_mean"] == pytest.approx(100)
    assert latency["cold_query_mean"] == pytest.approx(cold.mean())
    assert latency["cold_query_p50"] == pytest.approx(10_100)
    assert latency["cold_query_p99"] == pytest.approx(np.percentile(cold, 99))
    assert latency["amortised_mean"] == pytest.approx(served.mean())
    assert latency["amortised_p50"] == pytest.approx(10_100)
    assert latency["amortised_p99"] == pytest.approx(np.percentile(served, 99))
    assert latency["first_query"] == pytest.approx(30_100)
    assert "cold_mean" not in latency  # the old files' name for the amortised mean


def test_stream_latency_reads_new_and_old_files_and_subtracts_the_status_quo():
    status_quo = StreamStrategy(per_query=QUALITY, upfront_encodes=0, warm_seconds_per_query=4e-5)
    strategies = {
        "status_quo": status_quo,
        "r": rerank(upfront_encodes=0, warm_seconds_per_query=1e-4),
    }
    result = simulate(strategies)
    new = stream_latency(result, "r")
    assert new["cold_query_mean"] == pytest.approx(50_300 / 3)  # (30,100 + 2 x 10,100) / 3
    assert new["cold_query_encodes"] == pytest.approx(5 / 3)  # 3 + 1 + 1 over 3 cold queries
    assert new["status_quo"] == pytest.approx(40)
    assert new["added_cold_query_mean"] == pytest.approx(50_300 / 3 - 40)
    assert new["added_warm_mean"] == pytest.approx(60)
    assert new["added_amortised_mean"] == pytest.approx(50_500 / 5 - 40)
    # A file written before cold queries were told apart: cold_* held the amortised statistics.
    latency = result["strategies"]["r"]["latency_us"]
    old_latency = {"warm_mean": latency["warm_mean"], "first_query": latency["first_query"]}
    old_latency |= {f"cold_{s}": latency[f"amortised_{s}"] for s in ("mean", "p50", "p99")}
    old = copy.deepcopy(result)
    old["strategies"]["r"]["latency_us"] = old_latency
    read = stream_latency(old, "r")
    assert read["cold_query_mean"] == pytest.approx(new["cold_query_mean"])  # exact, derived
    assert read["cold_query_p50"] is None and read["cold_query_p99"] is None  # not recorded
    for key in ("amortised_mean", "amortised_p99", "warm_mean", "first_query", "added_warm_mean"):
        assert read[key] == pytest.approx(new[key])
    # Without the status quo in the stream nothing is called added; no encodes, no cold query.
    alone = stream_latency(simulate({"r": strategies["r"]}), "r")
    assert alone["status_quo"] is None and alone["added_cold_query_mean"] is None
    assert stream_latency(result, "status_quo")["cold_query_mean"] is None
    # Averaged over streams: each key over the streams that have it.
    both = mean_latency([result, old], "r")
    assert both["cold_query_p99"] == pytest.approx(new["cold_query_p99"])
    assert both["cold_query_mean"] == pytest.approx(new["cold_query_mean"])


def test_capacity_evicts_least_recently_used_and_counts_reencodes():
    # Store of 3: after q1 it holds {1,2,3} (0 evicted), so q0 re-encodes 0 and evicts 3; q2
    # encodes 4 (evicting 0), q1 re-encodes 3 (evicting 1).
    out = simulate({"r": rerank(upfront_encodes=0)}, capacity=3)["strategies"]["r"]
    assert out["encodes"] == [3, 4, 5, 6, 7]


def test_capacity_never_evicts_already_encoded_rows():
    # Rows 1 and 3 held for good; store of 2 for on-demand rows: q0 {0,2}, q2 adds 4 and evicts
    # 0, so q0 at the end re-encodes 0 only (1 is still held).
    strategy = rerank(upfront_encodes=2, already_encoded=np.array([1, 3]))
    stream = np.array([0, 1, 0, 2, 1, 0])
    out = simulate({"r": strategy}, stream=stream, capacity=2)["strategies"]["r"]
    assert out["encodes"] == [4, 4, 4, 5, 5, 6]


def test_capacity_below_one_query_needs_is_refused():
    with pytest.raises(ConfigError, match="capacity 2"):
        simulate({"r": rerank(upfront_encodes=0)}, capacity=2)


def test_output_is_plain_json_with_default_checkpoints():
    stream = make_stream(3, 1000, seed=0)
    result = simulate_stream(stream, {"r": rerank(upfront_encodes=0)}, n_corpus=N, encode_rate=50.0)
    points = result["checkpoints"]
    assert points[0] == 1 and points[-1] == 1000 and len(points) <= 30
    assert points == sorted(set(points))
    assert len(result["strategies"]["r"]["encodes"]) == len(points)
    assert result["n_unique_queries"] == 3 and result["length"] == 1000
    json.dumps(result, allow_nan=False)
    # The stream's length is always the last checkpoint.
    assert simulate({"r": rerank(upfront_encodes=0)}, checkpoints=[2])["checkpoints"] == [2, 5]


def test_summary_lists_final_values():
    strategies = {
        "status_quo": StreamStrategy(per_query=QUALITY, upfront_encodes=0),
        "rerank": rerank(upfront_encodes=0, warm_seconds_per_query=1e-4),
    }
    table = summarise_stream(simulate(strategies))
    # warm, cold mean (the 3 queries that encoded), cold p99, first query, amortised mean
    cold_p99 = np.percentile([30.1, 10.1, 10.1], 99)
    assert (
        f"| rerank | 5 | 50.0% | 0.667 | 0.10 | 16.77 | {cold_p99:.2f} | 30.10 | 10.10 |" in table
    )
    assert "| status_quo | 0 | 0.0% | 0.667 | 0.00 | n/a | n/a | 0.00 | 0.00 |" in table
    assert "minus the status quo's 0.00 ms per query" in table


def test_zipf_stream_is_seeded_and_skewed():
    stream = make_stream(50, 20_000, popularity="zipf", zipf_s=1.0, seed=3)
    assert np.array_equal(stream, make_stream(50, 20_000, popularity="zipf", zipf_s=1.0, seed=3))
    assert not np.array_equal(stream, make_stream(50, 20_000, popularity="zipf", seed=4))
    counts = np.sort(np.bincount(stream, minlength=50))[::-1]
    # Zipf s=1 over 50 queries: the top query has 1/H_50 = 22% of the traffic, twice the second.
    assert counts[0] / 20_000 == pytest.approx(1 / np.sum(1 / np.arange(1, 51)), abs=0.02)
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.15)
    uniform = np.bincount(make_stream(50, 20_000, popularity="uniform", seed=3), minlength=50)
    assert uniform.max() / 20_000 < 0.03
    # The popularity ranking is a seeded permutation, not row order.
    favourites = {int(np.bincount(make_stream(50, 2000, seed=s)).argmax()) for s in range(5)}
    assert len(favourites) > 1


def test_sequential_stream_serves_each_query_at_most_once():
    stream = make_stream(20, 20, popularity="sequential", seed=1)
    assert sorted(stream.tolist()) == list(range(20))
    assert len(set(make_stream(20, 5, popularity="sequential", seed=1).tolist())) == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_queries": 0, "length": 5},
        {"n_queries": 5, "length": 0},
        {"n_queries": 5, "length": 5, "zipf_s": 0.0},
        {"n_queries": 5, "length": 5, "popularity": "pareto"},
        {"n_queries": 5, "length": 6, "popularity": "sequential"},
    ],
)
def test_make_stream_refuses_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        make_stream(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"encode_rate": 0.0},
        {"n_corpus": 0},
        {"capacity": 0},
        {"checkpoints": [0]},
        {"checkpoints": [6]},
    ],
)
def test_simulate_refuses_bad_settings(kwargs):
    settings = {"n_corpus": N, "encode_rate": 100.0, **kwargs}
    with pytest.raises(ConfigError):
        simulate_stream(STREAM, {"r": rerank(upfront_encodes=0)}, **settings)


def test_inconsistent_arrays_are_refused():
    with pytest.raises(DataError, match="serves row 3"):
        simulate({"r": rerank(upfront_encodes=0)}, stream=np.array([0, 3]))
    with pytest.raises(DataError, match="< N = 3"):
        simulate_stream(STREAM, {"r": rerank(upfront_encodes=0)}, n_corpus=3, encode_rate=1.0)
    with pytest.raises(DataError, match="upfront_encodes must include"):
        rerank(upfront_encodes=1, already_encoded=np.array([1, 3]))
    with pytest.raises(DataError, match="same query rows"):
        StreamStrategy(per_query={"m": np.ones(2)}, upfront_encodes=0, candidates=CANDIDATES)
    with pytest.raises(DataError, match="non-empty 1-D"):
        simulate({"r": rerank(upfront_encodes=0)}, stream=np.array([], dtype=np.int64))

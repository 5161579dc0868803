"""Demand-driven migration (drift.migration.demand): planted cases where its answer is known, the
fast partial-index path against brute force, the encode count, its config and its run section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_run import SYNTHETIC
from test_validation import problems_of

from drift.cli.config import compose
from drift.core.errors import DataError
from drift.experiment.analyses import per_query_quality
from drift.migration.demand import PartialIndex, serve_demand, top_rows
from drift.migration.stream import (
    StreamStrategy,
    served_curves,
    simulate_stream,
    stream_checkpoints,
    summarise_stream,
)
from drift.report.migration_figures import write_all
from drift.retrieval.mixed.rerank import DocumentVectors, rerank
from drift.run import run

K = 10


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(q: np.ndarray, x: np.ndarray, depth: int) -> np.ndarray:
    """Each query's top `depth` rows of x by inner product (ties by row id)."""
    rows = np.arange(len(x))
    return np.stack([top_rows(x @ query, rows, depth) for query in q])


def lazy_rerank_ids(candidates: np.ndarray, q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """What lazy re-rank answers each query row with (its fallback unused: >= K candidates)."""
    result = rerank(
        "r", candidates, candidates, q, DocumentVectors(lambda rows: x[rows], len(x)), K
    )
    return result.ids


def test_top_rows_breaks_ties_by_row_id() -> None:
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1, 0.5], dtype=np.float32)
    rows = np.array([10, 11, 12, 13, 14, 15])
    assert top_rows(scores, rows, 3).tolist() == [11, 13, 10]
    assert top_rows(scores, rows, 4).tolist() == [11, 13, 10, 12]
    assert top_rows(scores, rows, 9).tolist() == [11, 13, 10, 12, 15, 14]


def test_equals_lazy_rerank_when_the_old_candidates_hold_the_new_truth() -> None:
    """(a) The new model's top 10 inside every query's old candidates: whatever the partial
    index adds scores lower, so every answer is lazy re-rank's, at every point of the stream."""
    rng = np.random.default_rng(0)
    x, q = unit(rng, 400, 16), unit(rng, 40, 16)
    truth = exact_top(q, x, K)
    noise = np.stack(
        [np.setdiff1d(rng.permutation(400), t, assume_unique=True)[:30] for t in truth]
    )
    candidates = np.concatenate([noise[:, :15], truth, noise[:, 15:]], axis=1)
    stream = rng.integers(0, 40, size=300)
    served = serve_demand(stream, candidates, q, x, k=K, new_depth=20)
    np.testing.assert_array_equal(served.ids, lazy_rerank_ids(candidates, q, x)[stream])
    quality = per_query_quality(served.ids, truth[stream], None)["knn/recall@10"]
    assert quality.min() == 1.0


def planted_drift(n_queries: int = 30, n_docs: int = 600, seed: int = 1):
    """Queries in a ring: each query's old candidates miss its own new-model top 10 but hold its
    successor's (what a neighbouring query in the old model retrieves), plus noise."""
    rng = np.random.default_rng(seed)
    x, q = unit(rng, n_docs, 24), unit(rng, n_queries, 24)
    truth = exact_top(q, x, K)
    candidates = np.full((n_queries, 40), -1, dtype=np.int64)
    for i in range(n_queries):
        pool = np.setdiff1d(rng.permutation(n_docs), truth[i], assume_unique=True)
        mine = np.concatenate([np.setdiff1d(truth[(i + 1) % n_queries], truth[i]), pool[:30]])
        mine = mine[np.sort(np.unique(mine, return_index=True)[1])][:40]
        candidates[i, : mine.size] = mine
    return x, q, truth, candidates


def test_quality_rises_to_the_full_reindex_once_the_needed_rows_are_written_back() -> None:
    """(b) Lazy re-rank never finds a query's new top 10 (its old candidates miss them); demand
    driven does once the neighbouring queries have written them back: a second pass over the
    queries scores R@10 = 1 everywhere, the full re-index's, and the windowed mean shows it."""
    x, q, truth, candidates = planted_drift()
    rng = np.random.default_rng(2)
    first, second = rng.permutation(30), rng.permutation(30)
    stream = np.concatenate([first, second])
    served = serve_demand(stream, candidates, q, x, k=K, new_depth=K)
    recall = per_query_quality(served.ids, truth[stream], None)["knn/recall@10"]
    lazy = per_query_quality(lazy_rerank_ids(candidates, q, x)[stream], truth[stream], None)
    assert lazy["knn/recall@10"].max() < 0.5
    assert recall[30:].min() == 1.0  # every query's top 10 was held by its second serving
    assert recall[:30].mean() < 0.9  # and not all of them at their first
    points = stream_checkpoints([30, 60], len(stream))
    curves = served_curves(
        served.cold,
        {"knn/recall@10": recall},
        upfront=served.upfront,
        warm_seconds=0.0,
        n_corpus=len(x),
        encode_rate=10.0,
        points=points,
        window=30,
    )
    windowed = curves["quality_window"]["knn/recall@10"]
    running = curves["quality"]["knn/recall@10"]
    assert windowed[0] < windowed[1] == 1.0  # the full re-index's R@10
    assert running[1] < 1.0  # the running mean from the start lags
    assert curves["encodes"][0] == served.cold[:30].sum()
    assert served.cold[30:].sum() <= served.cold[:30].sum()


def test_every_row_is_encoded_once_and_never_more_than_the_corpus() -> None:
    """(c) Encodes (held rows plus on-demand) never exceed N; a repeat served right after itself
    encodes nothing; the partial index refuses a row written twice."""
    rng = np.random.default_rng(3)
    x, q = unit(rng, 200, 8), unit(rng, 50, 8)
    candidates = rng.integers(0, 200, size=(50, 60))
    stream = np.repeat(rng.integers(0, 50, size=400), 2)
    held = rng.choice(200, size=20, replace=False)
    served = serve_demand(stream, candidates, q, x, k=K, new_depth=60, held=held)
    assert served.upfront == 20
    assert served.upfront + served.cold.sum() <= 200
    assert served.cold[1::2].sum() == 0
    # The partial index only returns held rows: exactly lazy re-rank's encodes, query by query.
    lazy = StreamStrategy(
        per_query={}, upfront_encodes=20, candidates=candidates, already_encoded=held
    )
    every = np.arange(1, len(stream) + 1)
    curves = simulate_stream(
        stream, {"lazy": lazy}, n_corpus=200, encode_rate=1.0, checkpoints=every
    )
    assert curves["strategies"]["lazy"]["encodes"] == (20 + np.cumsum(served.cold)).tolist()
    index = PartialIndex(x, q, stream, prefix=0)
    index.add(np.array([3, 4]))
    with pytest.raises(DataError, match="twice"):
        index.add(np.array([4, 5]))
    with pytest.raises(DataError, match="twice"):
        index.add(np.array([7, 7]))


def test_background_job_writes_into_the_same_index_and_skips_held_rows() -> None:
    """A background job that reaches every row by the second query: each row is encoded once
    (on demand or by the job, never both), and from then on every answer is the full
    re-index's, even where the old candidates miss the new top 10."""
    x, q, truth, candidates = planted_drift()
    stream = np.random.default_rng(6).integers(0, 30, size=100)
    order = np.random.default_rng(7).permutation(len(x))
    served = serve_demand(
        stream, candidates, q, x, k=K, new_depth=K, background=len(x) / 2, order=order
    )
    assert served.cold.sum() + served.background.sum() == len(x)
    assert (
        served.background[0]
        == len(x) / 2 - np.isin(order[: len(x) // 2], candidates[stream[0]]).sum()
    )
    assert served.background[2:].sum() == 0 and served.cold[2:].sum() == 0
    recall = per_query_quality(served.ids, truth[stream], None)["knn/recall@10"]
    assert recall[2:].min() == 1.0
    curves = served_curves(
        served.cold,
        {"knn/recall@10": recall},
        upfront=0,
        warm_seconds=0.0,
        n_corpus=len(x),
        encode_rate=10.0,
        points=stream_checkpoints(None, len(stream)),
        background=served.background,
    )
    assert curves["final_encodes"] == len(x) == curves["encodes"][-1]
    assert curves["background_encodes"][-1] == served.background.sum()
    with pytest.raises(DataError, match="order"):
        serve_demand(stream, candidates, q, x, k=K, new_depth=K, background=1.0)


@pytest.mark.parametrize("new_depth", [5, 25])
def test_fast_path_answers_as_brute_force(new_depth: int) -> None:
    """(d) Ranking prefixes (short enough that many searches fall back to a scan of H) give the
    same answers and encodes as scanning H for every search."""
    rng = np.random.default_rng(4)
    x, q = unit(rng, 500, 12), unit(rng, 60, 12)
    candidates = rng.integers(0, 500, size=(60, 20))
    stream = rng.integers(0, 60, size=800)
    held = rng.choice(500, size=10, replace=False)
    brute = serve_demand(stream, candidates, q, x, k=K, new_depth=new_depth, held=held, prefix=0)
    fast = serve_demand(stream, candidates, q, x, k=K, new_depth=new_depth, held=held, prefix=64)
    default = serve_demand(stream, candidates, q, x, k=K, new_depth=new_depth, held=held)
    for other in (fast, default):
        np.testing.assert_array_equal(other.ids, brute.ids)
        np.testing.assert_array_equal(other.cold, brute.cold)
    assert brute.scans == len(stream)  # prefix 0: every search scans H
    assert 0 < fast.scans < len(stream)  # both paths taken
    assert default.scans == 0  # the prefix covers the whole corpus


def test_partial_index_search_is_exact_over_held_rows() -> None:
    rng = np.random.default_rng(5)
    x, q = unit(rng, 300, 10), unit(rng, 5, 10)
    index = PartialIndex(x, q, np.arange(5), prefix=32)
    for step in range(6):
        index.add(np.arange(50 * step, 50 * step + 50)[::3])
        held = np.flatnonzero(index.held)
        for query in range(5):
            expected = top_rows(x[held] @ q[query], held, 7)
            np.testing.assert_array_equal(index.search(query, 7), expected)


def test_bad_input_is_refused() -> None:
    x, q = np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32)[:2]
    with pytest.raises(DataError, match="old_candidates"):
        serve_demand(np.array([0]), np.zeros((3, 2), dtype=np.int64), q, x, k=2, new_depth=1)
    with pytest.raises(DataError, match="query rows"):
        serve_demand(np.array([2]), np.zeros((2, 2), dtype=np.int64), q, x, k=2, new_depth=1)
    with pytest.raises(DataError, match="corpus rows"):
        serve_demand(np.array([0]), np.full((2, 2), 4), q, x, k=2, new_depth=1)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["stream.demand.window=0"], "stream.demand.window: must be an integer >= 1"),
        (["stream.demand.background=-1"], "stream.demand.background: must be a number in [0,"),
        (["stream.demand.new_depth=-1"], "stream.demand.new_depth: must be an integer >= 0"),
        (["stream.demand.sources=[nope]"], "stream.demand.sources: must be a non-empty list"),
        (["stream.demand.depth=20"], "stream.demand.depth: must be one of eval.mixed.rerank"),
        (["stream.demand.sources=[adapter]"], "['adapter'] not in eval.mixed.rerank.sources"),
        (["eval.strategies=[status_quo]"], "eval.strategies must name rerank"),
    ],
)
def test_bad_demand_settings_fail_before_anything_loads(
    overrides: list[str], expected: str
) -> None:
    assert expected in problems_of(*SYNTHETIC, "experiment=demand_migration", *overrides)


def test_run_writes_the_demand_section(tmp_path: Path) -> None:
    """(e) experiment=demand_migration on the synthetic smoke setting: the stream section holds
    demand-driven migration's curves beside lazy re-rank's, shaped alike, with windowed quality."""
    record = run(
        compose(
            [
                f"paths.results_dir={tmp_path / 'results'}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                *SYNTHETIC,
                "experiment=demand_migration",
                "stream.length=400",
                "stream.demand.window=50",
            ]
        )
    )
    stream = record["stream"]
    demand = stream["demand"]
    assert demand["config"]["new_depth"] == 50 == demand["config"]["depth"]
    assert set(demand["strategies"]) == {"demand/status_quo@50", "demand/union@50"}
    lazy = stream["strategies"]["rerank/status_quo@50"]
    mine = demand["strategies"]["demand/status_quo@50"]
    assert mine["lazy"] == "rerank/status_quo@50"
    assert set(lazy) - {"window", "quality_window"} <= set(mine)
    assert len(mine["encodes"]) == len(stream["checkpoints"]) == len(mine["share_encoded"])
    assert mine["encodes"] == sorted(mine["encodes"]) and mine["final_encodes"] <= 300
    # Partial-index hits are held already: it encodes what lazy re-rank encodes, no more.
    assert mine["encodes"] == lazy["encodes"]
    assert set(mine["quality_window"]) == set(mine["quality"]) == set(lazy["quality"])
    assert lazy["window"] == 50
    union = demand["strategies"]["demand/union@50"]
    pairs = record["pairs"]
    n_pairs = pairs["n_train"] + pairs["n_val"] + pairs["n_gate"]
    assert union["encodes"][0] >= n_pairs  # the adapter's pairs, held from the start
    assert "demand/status_quo@50" in summarise_stream(stream)
    written, skipped = write_all(tmp_path / "results", tmp_path / "figures")
    assert "demand" not in skipped
    figure = [p for p in written if p.name.startswith("demand--demand_migration")]
    assert {p.suffix for p in figure} == {".png", ".pdf", ".csv"}
    points = pd.read_csv(next(p for p in figure if p.suffix == ".csv"))
    demand_line = points[points["strategy"] == "demand/status_quo@50"]
    assert demand_line["share_encoded"].tolist() == mine["share_encoded"]
    assert demand_line["value"].tolist() == pytest.approx(mine["quality_window"]["knn/recall@10"])

"""drift.migration.timeline on a synthetic drift (no model involved; flat indexes).

The synthetic pair: "new" vectors are random unit vectors; "old" vectors are a noisy orthogonal
projection of them to fewer dimensions, so a Procrustes adapter can recover most of the drift
given enough pairs, and few pairs leave it underdetermined.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from drift.core.errors import ConfigError, VectorError
from drift.core.vectors import l2_normalize
from drift.migration.timeline import (
    MODES,
    RerankStore,
    TimelineConfig,
    TimelineData,
    run_timeline,
    summarise_timeline,
    timeline_steps,
)
from drift.retrieval.index import IndexCache, IndexSpec, build_index, exact_search
from drift.retrieval.strategies import dual_index

N, NQ, D_NEW, D_OLD, K = 400, 60, 32, 24, 10
FLAT = IndexSpec(kind="flat", device="cpu")


def synthetic(n_train: int, noise: float = 0.3, seed: int = 0) -> dict:
    """TimelineData's fields (but the index cache) for a planted drift with `n_train` pairs."""
    rng = np.random.default_rng(seed)
    projection = np.linalg.qr(rng.standard_normal((D_NEW, D_NEW)))[0][:, :D_OLD]
    new = l2_normalize(rng.standard_normal((N + NQ, D_NEW)).astype(np.float32))
    old = l2_normalize(new @ projection + noise * rng.standard_normal((N + NQ, D_OLD)))
    x_new, x_old, q_new, q_old = new[:N], old[:N], new[N:], old[N:]
    rows = rng.permutation(N)
    excluded = np.zeros(N, dtype=bool)
    excluded[rows[-5:]] = True  # a few rows "equal a query": never pairs
    return {
        "x_old": x_old,
        "x_new": x_new,
        "q_old": q_old,
        "q_new": q_new,
        "old_index": build_index(x_old, FLAT),
        "new_index": build_index(x_new, FLAT),
        "spec": FLAT,
        "train_rows": np.sort(rows[:n_train]),
        "val_rows": np.sort(rows[n_train : n_train + 20]),
        "excluded": excluded,
        "k": K,
        "seed": 0,
    }


def steps(cfg: TimelineConfig, inputs: dict, tmp_path) -> list:
    data = TimelineData(index_cache=IndexCache(tmp_path / "indexes"), **inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # underdetermined fits with few pairs, said elsewhere
        return list(timeline_steps(cfg, data))


def run(cfg: TimelineConfig, inputs: dict, tmp_path, *, qrels=None) -> dict:
    _, truth = exact_search(inputs["x_new"], inputs["q_new"], K, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_timeline(
            cfg,
            TimelineData(index_cache=IndexCache(tmp_path / "indexes"), **inputs),
            knn_truth=truth,
            qrels=qrels,
            n_boot=50,
        )


@pytest.mark.parametrize("merge", ["rrf", "zscore", "calibrated"])
def test_ends_of_the_migration(merge: str, tmp_path) -> None:
    """Share 0: each backfill mode is its base strategy and dual_index is the status quo (RRF of
    an empty list and one ranking keeps that ranking). Share 1: backfills are full_reindex and
    dual_index is the paper's dual_index strategy."""
    inputs = synthetic(n_train=100)
    cfg = TimelineConfig(hours=4, rate=0.25, merge=merge, order="hubness")
    timeline = steps(cfg, inputs, tmp_path)
    first, last = timeline[0].answers, timeline[-1].answers
    assert timeline[0].n_migrated == 0 and timeline[-1].n_migrated == N
    np.testing.assert_array_equal(first["backfill_status_quo"], first["status_quo"])
    np.testing.assert_array_equal(first["dual_index"], first["status_quo"])
    np.testing.assert_array_equal(first["backfill_adapter"], first["adapter_frozen"])
    np.testing.assert_array_equal(first["adapter_refit"], first["adapter_frozen"])
    for mode in ("backfill_status_quo", "backfill_adapter"):
        np.testing.assert_array_equal(last[mode], last["full_reindex"])
    paper = dual_index(
        inputs["old_index"], inputs["new_index"], inputs["q_old"], inputs["q_new"], K, FLAT
    )
    np.testing.assert_array_equal(last["dual_index"], paper.ids)
    # In between, a backfill serves migrated rows (new index) and unmigrated ones (old index).
    middle = timeline[2]
    assert 0 < middle.n_migrated < N
    served = middle.answers["backfill_status_quo"]
    assert not np.array_equal(served, first["status_quo"])
    assert not np.array_equal(served, last["full_reindex"])


def test_frozen_adapter_is_constant_and_refit_learns_from_migrated_rows(tmp_path) -> None:
    """With 12 initial pairs in 32 dimensions the Procrustes map is underdetermined; the rows the
    background job migrates are free pairs, so the refitted adapter recovers the planted drift
    while the frozen one stays where it started."""
    inputs = synthetic(n_train=12, noise=0.1)
    cfg = TimelineConfig(hours=10, rate=0.1, modes=["adapter_frozen", "adapter_refit"])
    result = run(cfg, inputs, tmp_path)
    frozen = result["modes"]["adapter_frozen"]["knn/recall@10"]["mean"]
    refit = result["modes"]["adapter_refit"]["knn/recall@10"]["mean"]
    assert len(set(frozen)) == 1
    assert refit[0] == frozen[0]
    assert refit[-1] > frozen[-1] + 0.2
    assert refit[-1] > refit[len(refit) // 2] > refit[0]
    cosine = result["modes"]["adapter_refit"]["adapter_val_cosine"]
    assert cosine[-1] > cosine[0]
    assert len(set(result["modes"]["adapter_frozen"]["adapter_val_cosine"])) == 1
    assert result["modes"]["adapter_frozen"]["refit_seconds"][1:] == [0.0] * 10
    assert all(s > 0 for s in result["modes"]["adapter_refit"]["refit_seconds"])


def test_continuous_adaptation_configuration(tmp_path) -> None:
    """The paper's setting: 5% per hour, hourly refit, 24 h, frozen vs refitted: 25 points, the
    backfill completes at hour 20 and nothing changes afterwards."""
    inputs = synthetic(n_train=40)
    truth = exact_search(inputs["x_new"], inputs["q_new"], 1, device="cpu")[1]
    qrels = [{int(row): 1} for row in truth[:, 0]]  # synthetic labels: the true nearest row
    cfg = TimelineConfig(modes=["adapter_frozen", "adapter_refit"])
    result = run(cfg, inputs, tmp_path, qrels=qrels)
    assert result["hours"] == [float(h) for h in range(25)]
    assert result["completes_at_hours"] == 20.0
    assert result["share_migrated"][10] == 0.5 and result["share_migrated"][-1] == 1.0
    assert result["new_doc_encodes"][0] == 60  # the initial pairs (40 train + 20 validation)
    assert result["new_doc_encodes"][-1] == N
    assert np.all(np.diff(result["new_doc_encodes"]) >= 0)
    assert result["primary_metrics"] == ["knn/recall@10", "qrels/ndcg@10"]
    for mode in cfg.modes:
        for metric in ("knn/recall@10", "qrels/ndcg@10", "qrels/arr_ndcg@10"):
            curve = result["modes"][mode][metric]
            assert all(len(curve[key]) == 25 for key in ("mean", "ci_low", "ci_high"))
            bounds = zip(curve["ci_low"], curve["mean"], curve["ci_high"], strict=True)
            assert all(low <= mean <= high for low, mean, high in bounds)
    refit = result["modes"]["adapter_refit"]["knn/recall@10"]["mean"]
    assert refit[20:] == [refit[20]] * 5
    assert result["references"]["full_reindex"]["knn/recall@10"]["mean"] == 1.0
    assert set(result["references"]) == {"full_reindex", "status_quo"}
    json.dumps(result)  # JSON-able as is
    table = summarise_timeline(result)
    assert table.count("\n| ") == 26  # header row + 25 hours
    assert "| 20 | 100% |" in table
    assert "References (constant): full_reindex 1.000" in table
    assert "| 0 | 0% |" in summarise_timeline(result, "qrels/ndcg@10")


@pytest.mark.parametrize("rerank_k", [N, N + 30])
def test_rerank_with_k_at_least_the_corpus_is_full_reindex_at_every_step(
    rerank_k: int, tmp_path
) -> None:
    """Every row is a candidate: the re-scored list is the new index's, whatever is migrated.
    All rows but the initial pairs are encoded on demand at hour 0 (nothing is migrated yet),
    none later, and the background job encodes none of them again."""
    inputs = synthetic(n_train=100)
    cfg = TimelineConfig(
        hours=4, rate=0.25, modes=["rerank_status_quo", "rerank_union"], rerank_k=rerank_k
    )
    timeline = steps(cfg, inputs, tmp_path)
    assert [s.n_migrated for s in timeline] == [0, 100, 200, 300, 400]
    pairs = 120  # 100 train + 20 validation
    for step in timeline:
        for mode in cfg.modes:
            np.testing.assert_array_equal(step.answers[mode], step.answers["full_reindex"])
            assert step.background_encodes[mode] == pairs
    for mode in cfg.modes:
        assert [s.on_demand_encodes[mode] for s in timeline] == [N - pairs, 0, 0, 0, 0]


PLANTED_N = 20


def planted(order: np.ndarray, monkeypatch) -> dict:
    """A hand-made timeline: 20 corpus rows on an arc of the old space (row i at angle 0.1 i),
    three queries whose old-space top 3 are rows {0, 1, 2}, {4, 5, 6} and {1, 2, 3}; row 0 is the
    one initial pair; the background job migrates rows in `order` (planted)."""
    monkeypatch.setattr("drift.migration.timeline.backfill_order", lambda *args, **kwargs: order)

    def arc(angles: list[float]) -> np.ndarray:
        return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)

    rng = np.random.default_rng(0)
    x_new = l2_normalize(rng.standard_normal((PLANTED_N, 4)).astype(np.float32))
    q_new = l2_normalize(rng.standard_normal((3, 4)).astype(np.float32))
    x_old = arc([0.1 * i for i in range(PLANTED_N)])
    return {
        "x_old": x_old,
        "x_new": x_new,
        "q_old": arc([-0.01, 0.51, 0.21]),
        "q_new": q_new,
        "old_index": build_index(x_old, FLAT),
        "new_index": build_index(x_new, FLAT),
        "spec": FLAT,
        "train_rows": np.array([0]),
        "val_rows": np.array([], dtype=np.int64),
        "excluded": np.zeros(PLANTED_N, dtype=bool),
        "k": K,
        "seed": 0,
    }


def test_rerank_counts_on_demand_and_background_encodes_on_a_planted_case(
    tmp_path, monkeypatch
) -> None:
    """Hour 0: the queries' candidates 1, 2 (query 0), 4, 5, 6 (query 1) and 3 (query 2, whose 1
    and 2 are held already) are encoded on demand, 6 in all; row 0 is the initial pair. Hour 1:
    the job migrates 5, 6, 10, 11, 12, 0, 1, 2, 3, 4 but encodes only 10, 11, 12 (the others are
    held); the queries' candidates are all held, so none encodes. Hour 2: all 20 rows, 14 of them
    encoded by the job."""
    order = np.array([5, 6, 10, 11, 12, 0, 1, 2, 3, 4, 7, 8, 9, 13, 14, 15, 16, 17, 18, 19])
    inputs = planted(order, monkeypatch)
    cfg = TimelineConfig(hours=2, rate=0.5, modes=["rerank_status_quo"], rerank_k=3)
    truth = exact_search(inputs["x_new"], inputs["q_new"], K, device="cpu")[1]
    data = TimelineData(index_cache=IndexCache(tmp_path / "indexes"), **inputs)
    result = run_timeline(cfg, data, knn_truth=truth, qrels=None, n_boot=10)
    encodes = result["modes"]["rerank_status_quo"]
    assert result["n_migrated"] == [0, 10, 20]
    assert encodes["on_demand_encodes"] == [6, 0, 0]
    assert encodes["background_encodes"] == [1, 4, 14]
    assert encodes["new_doc_encodes"] == [7, 10, 20]
    assert result["new_doc_encodes"] == [1, 10, 20]  # the job's own count: pairs ∪ migrated
    # The answers: each query's 3 candidates by new-model cosine, then the status quo's rest.
    sq = exact_search(inputs["x_old"], inputs["q_old"], K, device="cpu")[1]
    rows = [[0, 1, 2], [4, 5, 6], [1, 2, 3]]
    assert [sorted(ids[:3]) for ids in sq] == rows
    answers = list(timeline_steps(cfg, data))[1].answers["rerank_status_quo"]
    for i, candidates in enumerate(rows):
        scores = inputs["x_new"][candidates] @ inputs["q_new"][i]
        assert list(answers[i, :3]) == [candidates[j] for j in np.argsort(-scores)]
        assert list(answers[i, 3:]) == list(sq[i, 3:])
    assert "rerank_status_quo: 20 new-model document encodes by the end, 6 of them on demand " in (
        summarise_timeline(result)
    )


def test_rerank_store_never_encodes_a_row_twice(tmp_path) -> None:
    """A migrated row is not encoded on demand; a row encoded on demand is reused by the job."""
    inputs = synthetic(n_train=2)
    inputs["train_rows"], inputs["val_rows"] = np.array([0, 1]), np.array([], dtype=np.int64)
    store = RerankStore.start(TimelineData(index_cache=IndexCache(tmp_path), **inputs))
    assert store.migrate(np.array([2, 3])) == 4  # 2 pairs + 2 migrated
    candidates = np.array([[0, 2, 4, 5], [4, 6, 7, -1]])
    fallback = np.tile(np.arange(K), (2, 1))
    _, cold = store.serve("r", candidates, fallback, inputs["q_new"][:2], K)
    assert cold == 4  # 4, 5, then 6, 7: 0 is a pair, 2 migrated, 4 reused by query 1
    assert store.migrate(np.array([2, 3, 4, 6, 8])) == 5  # pairs + 2, 3, 8; 4 and 6 reused
    assert store.serve("r", candidates, fallback, inputs["q_new"][:2], K)[1] == 0
    assert store.serve("r", np.array([[9, 5, 9, 8]]), fallback[:1], inputs["q_new"][:1], K)[1] == 1
    assert store.documents.n_encoded == 5 + 5  # background + on demand: each row once


def test_until_complete_extends_the_hours(tmp_path) -> None:
    assert TimelineConfig(hours=4, rate=0.1).hour_grid().tolist() == list(range(11))
    assert TimelineConfig(hours=4, rate=0.1, until_complete=False).hour_grid().tolist() == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert TimelineConfig(hours=2, step_hours=0.5, rate=1).hour_grid().tolist() == [
        0,
        0.5,
        1,
        1.5,
        2,
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"hours": 0},
        {"step_hours": -1},
        {"hours": 5, "step_hours": 2},
        {"rate": -0.1},
        {"rate": float("nan")},
        {"rate": 0},
        {"order": "popularity"},
        {"order": "alphabetical"},
        {"merge": "max"},
        {"modes": []},
        {"modes": ["adapter_refit", "adapter_refit"]},
        {"modes": ["reindex_now"]},
        {"adapter": {"kind": "nonexistent"}},
        {"adapter": {"kind": "procrustes", "rank": 3}},
        {"adapter": "procrustes"},
        {"folds": 1},
        {"rerank_k": 0},
        {"rerank_k": True},
        {"rerank_k": 2.5},
    ],
)
def test_bad_config_raises(bad: dict) -> None:
    with pytest.raises(ConfigError):
        TimelineConfig(**bad)


def test_from_dict_rejects_unknown_keys_and_bad_inputs(tmp_path) -> None:
    assert TimelineConfig.from_dict({"rate": 0.1}).modes == list(MODES)
    with pytest.raises(ConfigError, match="unknown timeline setting"):
        TimelineConfig.from_dict({"rate": 0.1, "refit_every": 2})
    inputs = synthetic(n_train=20)
    with pytest.raises(VectorError, match="excluded"):
        steps(TimelineConfig(), {**inputs, "excluded": np.zeros(N - 1, dtype=bool)}, tmp_path)
    with pytest.raises(VectorError, match="train_rows"):
        steps(TimelineConfig(), {**inputs, "train_rows": np.array([0, N])}, tmp_path)
    with pytest.raises(ConfigError, match="k must be at least"):
        steps(TimelineConfig(), {**inputs, "k": 5}, tmp_path)


def test_cost_curves_price_a_rerank_mode_by_its_own_encodes():
    from pathlib import Path

    from drift.core.records import ResultRecord
    from drift.migration.measured import timeline_curves

    quality = {"ndcg@10": {"mean": [0.5, 0.5]}}
    timeline = {
        "hours": [0, 1],
        "n_corpus": 100,
        "share_migrated": [0.0, 0.1],
        "new_doc_encodes": [10, 20],  # the background job's (and the pairs')
        "references": {"full_reindex": {"ndcg@10": {"mean": [1.0, 1.0]}}},
        "modes": {
            "backfill_status_quo": dict(quality),
            "rerank_status_quo": {**quality, "new_doc_encodes": [90, 92]},
        },
    }
    curves = timeline_curves([ResultRecord(Path("run.json"), {"timeline": timeline})], "ndcg@10")
    assert curves["backfill_status_quo"]["share_encoded"] == [0.1, 0.2]
    assert curves["rerank_status_quo"]["share_encoded"] == [0.9, 0.92]

"""drift.timeline on a synthetic drift (no model involved; flat indexes).

The synthetic pair: "new" vectors are random unit vectors; "old" vectors are a noisy orthogonal
projection of them to fewer dimensions, so a Procrustes adapter can recover most of the drift
given enough pairs, and few pairs leave it underdetermined.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from drift.errors import ConfigError, VectorError
from drift.index import IndexCache, IndexSpec, build_index, exact_search
from drift.strategies import dual_index
from drift.timeline import (
    MODES,
    TimelineConfig,
    TimelineData,
    run_timeline,
    summarise_timeline,
    timeline_steps,
)
from drift.vectors import l2_normalize

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

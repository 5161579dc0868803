"""drift/adapters/ranking.py: adapters trained to rank, on planted drifts whose answer is known
(synthetic vectors, not real models)."""

from __future__ import annotations

import warnings

import faiss
import numpy as np
import pytest

from drift.adapters import build_adapter, ranking
from drift.adapters.ranking import neighbours, recall_at
from drift.core.errors import ConfigError
from drift.core.vectors import l2_normalize
from drift.serving import runtime as serving
from drift.serving.export import export_adapter, faiss_pretransform

pytest.importorskip("torch")

N_CORPUS, N_QUERIES, N_PAIRS = 1000, 200, 600  # pairs: 480 train / 120 validation
FAST = {"lr": 0.5, "temperature": 0.02, "max_epochs": 60, "patience": 5}


def sphere(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    return l2_normalize(rng.standard_normal((n, d)))


def planted(w_new: tuple[float, float], w_old: tuple[float, float], seed: int = 0):
    """Items with two unit-norm latent parts a (12-d) and b (6-d); each model sees
    [w_a a, w_b b] through its own random orthonormal embedding (48-d new, 32-d old). Every item's
    norm before normalising is the same, so the best old-space query for the new model's
    neighbourhoods is a linear map of the new vector. Returns corpus (new, old), queries (new),
    and the new model's exact top 10 of each query."""
    rng = np.random.default_rng(seed)
    m = N_CORPUS + N_QUERIES
    a, b = sphere(rng, m, 12), sphere(rng, m, 6)
    embed_new = np.linalg.qr(rng.standard_normal((48, 18)))[0]
    embed_old = np.linalg.qr(rng.standard_normal((32, 18)))[0]
    new = l2_normalize(np.hstack([w_new[0] * a, w_new[1] * b]) @ embed_new.T)
    old = l2_normalize(np.hstack([w_old[0] * a, w_old[1] * b]) @ embed_old.T)
    x_new, x_old, q_new = new[:N_CORPUS], old[:N_CORPUS], new[N_CORPUS:]
    return x_new, x_old, q_new, neighbours(q_new, x_new, 10)


def fitted(kind: str, x_new, x_old, **hparams):
    split = int(0.8 * N_PAIRS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer pairs than dimensions is not what is tested
        return build_adapter(kind, **hparams).fit(
            x_new[:split],
            x_old[:split],
            x_new_val=x_new[split:N_PAIRS],
            x_old_val=x_old[split:N_PAIRS],
            seed=0,
        )


def recall(adapter, q_new, x_old, truth) -> float:
    return recall_at(neighbours(adapter.transform(q_new), x_old, 10), truth)


@pytest.fixture(scope="module")
def reweighted():
    """The old model weighs the part b, which the new model nearly ignores, 5x more than a:
    a regression adapter reproduces the old vectors and so the old neighbourhoods; the best query
    weighs a alone."""
    return planted(w_new=(1.0, 0.3), w_old=(0.2, 1.0))


def test_ranking_recovers_the_new_neighbourhoods_where_regression_adapters_fail(reweighted):
    x_new, x_old, q_new, truth = reweighted
    op = recall(fitted("procrustes", x_new, x_old), q_new, x_old, truth)
    ridge = recall(fitted("ridge", x_new, x_old), q_new, x_old, truth)
    linear = fitted("ranking_linear", x_new, x_old, **FAST)
    mlp = fitted("ranking_mlp", x_new, x_old, hidden=32, **FAST)
    assert op < 0.3 and ridge < 0.3, (op, ridge)
    assert recall(linear, q_new, x_old, truth) > op + 0.4, (op, linear.fit_info["val_curve"])
    assert recall(mlp, q_new, x_old, truth) > op + 0.3
    # epoch 0 is the OP start; the kept epoch improved on it on the validation pairs
    assert linear.fit_info["best_epoch"] > 0
    assert linear.fit_info["best_val_recall"] > linear.fit_info["val_curve"][0] + 0.3


def test_both_succeed_on_a_rotation_and_ranking_keeps_the_op_start():
    x_new, x_old, q_new, truth = planted(w_new=(1.0, 0.5), w_old=(1.0, 0.5))
    op = fitted("procrustes", x_new, x_old)
    for kind, extra in [("ranking_linear", {}), ("ranking_low_rank", {"rank": 4})]:
        adapter = fitted(kind, x_new, x_old, **FAST, **extra)
        assert recall(adapter, q_new, x_old, truth) >= 0.99
        assert adapter.fit_info["best_epoch"] == 0  # no epoch beats OP's perfect start
        np.testing.assert_allclose(adapter.transform(q_new), op.transform(q_new), atol=1e-5)
    assert recall(op, q_new, x_old, truth) >= 0.99


def test_a_temperature_grid_is_chosen_on_the_validation_recall(reweighted):
    x_new, x_old, _, _ = reweighted
    grid = {**FAST, "temperature": [0.02, 0.5], "max_epochs": 10, "probe_epochs": 2}
    adapter = fitted("ranking_linear", x_new, x_old, **grid)
    chosen = adapter.fit_info["temperature"]
    assert chosen["grid"] == [0.02, 0.5] and chosen["probe_epochs"] == 2
    probed = chosen["recall@10/val_after_probe"]
    assert chosen["chosen"] == grid["temperature"][int(np.argmax(probed))]
    assert adapter.fit_info["temperature_used"] == chosen["chosen"]
    # The chosen value trained on past the probe, from where its probe stopped: the same fit as
    # that temperature alone (same seed, same steps).
    alone = fitted("ranking_linear", x_new, x_old, **{**grid, "temperature": chosen["chosen"]})
    assert adapter.fit_info["epochs_run"] == alone.fit_info["epochs_run"] > 2
    assert adapter.fit_info["val_curve"] == alone.fit_info["val_curve"]
    assert max(probed) == max(alone.fit_info["val_curve"][:3])


def test_same_seed_same_weights_and_distillation_runs(reweighted):
    x_new, x_old, _, _ = reweighted
    settings = {**FAST, "max_epochs": 3, "distill": 0.5}
    a = fitted("ranking_linear", x_new, x_old, **settings)
    b = fitted("ranking_linear", x_new, x_old, **settings)
    for key, value in a.params().items():
        np.testing.assert_array_equal(value, b.params()[key])
    assert np.isfinite(a.fit_info["train_curve"]).all()


@pytest.mark.parametrize(
    ("kind", "extra"), [("ranking_linear", {}), ("ranking_low_rank", {"rank": 4})]
)
def test_linear_forms_fold_into_the_faiss_pre_transform(reweighted, kind, extra, tmp_path):
    x_new, x_old, q_new, _ = reweighted
    adapter = fitted(kind, x_new, x_old, **{**FAST, "max_epochs": 3}, **extra)
    export_adapter(adapter, tmp_path, old_model="old", new_model="new")
    served = serving.load(tmp_path)
    np.testing.assert_allclose(served.apply(q_new), adapter.transform(q_new), atol=1e-6)
    index = faiss.IndexFlatIP(x_old.shape[1])
    index.add(x_old)
    _, ids = faiss_pretransform(served, index).search(q_new, 10)
    _, ref = index.search(adapter.transform(q_new), 10)
    np.testing.assert_array_equal(ids, ref)


def test_the_mlp_form_exports_for_numpy_serving(reweighted, tmp_path):
    x_new, x_old, q_new, _ = reweighted
    adapter = fitted("ranking_mlp", x_new, x_old, hidden=8, **{**FAST, "max_epochs": 2})
    export_adapter(adapter, tmp_path, old_model="old", new_model="new")
    np.testing.assert_allclose(
        serving.load(tmp_path).apply(q_new), adapter.transform(q_new), atol=1e-6
    )


@pytest.mark.parametrize(
    ("hparams", "match"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": []}, "temperature"),
        ({"n_positives": 0}, "n_positives"),
        ({"probe_epochs": 0}, "probe_epochs"),
        ({"lr": 0}, "lr > 0"),
        ({"distill": -1}, "distill"),
    ],
)
def test_bad_settings_are_refused(hparams, match):
    with pytest.raises(ConfigError, match=match):
        build_adapter("ranking_linear", **hparams)


def test_too_few_pairs_and_a_too_high_rank_are_refused():
    rng = np.random.default_rng(3)
    x, y = sphere(rng, 30, 8), sphere(rng, 30, 6)
    with pytest.raises(ConfigError, match="n_positives"):
        build_adapter("ranking_linear", n_positives=25).fit(x, y)
    with pytest.raises(ConfigError, match="rank 7 exceeds"):
        build_adapter("ranking_low_rank", rank=7).fit(x, y)


def test_neighbours_leave_each_item_out_of_its_own_list():
    rng = np.random.default_rng(4)
    x = sphere(rng, 50, 5)
    found = neighbours(x, x, 3, self_rows=np.arange(50))
    assert not (found == np.arange(50)[:, None]).any()
    exact = np.argsort(-(x @ x.T - 10 * np.eye(50)), axis=1)[:, :3]
    assert recall_at(found, exact) == 1.0


def test_a_sampled_candidate_set_still_learns_the_planted_map(reweighted):
    x_new, x_old, q_new, truth = reweighted
    op = recall(fitted("procrustes", x_new, x_old), q_new, x_old, truth)
    sampled = fitted("ranking_linear", x_new, x_old, **FAST, max_candidates=100)
    assert sampled.hparams()["max_candidates"] == 100
    assert recall(sampled, q_new, x_old, truth) > op + 0.3


def test_validation_scores_at_most_val_queries_pseudo_queries(reweighted, monkeypatch):
    x_new, x_old, _, _ = reweighted
    monkeypatch.setattr(ranking, "VAL_QUERIES", 50)
    adapter = fitted("ranking_linear", x_new, x_old, **{**FAST, "max_epochs": 1})
    assert adapter.fit_info["val_metric"].startswith("recall@10 of 50 validation pseudo-queries")
    assert "among 600 pair items" in adapter.fit_info["val_metric"]

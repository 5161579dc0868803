"""Routed adapters (one base adapter per k-means cluster of the old space) and the synthetic
heterogeneous drift they are meant for. All data here is synthetic: seeded random vectors with
planted maps, or the synthetic drift encoders."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from drift.adapters import build_adapter, load_adapter
from drift.cli.config import compose, to_plain
from drift.core.errors import ConfigError
from drift.core.vectors import l2_normalize
from drift.encoders.synthetic import Drift, LatentSpace, SyntheticEncoder, SyntheticModel
from drift.experiment.fitting import build_adapters


def orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((d, d)))[0]


def planted(n: int, d: int = 32, seed: int = 0, spread: float = 1.0):
    """Old vectors in two well-separated clusters; each cluster's new vectors are its old ones
    turned by its own random orthogonal map. Returns (x_new, x_old, cluster labels)."""
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.standard_normal((2, d)))
    centres[1] -= (centres[1] @ centres[0]) * centres[0]  # orthogonal centres: far apart
    centres = l2_normalize(centres)
    labels = rng.integers(0, 2, n)
    x_old = l2_normalize(centres[labels] + spread * rng.standard_normal((n, d)) / np.sqrt(d))
    maps = [orthogonal(rng, d), orthogonal(rng, d)]
    x_new = np.empty_like(x_old)
    for k, rot in enumerate(maps):
        x_new[labels == k] = x_old[labels == k] @ rot  # old = new @ rot.T
    return x_new, x_old, labels


def held_out_cosine(adapter, x_new: np.ndarray, x_old: np.ndarray) -> float:
    return float(np.mean(np.sum(adapter.transform(x_new) * x_old, axis=1)))


@pytest.mark.parametrize(
    ("base", "hparams"), [("procrustes", {}), ("low_rank_affine", {"rank": 8})]
)
def test_one_cluster_is_exactly_the_global_adapter(base, hparams):
    x_new, x_old, _ = planted(600)
    fit = {"x_new_val": x_new[400:500], "x_old_val": x_old[400:500], "seed": 7}
    single = build_adapter(base, **hparams).fit(x_new[:400], x_old[:400], **fit)
    routed = build_adapter("routed", base=base, base_hparams=hparams, n_clusters=1)
    routed.fit(x_new[:400], x_old[:400], **fit)
    np.testing.assert_array_equal(routed.transform(x_new[500:]), single.transform(x_new[500:]))
    assert routed.fit_info["uses_global"] == [0] and routed.fit_info["cluster_sizes"] == [400]


def test_routing_recovers_a_planted_heterogeneous_drift():
    x_new, x_old, labels = planted(3000)
    train, val, test = slice(0, 2000), slice(2000, 2400), slice(2400, None)
    fit = {"x_new_val": x_new[val], "x_old_val": x_old[val], "seed": 1}
    glob = build_adapter("procrustes").fit(x_new[train], x_old[train], **fit)
    routed = build_adapter("routed", base="procrustes", n_clusters=2)
    routed.fit(x_new[train], x_old[train], **fit)
    cos_global = held_out_cosine(glob, x_new[test], x_old[test])
    cos_routed = held_out_cosine(routed, x_new[test], x_old[test])
    assert cos_routed > 0.999 and cos_global < 0.85, (cos_routed, cos_global)
    info = routed.fit_info
    assert info["uses_global"] == [] and sorted(info["cluster_sizes"]) == sorted(
        np.bincount(labels[train]).tolist()
    )
    assert info["route_agreement/val"] == 1.0 and info["cosine/val"] > 0.999
    for c in (0, 1):  # each cluster's own map beats the global one on its validation pairs
        assert info[f"cluster{c}"]["cosine/val"] > info[f"cluster{c}"]["global_cosine/val"] + 0.05
    # the same seed gives the same clusters and maps
    again = build_adapter("routed", base="procrustes", n_clusters=2)
    again.fit(x_new[train], x_old[train], **fit)
    np.testing.assert_array_equal(again.transform(x_new[test]), routed.transform(x_new[test]))


def test_small_clusters_fall_back_to_the_global_adapter():
    x_new, x_old, labels = planted(700)
    keep = np.concatenate([np.flatnonzero(labels == 0)[:500], np.flatnonzero(labels == 1)[:60]])
    routed = build_adapter("routed", base="procrustes", n_clusters=2, min_pairs=100)
    routed.fit(x_new[keep], x_old[keep], seed=0)
    small = int(np.argmin(routed.fit_info["cluster_sizes"]))
    assert routed.fit_info["uses_global"] == [small]
    assert set(routed.fit_info) >= {f"cluster{1 - small}", "global"}
    assert f"cluster{small}" not in routed.fit_info
    # queries of the small cluster get the global map's answer
    glob = build_adapter("procrustes").fit(x_new[keep], x_old[keep], seed=0)
    queries = x_new[np.flatnonzero(labels == 1)[60:]]
    np.testing.assert_array_equal(routed.transform(queries), glob.transform(queries))


def test_save_load_round_trip_without_pickle(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    x_new, x_old, _ = planted(900, d=24)
    x_new = l2_normalize(np.hstack([x_new, 0.1 * rng.standard_normal((900, 12))]))  # 36 -> 24
    # 800 pairs in 4 clusters: at least one has fewer than 201 pairs and uses the global adapter
    adapter = build_adapter(
        "routed", base="low_rank_affine", base_hparams={"rank": 4}, n_clusters=4, min_pairs=201
    ).fit(x_new[:800], x_old[:800], x_new_val=x_new[800:850], x_old_val=x_old[800:850], seed=5)
    assert adapter.fit_info["uses_global"] and len(adapter.fit_info["uses_global"]) < 4
    assert "global/left" in adapter.params() and "centroids" in adapter.params()
    adapter.save(tmp_path)

    def no_pickle(*args, **kwargs):
        raise AssertionError("load_adapter must not unpickle anything")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    loaded = load_adapter(tmp_path)
    assert loaded.hparams() == adapter.hparams() and loaded.n_params == adapter.n_params
    assert (loaded.d_in, loaded.d_out) == (36, 24)
    subs = [loaded._global, *loaded._clusters.values()]
    assert all((sub.d_in, sub.d_out) == (36, 24) for sub in subs)
    np.testing.assert_array_equal(loaded.transform(x_new[850:]), adapter.transform(x_new[850:]))


@pytest.mark.parametrize(
    ("hparams", "match"),
    [
        ({"n_clusters": 0}, "n_clusters must be an integer >= 1"),
        ({"n_clusters": 2.5}, "n_clusters must be an integer"),
        ({"min_pairs": 1}, "min_pairs must be an integer >= 2"),
        ({"kmeans_iter": 0}, "kmeans_iter"),
        ({"base": "routed"}, "base cannot be 'routed'"),
        ({"base": "nope"}, "unknown adapter 'nope'"),
        ({"base_hparams": {"rank": 4}}, "routed: base 'procrustes'.*rank"),
        ({"base_hparams": {"dsm": True}, "dsm": False}, "contradicts"),
        ({"base_hparams": [1, 2]}, "base_hparams must be a mapping"),
    ],
)
def test_bad_hparams_are_config_errors(hparams, match):
    with pytest.raises(ConfigError, match=match):
        build_adapter("routed", **hparams)


def test_more_clusters_than_pairs_is_a_config_error():
    x_new, x_old, _ = planted(10)
    with pytest.raises(ConfigError, match="12 clusters but only 10 training pairs"):
        build_adapter("routed", n_clusters=12).fit(x_new, x_old)


def test_built_by_the_experiment_with_and_without_dsm():
    adapters = build_adapters(
        {"methods": {"routed": {"base": "procrustes", "n_clusters": 2}}, "dsm": [False, True]}
    )
    assert set(adapters) == {"routed", "routed+dsm"}
    assert adapters["routed"].base_hparams["dsm"] is False
    assert adapters["routed+dsm"].base_hparams["dsm"] is True
    x_new, x_old, _ = planted(500)
    for adapter in adapters.values():
        adapter.fit(x_new[:400], x_old[:400], seed=0)
        assert held_out_cosine(adapter, x_new[400:], x_old[400:]) > 0.99
    assert "cluster0/dsm_scale" in adapters["routed+dsm"].params()


def test_experiment_gives_routed_adapters_their_global_twins_settings():
    for base in ("procrustes", "residual_mlp"):
        cfg = to_plain(
            compose(["experiment=routed_adapters", f"adapter.methods.routed.base={base}"])
        )
        methods = cfg["adapter"]["methods"]
        assert methods["routed"]["base_hparams"] == methods[base]
        build_adapters(cfg["adapter"])  # every adapter of the file builds


# -- the synthetic heterogeneous drift ------------------------------------------------------------
def test_synthetic_regimes_are_a_drift_one_global_rotation_cannot_undo():
    space = LatentSpace(latent_dim=32, n_clusters=8)
    ids = [f"item{i}" for i in range(2400)]
    old = SyntheticModel(space, 64).encode(ids)
    new = SyntheticModel(space, 96, Drift(rotation=1.0, regimes=2)).encode(ids)
    region = space.regions(2)[space.cluster(ids)]
    assert np.bincount(region).min() > 0.3 * len(ids)  # two regions of 4 components each
    train, test = np.arange(2000), np.arange(2000, 2400)
    glob = build_adapter("procrustes").fit(new[train], old[train], seed=0)
    routed = build_adapter("routed", n_clusters=2).fit(new[train], old[train], seed=0)
    cos_global = held_out_cosine(glob, new[test], old[test])
    cos_routed = held_out_cosine(routed, new[test], old[test])
    # the ceiling: each region mapped by a Procrustes fit on that region's pairs alone (below 1:
    # the synthetic projections are not isometries at these small dimensions)
    ceiling = np.empty(len(test), dtype=np.float32)
    for r in (0, 1):
        fit, rows = train[region[train] == r], test[region[test] == r]
        alone = build_adapter("procrustes").fit(new[fit], old[fit])
        ceiling[region[test] == r] = np.sum(alone.transform(new[rows]) * old[rows], axis=1)
    assert cos_routed > ceiling.mean() - 0.01, (cos_routed, ceiling.mean())
    assert cos_routed > cos_global + 0.05, (cos_routed, cos_global)


def test_synthetic_regimes_options_and_revisions():
    single = SyntheticEncoder("new", 24, level=0.5)
    assert "regimes" not in single.revision  # revisions made before the option still hold
    two = SyntheticEncoder("new", 24, level=0.5, regimes=2)
    assert two.revision == single.revision + ",regimes=2"
    assert np.abs(two.encode(["a", "b", "c"]) - single.encode(["a", "b", "c"])).max() > 0.01
    with pytest.raises(ConfigError, match="needs rotation > 0"):
        Drift(regimes=2)
    with pytest.raises(ConfigError, match="regimes must be an integer >= 1"):
        Drift(rotation=0.5, regimes=0)
    with pytest.raises(ConfigError, match="exceeds the latent space's 4 mixture components"):
        SyntheticModel(LatentSpace(n_clusters=4), 8, Drift(rotation=0.5, regimes=5))
    with pytest.raises(ConfigError, match="role=new only"):
        SyntheticEncoder("old", 24, regimes=2, rotation=0.5)

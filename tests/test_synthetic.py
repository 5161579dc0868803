"""The synthetic drift generator, its encoder and its dataset."""

from __future__ import annotations

import numpy as np
import pytest

from drift.core.errors import ConfigError
from drift.data import load_data
from drift.encoders import Encoder, build_encoder
from drift.encoders.synthetic import (
    Drift,
    LatentSpace,
    SyntheticEncoder,
    SyntheticModel,
    item_normals,
    paired_vectors,
)

IDS = [f"item{i}" for i in range(600)]


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each item's k nearest neighbours that the two spaces agree on."""

    def knn(x: np.ndarray) -> np.ndarray:
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1)[:, :k]

    return float(np.mean([len(set(p) & set(q)) / k for p, q in zip(knn(a), knn(b), strict=True)]))


def test_vectors_are_a_function_of_id_and_seed_only() -> None:
    model = SyntheticModel(LatentSpace(seed=1), 48, Drift.at_level(0.7))
    full = model.encode(IDS)
    subset = model.encode(IDS[::-7])  # another subset, another order, same vectors
    np.testing.assert_array_equal(subset, full[::-7])
    np.testing.assert_array_equal(
        SyntheticModel(LatentSpace(seed=1), 48, Drift.at_level(0.7)).encode(IDS), full
    )
    other_seed = SyntheticModel(LatentSpace(seed=2), 48, Drift.at_level(0.7)).encode(IDS)
    assert np.abs(other_seed - full).max() > 0.1
    assert full.dtype == np.float32 and full.shape == (600, 48)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)


def test_level_zero_is_the_identity_and_dims_are_respected() -> None:
    old, new = paired_vectors(300, d_old=40, d_new=40, drift=Drift.at_level(0.0))
    np.testing.assert_array_equal(old, new)
    old, new = paired_vectors(300, d_old=40, d_new=72, drift=Drift.at_level(0.0))
    assert (old.shape, new.shape) == ((300, 40), (300, 72))
    # a bigger new model keeps the old coordinates (before normalisation) and adds more
    ratio = new[:, :40] / old
    np.testing.assert_allclose(ratio, ratio[:, :1] * np.ones((1, 40)), rtol=1e-4)


def test_drift_level_lowers_knn_overlap_and_cosine_monotonically() -> None:
    overlaps, cosines = [], []
    for level in (0.0, 0.25, 0.5, 0.75, 1.0):
        old, new = paired_vectors(1000, d_old=64, d_new=64, drift=Drift.at_level(level))
        overlaps.append(knn_overlap(old, new))
        cosines.append(float(np.mean(np.sum(old * new, axis=1))))
    assert overlaps[0] == 1.0 and cosines[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(overlaps, overlaps[1:], strict=False)), overlaps
    assert all(a > b for a, b in zip(cosines, cosines[1:], strict=False)), cosines
    assert overlaps[-1] < 0.45 and abs(cosines[-1]) < 0.05


def test_pure_rotation_is_orthogonal_and_keeps_neighbours() -> None:
    old, new = paired_vectors(400, d_old=64, d_new=64, drift=Drift(rotation=1 / 3))
    np.testing.assert_allclose(np.sum(old * new, axis=1), np.cos(np.pi / 6), atol=1e-5)
    np.testing.assert_allclose(new @ new.T, old @ old.T, atol=1e-5)  # an isometry
    # an orthogonal map recovers it exactly (Procrustes)
    u, _, vt = np.linalg.svd(new.T @ old)
    np.testing.assert_allclose(new @ (u @ vt), old, atol=1e-4)


@pytest.mark.parametrize(
    ("drift", "linear_recovers"),
    [(Drift(anisotropy=0.8), True), (Drift(warp=1.0), False), (Drift(noise=0.8), False)],
)
def test_single_planted_drifts(drift: Drift, linear_recovers: bool) -> None:
    space = LatentSpace(latent_dim=16)  # outputs of 32 dims hold the whole latent
    old, new = paired_vectors(1500, d_old=32, d_new=48, drift=drift, space=space)
    assert knn_overlap(old, new) < 0.9  # each component changes the neighbourhoods
    weights, *_ = np.linalg.lstsq(new, old, rcond=None)  # the best linear map, least squares
    fitted = new @ weights
    fitted /= np.linalg.norm(fitted, axis=1, keepdims=True)
    error = float(np.mean(1 - np.sum(fitted * old, axis=1)))
    # (least squares on unit vectors is not exact even for a linear drift: rows scale apart)
    assert error < 0.02 if linear_recovers else error > 0.1, error


def test_item_normals_look_standard_normal() -> None:
    z = item_normals([str(i) for i in range(4000)], "k", 5)
    assert z.shape == (4000, 5)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert np.abs(np.corrcoef(z.T) - np.eye(5)).max() < 0.05


def test_encoder_protocol_and_revision() -> None:
    old = build_encoder({"type": "synthetic", "role": "old", "dim": 24})
    new = build_encoder({"type": "synthetic", "role": "new", "dim": 24, "level": 0.5})
    assert isinstance(old, Encoder) and isinstance(new, Encoder)
    assert (old.name, new.name, old.modality, old.real_weights) == (
        "synthetic/old",
        "synthetic/new",
        "synthetic",
        False,
    )
    assert "d=24" in old.revision and "rotation=0.5" in new.revision
    assert "rotation" not in old.revision  # the old cache does not depend on the new's drift
    planted = SyntheticEncoder("new", 24, level=0.5, warp=0.0)
    assert planted.drift.warp == 0.0 and planted.revision != new.revision
    vectors = new.encode(["a", "b"], role="query")
    np.testing.assert_array_equal(vectors, new.encode(["a", "b"], role="document"))
    with pytest.raises(ConfigError, match="role=new only"):
        SyntheticEncoder("old", 24, level=0.3)
    with pytest.raises(ConfigError, match="level must lie in"):
        SyntheticEncoder("new", 24, level=1.5)
    with pytest.raises(ConfigError, match="role must be"):
        SyntheticEncoder("newer", 24)


def test_synthetic_dataset(tmp_path) -> None:
    spec = {"type": "synthetic", "n_corpus": 50, "n_queries": 5, "data_seed": None}
    data = load_data(spec, seed=3, data_dir=tmp_path)
    assert (len(data.corpus), len(data.queries), data.qrels) == (50, 5, None)
    assert data.synthetic and data.corpus_modality == data.query_modality == "synthetic"
    assert data.corpus == data.corpus_ids and not set(data.corpus) & set(data.queries)
    assert load_data(spec, seed=4, data_dir=tmp_path).corpus_ids != data.corpus_ids
    fixed = {**spec, "data_seed": 0}
    assert (
        load_data(fixed, seed=3, data_dir=tmp_path).corpus_ids
        == load_data(fixed, seed=4, data_dir=tmp_path).corpus_ids
    )

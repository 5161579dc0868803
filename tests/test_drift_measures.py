"""Drift measures between two spaces on planted cases."""

from __future__ import annotations

import numpy as np
import pytest

from drift.core.vectors import l2_normalize
from drift.scoring.drift_measures import drift_measures, mean_pairwise_cosine


def test_a_rotation_is_no_drift_and_unrelated_spaces_are():
    rng = np.random.default_rng(0)
    x = l2_normalize(rng.standard_normal((300, 32)))
    rotation = np.linalg.qr(rng.standard_normal((32, 32)))[0]
    same = drift_measures(x, x @ rotation, seed=1)
    assert same["knn_overlap@10"] == pytest.approx(1.0)
    assert same["linear_cka"] == pytest.approx(1.0)
    unrelated = drift_measures(x, l2_normalize(rng.standard_normal((300, 32))), seed=1)
    assert unrelated["knn_overlap@10"] < 0.2 and unrelated["linear_cka"] < 0.2


def test_mean_pairwise_cosine_by_hand():
    assert mean_pairwise_cosine(np.eye(4)) == pytest.approx(0.0)
    assert mean_pairwise_cosine(np.ones((5, 3)) * 2.0) == pytest.approx(1.0)
    three = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # cosines 0, 1/sqrt2, 1/sqrt2
    assert mean_pairwise_cosine(three) == pytest.approx(np.sqrt(2) / 3)
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_cosine(np.ones((1, 3)))


def test_a_shared_direction_shows_as_anisotropy_not_as_drift():
    rng = np.random.default_rng(2)
    x = l2_normalize(rng.standard_normal((400, 16)))
    shifted = l2_normalize(x + 2.0 * np.eye(16)[0])  # every vector pulled towards one axis
    measured = drift_measures(x, shifted, seed=0)
    assert measured["mean_cosine_old"] < 0.05 < 0.5 < measured["mean_cosine_new"]
    assert measured["knn_overlap@10"] > 0.6 and measured["linear_cka"] > 0.9

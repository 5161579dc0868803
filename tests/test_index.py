"""drift.retrieval.index on synthetic vectors (random unit vectors; no model involved)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from drift.core.errors import ConfigError, DataError, VectorError
from drift.core.vectors import l2_normalize
from drift.retrieval.index import IndexCache, IndexSpec, build_index, exact_search, search


def unit_vectors(n: int, d: int, seed: int) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return unit_vectors(300, 16, seed=0)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return unit_vectors(20, 16, seed=1)


def brute_force(corpus: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :k]


def test_flat_returns_the_exact_neighbours(corpus, queries):
    spec = IndexSpec(kind="flat", device="cpu")
    scores, ids = search(build_index(corpus, spec), queries, 10, spec)
    np.testing.assert_array_equal(ids, brute_force(corpus, queries, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ corpus.T, ids, 1), atol=1e-5)
    assert ids.dtype == np.int64


def test_hnsw_with_a_wide_search_equals_flat(corpus, queries):
    spec = IndexSpec(kind="hnsw", ef_search=300, device="cpu")
    _, ids = search(build_index(corpus, spec), queries, 10, spec)
    _, exact = exact_search(corpus, queries, 10, device="cpu")
    np.testing.assert_array_equal(ids, exact)


def test_ivfpq_clamps_nlist_and_finds_most_neighbours(corpus, queries):
    spec = IndexSpec(kind="ivfpq", nlist=1024, pq_m=4, nprobe=1024, device="cpu")
    with pytest.warns(UserWarning, match="nlist is clamped"):
        index = build_index(corpus, spec)
    assert index.nlist == 300 // 39
    _, ids = search(index, queries, 10, spec)
    _, exact = exact_search(corpus, queries, 10, device="cpu")
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact, strict=True)])
    assert overlap > 0.5  # PQ codes are lossy; all lists are probed


def test_ivfpq_rejects_bad_settings(corpus):
    with pytest.raises(ConfigError, match="pq_m=5 must divide"):
        build_index(corpus, IndexSpec(kind="ivfpq", pq_m=5, device="cpu"))
    with pytest.raises(DataError, match="at least 256 vectors"):
        build_index(corpus[:100], IndexSpec(kind="ivfpq", pq_m=4, device="cpu"))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_k_beyond_the_corpus_pads_with_minus_one(kind):
    small = unit_vectors(5, 8, seed=2)
    spec = IndexSpec(kind=kind, device="cpu")
    _, ids = search(build_index(small, spec), small[:2], 8, spec)
    assert ids.shape == (2, 8)
    assert (ids[:, 5:] == -1).all()
    assert sorted(ids[0, :5]) == list(range(5))


def test_bad_inputs_raise_clear_errors(corpus):
    with pytest.raises(ConfigError, match="index kind 'annoy' is unknown"):
        IndexSpec(kind="annoy")
    with pytest.raises(ConfigError, match="ef_search must be a positive integer"):
        IndexSpec(ef_search=0)
    with pytest.raises(ConfigError, match="unknown index setting"):
        IndexSpec.from_dict({"kind": "hnsw", "efsearch": 10})
    spec = IndexSpec(kind="flat", device="cpu")
    index = build_index(corpus, spec)
    with pytest.raises(VectorError, match="expected dimension 16"):
        search(index, unit_vectors(2, 8, seed=3), 5, spec)
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        search(index, corpus[:2], 0, spec)


def test_cache_hits_on_the_second_call_and_misses_on_changes(tmp_path, corpus, queries):
    cache = IndexCache(tmp_path)
    spec = IndexSpec(kind="hnsw", m=8, device="cpu")
    first, info1 = cache.get_or_build(corpus, spec)
    second, info2 = cache.get_or_build(corpus, spec)
    assert (info1["cached"], info2["cached"]) == (False, True)
    assert info1["key"] == info2["key"] and info2["build_seconds"] == info1["build_seconds"]
    np.testing.assert_array_equal(
        search(first, queries, 5, spec)[1], search(second, queries, 5, spec)[1]
    )
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind

    # A search-time field does not change the index, so it reuses it ...
    assert cache.get_or_build(corpus, IndexSpec(kind="hnsw", m=8, ef_search=99, device="cpu"))[1][
        "cached"
    ]
    # ... while a build field, the kind, or the vectors do not.
    assert not cache.get_or_build(corpus, IndexSpec(kind="hnsw", m=16, device="cpu"))[1]["cached"]
    assert not cache.get_or_build(corpus, IndexSpec(kind="flat", device="cpu"))[1]["cached"]
    changed = corpus.copy()
    changed[0] = changed[1]
    assert not cache.get_or_build(changed, spec)[1]["cached"]


def test_cache_rebuilds_a_corrupt_file(tmp_path, corpus):
    cache = IndexCache(tmp_path)
    spec = IndexSpec(kind="flat", device="cpu")
    _, info = cache.get_or_build(corpus, spec)
    with open(info["path"], "r+b") as handle:
        handle.truncate(100)
    with pytest.warns(UserWarning, match="does not match the sha256"):
        index, again = cache.get_or_build(corpus, spec)
    assert not again["cached"] and index.ntotal == corpus.shape[0]
    assert cache.get_or_build(corpus, spec)[1]["cached"]


def test_cache_rebuilds_an_index_overwritten_in_place(tmp_path, corpus, queries):
    """Same size, still parses, answers wrongly: caught by the checksum written beside it."""
    cache = IndexCache(tmp_path)
    spec = IndexSpec(kind="flat", device="cpu")
    built, info = cache.get_or_build(corpus, spec)
    path = Path(info["path"])
    raw = bytearray(path.read_bytes())
    raw[-4096:] = bytes(4096)  # zero the last vectors' bytes
    path.write_bytes(bytes(raw))
    assert faiss.read_index(str(path)).ntotal == corpus.shape[0]  # it still loads
    with pytest.warns(UserWarning, match="does not match the sha256"):
        index, again = cache.get_or_build(corpus, spec)
    assert not again["cached"]
    np.testing.assert_array_equal(
        search(index, queries, 5, spec)[1], search(built, queries, 5, spec)[1]
    )
    assert cache.get_or_build(corpus, spec)[1]["cached"]

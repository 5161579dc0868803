"""What of the GPU stack a CPU machine can check: faiss index-factory strings beside the named
kinds, and a clear refusal (before anything loads) of a cuda or CAGRA request this faiss build or
machine cannot serve; `device=auto` on a machine without CUDA warns and the result file says
why. The GPU paths themselves run in scripts/gpu_check.py on a GPU machine."""

from __future__ import annotations

import logging

import faiss
import numpy as np
import pytest

from drift.cli.config import compose, to_plain
from drift.core.errors import ConfigError, DataError
from drift.core.provenance import cpu_fallback, cuda_status, provenance
from drift.experiment.validation import validate_config
from drift.retrieval.index import (
    IndexCache,
    IndexSpec,
    build_index,
    check_device,
    exact_search,
    gpu_available,
    search,
)
from drift.run import warn_cpu_fallback

NO_GPU = not gpu_available()
needs_no_gpu = pytest.mark.skipif(not NO_GPU, reason="checks the refusals of a machine without GPU")


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)])
    )


# -- index.factory --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("factory", "nprobe", "at_least"),
    [("IVF32,Flat", 32, 1.0), ("IVF32,Flat", 4, 0.3), ("HNSW16,Flat", 16, 0.9),
     ("IVF16,SQ8", 16, 0.9), ("PCAR16,IVF16,Flat", 16, 0.15), ("Flat", 1, 1.0)],
)  # fmt: skip
def test_factory_strings_build_train_and_search(factory: str, nprobe: int, at_least: float) -> None:
    corpus, queries = unit_rows(3000, 32, 0), unit_rows(50, 32, 1)
    spec = IndexSpec(kind="factory", factory=factory, nprobe=nprobe, device="cpu")
    _, truth = exact_search(corpus, queries, 10, device="cpu")
    index = build_index(corpus, spec)
    _, ids = search(index, queries, 10, spec)
    assert index.ntotal == 3000 and at_least <= recall(ids, truth) <= 1.0
    # all lists probed is exact; few lists probed loses neighbours: nprobe reached the index
    if factory == "IVF32,Flat":
        assert (recall(ids, truth) == 1.0) == (nprobe == 32)
    allowed = np.arange(0, 3000, 2, dtype=np.int64)  # filtered search inside the index
    _, kept = search(index, queries, 10, spec, allowed=allowed)
    assert np.all((kept % 2 == 0) | (kept == -1))


def test_factory_indexes_are_cached_by_string_and_seed(tmp_path) -> None:
    corpus = unit_rows(2000, 16, 0)
    cache = IndexCache(tmp_path)
    spec = IndexSpec(kind="factory", factory="IVF16,Flat", device="cpu")
    first, info = cache.get_or_build(corpus, spec)
    again, info_again = cache.get_or_build(corpus, IndexSpec(**{**spec.__dict__, "nprobe": 2}))
    assert not info["cached"] and info_again["cached"]  # nprobe is search-time only
    other = IndexSpec(**{**spec.__dict__, "factory": "IVF8,Flat"})
    assert cache.key(corpus, other) != cache.key(corpus, spec)
    assert cache.key(corpus, IndexSpec(**{**spec.__dict__, "seed": 1})) != cache.key(corpus, spec)


def test_a_bad_factory_string_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"index factory 'IVF16,Bogus' cannot be built at dim"):
        IndexSpec(kind="factory", factory="IVF16,Bogus").check_dim(32)
    with pytest.raises(ConfigError, match="exactly when kind is 'factory'"):
        IndexSpec(kind="factory")
    with pytest.raises(ConfigError, match="exactly when kind is 'factory'"):
        IndexSpec(kind="hnsw", factory="Flat")
    spec = IndexSpec(kind="factory", factory="IVF64,PQ4x8", device="cpu")
    assert spec.min_vectors == 256
    with pytest.raises(DataError, match="trains on at least 256 vectors, got 100"):
        build_index(unit_rows(100, 16, 0), spec)


def test_the_factory_config_composes_and_passes_the_check() -> None:
    cfg = to_plain(
        compose(["index=factory", "index.factory='OPQ16,IVF256,PQ16'", "index.device=cpu"])
    )
    validate_config(cfg)
    assert IndexSpec.from_dict(cfg["index"]).build_params() == {
        "kind": "factory",
        "factory": "OPQ16,IVF256,PQ16",
        "seed": 0,
    }


# -- cuda and CAGRA requests on this machine ------------------------------------------------------
@needs_no_gpu
def test_a_cuda_index_request_without_a_gpu_is_refused_before_anything_loads() -> None:
    for kind in ("flat", "ivfpq"):
        with pytest.raises(
            ConfigError, match="index device is 'cuda' but .*(no GPU support|sees no GPU)"
        ):
            build_index(unit_rows(300, 16, 0), IndexSpec(kind=kind, device="cuda", pq_m=4))
    cfg = to_plain(compose(["index=flat", "index.device=cuda"]))
    with pytest.raises(ConfigError) as caught:
        validate_config(cfg)
    assert "index.device: index device is 'cuda' but" in str(caught.value)
    if not hasattr(faiss, "StandardGpuResources"):
        assert "pip install -e '.[gpu]'" in str(caught.value)


@needs_no_gpu
def test_a_cagra_request_names_why_it_cannot_run() -> None:
    with pytest.raises(ConfigError, match="index kind 'cagra': .*use index=hnsw"):
        check_device(IndexSpec(kind="cagra", device="cuda"))
    with pytest.raises(ConfigError, match="cagra' is a GPU index"):
        check_device(IndexSpec(kind="cagra", device="cpu"))
    with pytest.raises(ConfigError, match="index.device: index kind 'cagra'"):
        validate_config(to_plain(compose(["index=cagra"])))


def test_hnsw_and_cpu_indexes_need_no_gpu() -> None:
    for spec in (IndexSpec(kind="hnsw"), IndexSpec(kind="flat", device="cpu"), IndexSpec()):
        check_device(spec)  # nothing to refuse


@pytest.mark.skipif(cuda_status()["available"], reason="checks a machine without CUDA")
def test_torch_cuda_without_cuda_is_refused_and_auto_warns(caplog) -> None:
    cfg = to_plain(compose(["device=cuda:1"]))
    with pytest.raises(
        ConfigError, match=r"device: CUDA is not usable here \(.+\); use auto or cpu"
    ):
        validate_config(cfg)
    status = cuda_status()
    assert status["available"] is False and status["reason"] and status["devices"] == 0
    assert provenance()["hardware"]["cuda"] == status  # what every result file records
    with caplog.at_level(logging.WARNING, logger="drift"):
        warn_cpu_fallback("auto")
        warn_cpu_fallback("cpu")  # asked for: nothing to warn
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "device=auto runs on the CPU" in record.message
    assert status["reason"] in record.message and cpu_fallback("cpu") is None

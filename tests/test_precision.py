"""Precision as a named encoder setting: fp32 (CPU default), bf16 (CPUs with native bf16
instructions; refused elsewhere with a clear error), fp16 (CUDA only), each its own cache folder."""

from __future__ import annotations

import numpy as np
import pytest
from test_encoders import SENTENCES, _build

import drift.encoders.common as common
from drift.core.errors import ConfigError
from drift.encoders.cache import EmbeddingCache
from drift.encoders.common import check_cpu_bf16, resolve_torch_device


def minilm(**overrides):
    return _build("minilm_l6", **overrides)


def test_precision_names_and_device_defaults():
    assert resolve_torch_device("cpu").dtype_name == "fp32"
    assert resolve_torch_device("cpu", "fp32").dtype_name == "fp32"
    with pytest.raises(ConfigError, match=r"precision=fp16 is for CUDA"):
        resolve_torch_device("cpu", "fp16")
    with pytest.raises(ConfigError, match=r"precision must be null or one of"):
        resolve_torch_device("cpu", "int8")


def test_bf16_needs_native_cpu_support():
    with pytest.raises(ConfigError, match=r"avx512_bf16 or amx_bf16.*\['avx', 'avx2'\]"):
        check_cpu_bf16({"sse4_2", "avx", "avx2", "fma"})
    check_cpu_bf16({"avx2", "avx512f", "avx512_bf16"})
    check_cpu_bf16({"amx_bf16", "amx_tile"})


def test_bf16_on_this_cpu_is_refused_or_resolved():
    if common.cpu_flags() & set(common.BF16_CPU_FLAGS):
        assert resolve_torch_device("cpu", "bf16").dtype_name == "bf16"
    else:
        with pytest.raises(ConfigError, match="precision=bf16 needs a CPU with"):
            minilm(precision="bf16")  # refused before any weights load


def test_bf16_encoder_has_its_own_cache_folder_and_close_vectors(tmp_path, monkeypatch):
    """On CPUs without bf16 instructions torch emulates it (slowly): good enough to check the
    wiring and the vectors' closeness to fp32, not speed."""
    monkeypatch.setattr(common, "cpu_flags", lambda: {"avx512_bf16"})
    fp32, bf16 = minilm(), minilm(precision="bf16")
    assert "dtype=fp32" in fp32.preprocessing and "dtype=bf16" in bf16.preprocessing
    cache = EmbeddingCache(tmp_path)
    assert cache.folder(fp32) != cache.folder(bf16)
    a = cache.encode(fp32, SENTENCES, show_progress=False)
    b = cache.encode(bf16, SENTENCES, show_progress=False)
    assert b.dtype == np.float32 and b.shape == a.shape
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert float((a * b).sum(axis=1).min()) > 0.99
    assert cache.stats[fp32.name]["encoded"] == 8  # both precisions encoded, none shared

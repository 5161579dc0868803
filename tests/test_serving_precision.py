"""Weight precision of the serving artifact, the fused apply + normalise, the refusal of corrupt
or mismatched artifacts, and the floor helper (drift.serving.precision / runtime / floor).
Synthetic vectors; no timed assertions."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings

import faiss
import numpy as np
import pytest

from drift.adapters import build_adapter
from drift.cli.export import main
from drift.core.errors import ConfigError
from drift.core.vectors import l2_normalize
from drift.serving import runtime as serving
from drift.serving.export import export_adapter, faiss_pretransform, run_onnx, verify_artifact
from drift.serving.floor import best_rates, cost, floor_us, measure_rates
from drift.serving.precision import MIN_COSINE, encode_weights, fidelity

D_NEW, D_OLD = 48, 32
HALF = ("float16", "bfloat16")
CASES = {
    "op": ("procrustes", {"dsm": False}),
    "op_dsm": ("procrustes", {"center": True, "dsm": True}),
    "ridge_dsm_bias": ("ridge", {"dsm": True, "dsm_bias": True}),
    "la_dsm": ("low_rank_affine", {"rank": 4}),
    "op_low_rank": ("op_low_rank", {"rank": 4}),
    "mlp": ("residual_mlp", {"hidden": 8, "max_epochs": 2}),
    "mlp_raw": ("residual_mlp", {"hidden": 8, "max_epochs": 2, "normalize_output": False}),
}


def unit(n: int, d: int, seed: int) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


@pytest.fixture(scope="module")
def adapters() -> dict:
    x_new = unit(500, D_NEW, seed=0)
    mix = np.random.default_rng(1).standard_normal((D_NEW, D_OLD)).astype(np.float32)
    x_old = l2_normalize(x_new @ mix + 0.05 * unit(500, D_OLD, seed=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            name: build_adapter(kind, **hp).fit(x_new, x_old, seed=0)
            for name, (kind, hp) in CASES.items()
        }


@pytest.fixture(scope="module")
def artifacts(adapters, tmp_path_factory) -> dict:
    """(name, precision) -> artifact folder, for OP with DSM and the MLP at every precision."""
    out = {}
    for name in ("op_dsm", "mlp"):
        for precision in serving.PRECISIONS:
            folder = tmp_path_factory.mktemp(f"{name}-{precision}")
            out[name, precision] = export_adapter(
                adapters[name], folder, old_model="old", new_model="new", precision=precision
            )
    return out


def tensor_bytes(folder) -> dict[str, tuple[str, int]]:
    """Per tensor of an artifact's weights file: its stored dtype and data bytes."""
    header, _ = serving.safetensors_header((folder / "weights.safetensors").read_bytes(), folder)
    return {k: (v["dtype"], v["data_offsets"][1] - v["data_offsets"][0]) for k, v in header.items()}


# -- round trip ------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", HALF)
@pytest.mark.parametrize("name", ["op_dsm", "mlp"])
def test_half_precision_artifact_halves_the_bytes_and_records_its_dtype(artifacts, name, precision):
    full, half = artifacts[name, "float32"], artifacts[name, precision]
    stored32, stored16 = tensor_bytes(full), tensor_bytes(half)
    assert set(stored32) == set(stored16)
    expected_dtype = {"float16": "F16", "bfloat16": "BF16"}[precision]
    for tensor, (dtype, n_bytes) in stored16.items():
        assert dtype == expected_dtype and stored32[tensor] == ("F32", 2 * n_bytes)
    meta = json.loads((half / "serving.json").read_text())
    assert meta["weights"]["precision"] == precision
    assert meta["weights"]["bytes"] == (half / "weights.safetensors").stat().st_size
    served = serving.load(half)
    assert served.precision == precision
    assert all(w.dtype == np.float32 for w in served.weights.values())  # computed in float32
    assert (half / "model.onnx").stat().st_size < 0.6 * (full / "model.onnx").stat().st_size


@pytest.mark.parametrize("precision", HALF)
@pytest.mark.parametrize("name", ["op_dsm", "mlp"])
def test_half_precision_outputs_stay_within_tolerance_of_float32(
    adapters, artifacts, name, precision
):
    queries = unit(200, D_NEW, seed=3)
    reference = adapters[name].transform(queries)
    folder = artifacts[name, precision]
    got = serving.load(folder).apply(queries)
    found = fidelity(reference, got)
    assert found["min_cosine"] >= MIN_COSINE
    assert 0 < found["max_abs_diff"] < {"float16": 5e-3, "bfloat16": 3e-2}[precision]
    # ONNX holds the same rounded weights (cast to float32 in the graph): same outputs.
    np.testing.assert_allclose(run_onnx(folder / "model.onnx", queries), got, atol=1e-6)
    meta = json.loads((folder / "serving.json").read_text())
    assert meta["verification"]["fidelity_to_float32"]["min_cosine"] >= MIN_COSINE
    assert verify_artifact(adapters[name], folder)["numpy"] <= 1e-6


def test_bfloat16_weights_widen_exactly():
    import torch

    values = np.random.default_rng(4).standard_normal((7, 5)).astype(np.float32) * 100
    _, rounded = encode_weights({"w": values}, "bfloat16")
    expected = torch.from_numpy(values).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(rounded["w"], expected)


def test_float16_overflow_and_an_unknown_precision_are_refused(adapters, tmp_path):
    with pytest.raises(ConfigError, match="overflow float16"):
        encode_weights({"w": np.array([[1e6]], np.float32)}, "float16")
    with pytest.raises(ConfigError, match="unknown weight precision 'int8'"):
        export_adapter(adapters["op"], tmp_path, old_model="a", new_model="b", precision="int8")


def test_faiss_pretransform_of_a_bfloat16_artifact_searches_like_numpy(artifacts):
    served = serving.load(artifacts["op_dsm", "bfloat16"])
    index = faiss.IndexFlatIP(D_OLD)
    index.add(unit(300, D_OLD, seed=5))
    queries = unit(40, D_NEW, seed=6)
    scores, ids = faiss_pretransform(served, index).search(queries, 10)
    ref_scores, ref_ids = index.search(served.apply(queries), 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_cli_writes_the_chosen_precision(adapters, tmp_path, capsys):
    adapters["la_dsm"].save(tmp_path / "adapter")
    args = ["--adapter-dir", str(tmp_path / "adapter"), "--out", str(tmp_path / "art")]
    main([*args, "--old-model", "a", "--new-model", "b", "--precision", "bfloat16"])
    assert "bfloat16 weights" in capsys.readouterr().out
    assert serving.load(tmp_path / "art").precision == "bfloat16"


# -- fused apply + normalise ----------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 300])
@pytest.mark.parametrize("name", list(CASES))
def test_fused_apply_equals_apply_then_normalise(adapters, tmp_path, name, n):
    served = serving.load(export_adapter(adapters[name], tmp_path, old_model="a", new_model="b"))
    queries = unit(n, D_NEW, seed=7)
    unfused = served.apply_ops(queries)
    np.testing.assert_allclose(served.apply(queries), unfused, rtol=0, atol=1e-6)
    out = np.full((n, D_OLD), np.nan, dtype=np.float32)
    assert served.apply(queries, out=out) is out
    np.testing.assert_allclose(out, unfused, rtol=0, atol=1e-6)
    np.testing.assert_allclose(unfused, adapters[name].transform(queries), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(queries, unit(n, D_NEW, seed=7))  # the input is never written


def test_fused_apply_folds_the_output_stage_into_the_last_matmul(adapters, tmp_path):
    served = serving.load(
        export_adapter(adapters["ridge_dsm_bias"], tmp_path, old_model="a", new_model="b")
    )
    weight, bias = served._last
    assert served._body == [] and weight.shape == (D_NEW, D_OLD) and bias.shape == (D_OLD,)


def test_fused_apply_refuses_zero_rows_and_a_wrong_out(adapters, tmp_path):
    served = serving.load(export_adapter(adapters["op"], tmp_path, old_model="a", new_model="b"))
    with pytest.raises(serving.ServingError, match=r"1 of 1 queries"):
        served.apply(np.zeros((1, D_NEW), np.float32))
    with pytest.raises(ValueError, match="out must be a C-contiguous float32 array"):
        served.apply(unit(2, D_NEW, seed=8), out=np.empty((2, D_OLD), np.float64))


# -- corrupt or mismatched artifacts --------------------------------------------------------
def _copy(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def _rewrite_meta(folder, change) -> None:
    meta = json.loads((folder / "serving.json").read_text())
    change(meta)
    (folder / "serving.json").write_text(json.dumps(meta))


def test_a_flipped_byte_is_refused(artifacts, tmp_path):
    copy = _copy(artifacts["op_dsm", "float16"], tmp_path)
    blob = bytearray((copy / "weights.safetensors").read_bytes())
    blob[-3] ^= 0xFF
    (copy / "weights.safetensors").write_bytes(bytes(blob))
    with pytest.raises(serving.ServingError, match="sha256 .* differs"):
        serving.load(copy)


def test_weights_of_another_precision_than_recorded_are_refused(artifacts, tmp_path):
    """A float16 weights file put in a float32 artifact's folder (checksum re-signed: only the
    dtype check catches it)."""
    copy = _copy(artifacts["op_dsm", "float32"], tmp_path)
    half = artifacts["op_dsm", "float16"] / "weights.safetensors"
    shutil.copyfile(half, copy / "weights.safetensors")
    _rewrite_meta(
        copy, lambda m: m["weights"].update(sha256=hashlib.sha256(half.read_bytes()).hexdigest())
    )
    with pytest.raises(serving.ServingError, match="stored as F16, serving.json records precision"):
        serving.load(copy)


def test_a_shape_other_than_recorded_is_refused(artifacts, tmp_path):
    copy = _copy(artifacts["op_dsm", "bfloat16"], tmp_path)
    _rewrite_meta(copy, lambda m: m["weights"]["shapes"].update(weight=[D_OLD, D_NEW]))
    with pytest.raises(serving.ServingError, match="tensor 'weight' has shape"):
        serving.load(copy)


def test_an_unreadable_manifest_is_one_clear_error(artifacts, tmp_path):
    copy = _copy(artifacts["op_dsm", "float32"], tmp_path)
    (copy / "serving.json").write_text('{"weights": ')
    with pytest.raises(serving.ServingError, match="not a readable drift artifact"):
        serving.load(copy)
    (copy / "weights.safetensors").unlink()
    shutil.copyfile(artifacts["op_dsm", "float32"] / "serving.json", copy / "serving.json")
    with pytest.raises(serving.ServingError, match="not a readable drift artifact"):
        serving.load(copy)


# -- floor -----------------------------------------------------------------------------------
def test_floor_helper_returns_sane_positive_numbers():
    timing = {"min_time_s": 0.0, "min_runs": 3, "warmup_runs": 1}
    rates = measure_rates(64, 32, timing=timing, sgemm_size=128, dram_bytes=8 * 2**20)
    for key in ("sgemm_gflops", "matvec_us", "matvec_gflops", "copy_gbps_weights"):
        assert math.isfinite(rates[key]) and rates[key] > 0, key
    assert rates["copy_gbps_dram"] > 0
    assert best_rates(rates, {**rates, "sgemm_gflops": 2 * rates["sgemm_gflops"]})[
        "sgemm_gflops"
    ] == (2 * rates["sgemm_gflops"])


def test_floor_binds_memory_for_one_query_and_compute_for_a_batch():
    ops = [{"op": "matmul", "weight": "w"}, {"op": "l2_normalize", "eps": 1e-12}]
    work = cost(ops, {"w": [768, 384]}, 768)
    assert work == {"flops": 2 * 768 * 384 + 3 * 384, "weight_values": 768 * 384, "d_out": 384}
    rates = {"sgemm_gflops": 100.0, "copy_gbps_weights": 50.0, "copy_gbps_dram": 10.0}
    one = floor_us(work["flops"], 4 * work["weight_values"], 1, rates)
    batch = floor_us(work["flops"], 4 * work["weight_values"], 1024, rates)
    assert one["binds"] == "memory" and batch["binds"] == "compute"
    assert one["floor_us"] == pytest.approx(4 * 768 * 384 / 50e3)
    assert batch["floor_us"] == pytest.approx(work["flops"] / 100e3)
    assert one["memory_dram_us"] == pytest.approx(5 * one["memory_us"])


def test_cost_counts_branches_and_the_mlp():
    ops = [
        {"op": "sum", "branches": [[{"op": "matmul", "weight": "a"}], []]},
        {"op": "gelu"},
    ]
    work = cost(ops, {"a": [8, 8]}, 8)
    assert work["flops"] == 2 * 64 + 8 + 30 * 8 and work["weight_values"] == 64

"""drift.serving.export / drift.serving.runtime: the exported artifact reproduces Adapter.transform
(synthetic)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import warnings

import faiss
import numpy as np
import pytest

from drift.adapters import build_adapter
from drift.cli.export import main
from drift.core.errors import ConfigError
from drift.core.vectors import l2_normalize
from drift.serving import runtime as serving
from drift.serving.export import (
    ExportError,
    export_adapter,
    faiss_pretransform,
    verify_artifact,
)

D_NEW, D_OLD = 24, 16
CASES = {
    "op": ("procrustes", {}),
    "op_center_dsm": ("procrustes", {"center": True, "dsm": True}),
    "ridge_dsm_bias": ("ridge", {"dsm": True, "dsm_bias": True}),
    "la": ("low_rank_affine", {"rank": 4, "dsm": False}),
    "la_dsm": ("low_rank_affine", {"rank": 4}),
    "op_low_rank": ("op_low_rank", {"rank": 4, "dsm": False}),
    "op_low_rank_dsm": ("op_low_rank", {"rank": 4}),
    "mlp_dsm": ("residual_mlp", {"hidden": 8, "max_epochs": 2}),
    "mlp_raw": (
        "residual_mlp",
        {"hidden": 8, "max_epochs": 2, "dsm": False, "normalize_output": False},
    ),
}


def unit(n: int, d: int, seed: int) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32))


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    x_new = unit(400, D_NEW, seed=0)
    mix = np.random.default_rng(1).standard_normal((D_NEW, D_OLD)).astype(np.float32)
    return x_new, l2_normalize(x_new @ mix + 0.05 * unit(400, D_OLD, seed=2))


@pytest.fixture(scope="module")
def exported(pairs, tmp_path_factory) -> dict:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (kind, hparams) in CASES.items():
            adapter = build_adapter(kind, **hparams).fit(*pairs, seed=0)
            folder = tmp_path_factory.mktemp(name)
            export_adapter(
                adapter,
                folder,
                old_model="old-model",
                new_model="new-model",
                metrics={"recall@10": 0.5},
            )
            out[name] = (adapter, folder)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_apply_equals_transform(exported, name):
    adapter, folder = exported[name]
    queries = unit(300, D_NEW, seed=7)
    got = serving.load(folder).apply(queries)
    assert got.dtype == np.float32 and got.shape == (300, D_OLD)
    np.testing.assert_allclose(got, adapter.transform(queries), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_equals_transform(exported, name):
    pytest.importorskip("onnx")  # needed to build the graph; onnxruntime runs it
    from drift.serving.export import run_onnx

    adapter, folder = exported[name]
    queries = unit(300, D_NEW, seed=8)
    np.testing.assert_allclose(
        run_onnx(folder / "model.onnx", queries), adapter.transform(queries), rtol=0, atol=1e-6
    )


def test_metadata_names_models_dims_and_verification(exported):
    _, folder = exported["la_dsm"]
    meta = json.loads((folder / "serving.json").read_text())
    assert meta["old_model"] == {"name": "old-model", "dim": D_OLD}
    assert meta["new_model"] == {"name": "new-model", "dim": D_NEW}
    assert meta["normalisation"]["output"] == "l2"
    assert meta["metrics"] == {"recall@10": 0.5}
    assert max(meta["verification"]["max_abs_diff"].values()) <= 1e-6
    assert {op["op"] for op in meta["ops"]} == {"matmul", "add", "mul", "l2_normalize"}


def test_weights_are_safetensors_equal_to_params(exported):
    from safetensors.numpy import load_file

    adapter, folder = exported["mlp_dsm"]
    official = load_file(str(folder / "weights.safetensors"))
    ours = serving.read_safetensors(folder / "weights.safetensors")
    assert set(official) == set(ours) == set(adapter.params())
    for key, value in adapter.params().items():
        np.testing.assert_array_equal(ours[key], value)


def test_serving_module_needs_only_numpy_and_the_standard_library(exported):
    _, folder = exported["mlp_dsm"]
    source = (folder / "drift_serving.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "hashlib", "json", "math", "pathlib", "typing", "numpy"}
    code = (
        f"import sys; sys.path.insert(0, {str(folder)!r}); import numpy as np, drift_serving; "
        f"a = drift_serving.load({str(folder)!r}); "
        f"print(a.apply(np.ones((2, {D_NEW}), np.float32)).shape); "
        "print(sorted(m for m in ('drift', 'torch', 'scipy', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=folder
    )
    assert out.stdout.split("\n")[:2] == [f"(2, {D_OLD})", "[]"]


def _tampered_copy(folder, tmp_path, change, *, re_sign: bool):
    """A copy of the artifact whose weights went through `change`; `re_sign`: serving.json then
    records the new file's sha256 too (a tamper that the checksum cannot catch)."""
    import hashlib
    import shutil

    from safetensors.numpy import save_file

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    weights_path = copy / "weights.safetensors"
    save_file(change(serving.read_safetensors(weights_path)), str(weights_path))
    if re_sign:
        meta = json.loads((copy / "serving.json").read_text())
        meta["weights"]["sha256"] = hashlib.sha256(weights_path.read_bytes()).hexdigest()
        (copy / "serving.json").write_text(json.dumps(meta))
    return copy


def _zeroed(weights):
    return {name: np.zeros_like(value) for name, value in weights.items()}


def test_tampered_weights_are_refused_on_load(exported, tmp_path):
    import hashlib

    adapter, folder = exported["op"]
    recorded = json.loads((folder / "serving.json").read_text())["weights"]["sha256"]
    copy = _tampered_copy(folder, tmp_path, _zeroed, re_sign=False)
    actual = hashlib.sha256((copy / "weights.safetensors").read_bytes()).hexdigest()
    assert actual != recorded
    with pytest.raises(serving.ServingError) as refused:
        serving.load(copy)
    message = str(refused.value)
    assert str(copy / "weights.safetensors") in message
    assert actual in message and recorded in message
    with pytest.raises(ExportError, match="does not load.*sha256"):
        verify_artifact(adapter, copy)


def test_weights_without_a_recorded_sha256_are_refused(exported, tmp_path):
    _, folder = exported["op"]
    copy = _tampered_copy(folder, tmp_path, lambda weights: weights, re_sign=False)
    meta = json.loads((copy / "serving.json").read_text())
    del meta["weights"]["sha256"]
    (copy / "serving.json").write_text(json.dumps(meta))
    with pytest.raises(serving.ServingError, match="records no sha256"):
        serving.load(copy)


def test_re_signed_tampered_weights_fail_verification(exported, tmp_path):
    adapter, folder = exported["op"]

    def nudge(weights):
        return {**weights, "weight": weights["weight"] + 1e-3}

    copy = _tampered_copy(folder, tmp_path, nudge, re_sign=True)
    serving.load(copy)  # the checksum matches: only the comparison with the adapter catches it
    with pytest.raises(ExportError, match="differs"):
        verify_artifact(adapter, copy)


@pytest.mark.parametrize("name", ["op", "mlp_raw"])  # normalised output, and raw output
def test_zero_norm_output_rows_are_refused(exported, tmp_path, name):
    _, folder = exported[name]
    zeroed = serving.load(_tampered_copy(folder, tmp_path, _zeroed, re_sign=True))
    with pytest.raises(serving.ServingError, match=r"3 of 3 queries map to a zero-norm vector"):
        zeroed.apply(unit(3, D_NEW, seed=4))


def test_zero_queries_are_refused_and_nan_rows_pass_through(exported):
    _, folder = exported["op"]  # uncentred OP: x @ W, then L2 normalisation
    served = serving.load(folder)
    queries = unit(4, D_NEW, seed=5)
    queries[1] = 0.0
    with pytest.raises(serving.ServingError, match=r"1 of 4 queries .* \(rows \[1\]\)"):
        served.apply(queries)
    queries[1] = np.nan
    out = served.apply(queries)
    assert np.isnan(out[1]).all() and np.isfinite(np.delete(out, 1, axis=0)).all()


def test_corrupt_weights_file_is_rejected(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes((10_000).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header length"):
        serving.read_safetensors(path)


def test_wrong_query_shape_is_rejected(exported):
    _, folder = exported["op"]
    with pytest.raises(ValueError, match=rf"\[n, {D_NEW}\]"):
        serving.load(folder).apply(np.ones((2, D_NEW + 1), np.float32))


def test_erf_matches_scipy():
    import scipy.special

    x = np.linspace(-6, 6, 10_001)
    assert np.abs(serving.erf(x) - scipy.special.erf(x)).max() < 2e-7


@pytest.mark.parametrize("name", ["op", "la_dsm", "op_low_rank_dsm", "ridge_dsm_bias"])
def test_faiss_pretransform_searches_like_numpy_apply(exported, pairs, name):
    adapter, folder = exported[name]
    served = serving.load(folder)
    index = faiss.IndexFlatIP(D_OLD)
    index.add(pairs[1])
    queries = unit(50, D_NEW, seed=9)
    scores, ids = faiss_pretransform(served, index).search(queries, 10)
    ref_scores, ref_ids = index.search(served.apply(queries), 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_faiss_pretransform_refuses_an_mlp(exported):
    _, folder = exported["mlp_dsm"]
    with pytest.raises(ConfigError, match="not affine"):
        faiss_pretransform(serving.load(folder), faiss.IndexFlatIP(D_OLD))


def test_unfitted_adapter_is_refused(tmp_path):
    with pytest.raises(ExportError, match="not fitted"):
        export_adapter(build_adapter("procrustes"), tmp_path, old_model="a", new_model="b")


def test_an_adapter_without_a_serving_form_is_refused(pairs, tmp_path):
    x_new, x_old = pairs
    routed = build_adapter("routed", n_clusters=1).fit(x_new, x_old)
    with pytest.raises(ConfigError, match=r"kind 'routed'; exportable kinds: identity, .*ridge$"):
        export_adapter(routed, tmp_path, old_model="a", new_model="b")


def test_model_dim_disagreeing_with_adapter_is_refused(exported, tmp_path):
    adapter, _ = exported["op"]
    with pytest.raises(ConfigError, match="dim"):
        export_adapter(adapter, tmp_path, old_model={"name": "a", "dim": 3}, new_model="b")


def test_cli_exports_a_saved_adapter(exported, tmp_path, capsys):
    adapter, _ = exported["la_dsm"]
    adapter.save(tmp_path / "adapter")
    (tmp_path / "metrics.json").write_text(json.dumps({"gate": {"decision": "keep"}}))
    main(
        [
            "--adapter-dir",
            str(tmp_path / "adapter"),
            "--out",
            str(tmp_path / "artifact"),
            "--old-model",
            "m-old",
            "--new-model",
            "m-new",
            "--metrics",
            str(tmp_path / "metrics.json"),
        ]
    )
    assert "max |artifact - transform|" in capsys.readouterr().out
    meta = json.loads((tmp_path / "artifact" / "serving.json").read_text())
    assert meta["metrics"] == {"gate": {"decision": "keep"}}
    assert (tmp_path / "artifact" / "drift_serving.py").exists()

"""Export a fitted adapter as a self-contained, deployable artifact.

    drift export --adapter-dir ADAPTER_DIR --out artifacts/op-minilm-mpnet \\
        --old-model sentence-transformers/all-MiniLM-L6-v2 \\
        --new-model sentence-transformers/all-mpnet-base-v2 [--metrics gate.json] \
        [--precision float16]

ADAPTER_DIR is a folder written by `Adapter.save`. The artifact folder holds:

    serving.json         format version, dims, old/new model, normalisation, metrics, provenance,
                         the computation as a list of operations, the weights file's sha256
    weights.safetensors  the adapter's arrays, float32, float16 or bfloat16 (never a pickle)
    model.onnx           the same computation as an ONNX graph: input "queries" [n, d_new] ->
                         output "mapped" [n, d_old]
    drift_serving.py     a copy of drift/serving/runtime.py: `load(dir).apply(queries)`,
                         numpy + json only

Every export is checked before it is reported done: the artifact is loaded back as a serving
process would load it, and its numpy (fused and operation by operation) and ONNX outputs must
equal `adapter.transform` within 1e-6 on seeded probe queries; otherwise ExportError names the
largest difference. A float16 / bfloat16 artifact is checked the same way against the adapter
with its weights rounded to that precision, and its outputs' cosine to the float32 adapter's must
reach drift.serving.precision.MIN_COSINE (recorded in serving.json's verification).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from drift.adapters.base import ADAPTERS, Adapter
from drift.adapters.scaling import MapAdapter
from drift.core.errors import ConfigError, DriftError
from drift.core.files import atomic_write, clean_stale
from drift.core.provenance import git_info, package_versions
from drift.core.vectors import l2_normalize
from drift.serving import runtime as serving
from drift.serving.precision import MIN_COSINE, encode_weights, fidelity, stored_values

ONNX_FILE = "model.onnx"
MODULE_FILE = "drift_serving.py"
ONNX_OPSET = 17  # ReduceL2 takes `axes` as an attribute up to opset 17; Erf exists since 9
TOLERANCE = 1e-6
N_PROBES = 64

Op = dict[str, Any]


class ExportError(DriftError):
    """An adapter cannot be exported, or its artifact does not reproduce `transform`."""


# -- the computation as operations ----------------------------------------------------------
def serving_ops(adapter: Adapter) -> list[Op]:
    """The adapter's transform as serving operations (`Adapter.serving_ops`; see
    drift/serving/runtime.py for their meaning)."""
    if adapter.d_in is None:
        raise ExportError(f"{adapter.name}: cannot export an adapter that is not fitted or loaded")
    ops = adapter.serving_ops()
    if ops is None:
        exportable = [kind for kind, cls in ADAPTERS.items() if issubclass(cls, MapAdapter)]
        raise ConfigError(
            f"cannot export adapter kind {adapter.kind!r}; exportable kinds: "
            f"{', '.join(sorted(exportable))}"
        )
    return ops


# -- ONNX -----------------------------------------------------------------------------------
def onnx_model(
    ops: list[Op],
    weights: Mapping[str, np.ndarray],
    d_in: int,
    d_out: int,
    precision: str = "float32",
):
    """The operations as an ONNX graph (opset 17): "queries" float32 [n, d_in] -> "mapped".

    `weights` are float32 arrays already rounded to `precision`; a float16 / bfloat16 graph stores
    them in that type and casts each to float32 once (onnxruntime folds the casts at load), so the
    file is half the size and computes what the numpy runtime computes."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as err:
        raise ExportError(
            "ONNX export needs the `onnx` package: pip install onnx (or export without ONNX: "
            "onnx=False, `drift export --no-onnx`)"
        ) from err

    nodes: list[Any] = []
    initializers = []
    stored = {"float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16}.get(precision)
    names = {}  # weight name -> the float32 tensor the graph reads
    for name, w in weights.items():
        values = stored_values(w, precision)
        if stored is None:
            initializers.append(numpy_helper.from_array(values, name=name))
            names[name] = name
            continue
        initializers.append(
            helper.make_tensor(name, stored, values.shape, values.tobytes(), raw=True)
        )
        names[name] = f"{name}_float32"
        nodes.append(helper.make_node("Cast", [name], [names[name]], to=TensorProto.FLOAT))
    counter = iter(range(1_000_000))

    def const(value: float) -> str:
        name = f"const_{next(counter)}"
        initializers.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name=name))
        return name

    def node(op_type: str, inputs: list[str], **attrs: Any) -> str:
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def emit(op_list: list[Op], x: str) -> str:
        for op in op_list:
            kind = op["op"]
            if kind == "matmul":
                x = node("MatMul", [x, names[op["weight"]]])
            elif kind == "add":
                x = node("Add", [x, names[op["value"]]])
            elif kind == "mul":
                x = node("Mul", [x, names[op["value"]]])
            elif kind == "gelu":
                erf = node("Erf", [node("Mul", [x, const(1.0 / math.sqrt(2.0))])])
                x = node("Mul", [node("Mul", [x, node("Add", [erf, const(1.0)])]), const(0.5)])
            elif kind == "l2_normalize":
                norm = node("ReduceL2", [x], axes=[1], keepdims=1)
                x = node("Div", [x, node("Max", [norm, const(op["eps"])])])
            elif kind == "sum":
                outs = [emit(branch, x) for branch in op["branches"]]
                x = outs[0]
                for other in outs[1:]:
                    x = node("Add", [x, other])
            else:
                raise ExportError(f"no ONNX form for operation {kind!r}")
        return x

    out = emit(ops, "queries")
    out = node("Identity", [out])  # a named graph output even when ops is empty
    nodes[-1].output[0] = "mapped"
    graph = helper.make_graph(
        nodes,
        "drift_adapter",
        [helper.make_tensor_value_info("queries", TensorProto.FLOAT, ["n", d_in])],
        [helper.make_tensor_value_info("mapped", TensorProto.FLOAT, ["n", d_out])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="drift"
    )
    model.ir_version = 8  # what opset 17 needs; keeps older runtimes able to load it
    onnx.checker.check_model(model)
    return model


def run_onnx(path: str | Path, queries: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["mapped"], {"queries": np.asarray(queries, dtype=np.float32)})[0]


# -- FAISS ----------------------------------------------------------------------------------
def faiss_transforms(adapter: serving.ServingAdapter) -> list[Any]:
    """The adapter as faiss VectorTransforms: a LinearTransform (y = A x + b), then a
    NormalizationTransform when the adapter normalises its output (scores then equal the numpy
    path's; rankings by inner product would not change without it).

    Only for affine adapters (OP, LA, OP + low-rank, ridge, identity, with or without DSM);
    an MLP raises. faiss's transforms hold float32 only: a float16 / bfloat16 artifact folds its
    rounded weights into a float32 LinearTransform (its outputs equal the numpy path's, its
    memory and speed are float32's). faiss has no fused transform: the normalisation is a second
    pass over the output.
    """
    import faiss

    folded = adapter.affine()
    if folded is None:
        raise ConfigError(
            f"adapter {adapter.meta['kind']!r} is not affine: faiss.LinearTransform cannot hold "
            "it; apply it with drift_serving.apply (numpy) or the ONNX model before searching"
        )
    matrix, bias = folded
    linear = faiss.LinearTransform(adapter.d_in, adapter.d_out, True)
    # faiss stores A row-major as [d_out, d_in].
    faiss.copy_array_to_vector(np.ascontiguousarray(matrix.T).ravel(), linear.A)
    faiss.copy_array_to_vector(bias, linear.b)
    linear.is_trained = True
    if adapter.normalizes_output:
        return [linear, faiss.NormalizationTransform(adapter.d_out, 2.0)]
    return [linear]


def faiss_pretransform(adapter: serving.ServingAdapter, old_index: Any) -> Any:
    """Wrap the old index so that searching it with new-model queries applies the adapter in C++
    (faiss.IndexPreTransform). The wrapper keeps the transforms and `old_index` alive."""
    import faiss

    wrapped = faiss.IndexPreTransform(old_index)
    for transform in reversed(faiss_transforms(adapter)):
        wrapped.prepend_transform(transform)
    return wrapped


# -- export ---------------------------------------------------------------------------------
def export_adapter(
    adapter: Adapter,
    out_dir: str | Path,
    *,
    old_model: str | Mapping[str, Any],
    new_model: str | Mapping[str, Any],
    normalisation: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    onnx: bool = True,
    precision: str = "float32",
) -> Path:
    """Write the artifact (see module docstring) to `out_dir` and verify it; returns `out_dir`.

    serving.json is written last, after the verification: a folder without it is not an artifact.

    Args:
        adapter: a fitted (or loaded) adapter.
        old_model, new_model: a model id, or a mapping with at least "name" (e.g. the encoder
            summary of a result file: name, revision, dim).
        normalisation: how vectors must be prepared; default: unit-norm new-model queries in,
            and whether the output is unit-norm (from the adapter) for an inner-product index.
        metrics: what the adapter reached (e.g. the gate's report); stored verbatim.
        onnx: also write and verify model.onnx (needs the `onnx` package).
        precision: how the weights are stored: "float32", "float16" or "bfloat16" (half the
            bytes; computed in float32, see drift/serving/precision.py).
    """
    out_dir = Path(out_dir)
    ops = serving_ops(adapter)
    weights_blob, weights = encode_weights(adapter.params(), precision)
    clean_stale(out_dir)  # what a killed export left
    # Not an artifact until the new serving.json is written (a kill from here on leaves none).
    (out_dir / serving.META_FILE).unlink(missing_ok=True)

    weights_path = out_dir / serving.WEIGHTS_FILE
    atomic_write(weights_path, lambda tmp: tmp.write_bytes(weights_blob))
    meta = {
        "format": serving.FORMAT,
        "format_version": serving.FORMAT_VERSION,
        "kind": adapter.kind,
        "name": adapter.name,
        "d_in": adapter.d_in,
        "d_out": adapter.d_out,
        "old_model": _model_entry(old_model, adapter.d_out),
        "new_model": _model_entry(new_model, adapter.d_in),
        "normalisation": dict(normalisation or default_normalisation(adapter)),
        "metrics": dict(metrics or {}),
        "ops": ops,
        "weights": {
            "file": serving.WEIGHTS_FILE,
            "sha256": hashlib.sha256(weights_blob).hexdigest(),
            "precision": precision,
            "bytes": len(weights_blob),
            "shapes": {k: list(v.shape) for k, v in weights.items()},
        },
        "adapter": adapter.describe(),
        "onnx": ONNX_FILE if onnx else None,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "provenance": {"git": git_info(), "packages": package_versions(("drift", "numpy"))},
    }
    atomic_write(out_dir / MODULE_FILE, lambda tmp: shutil.copyfile(serving.__file__, tmp))
    if onnx:
        graph = onnx_model(ops, weights, adapter.d_in, adapter.d_out, precision)
        graph = graph.SerializeToString()
        atomic_write(out_dir / ONNX_FILE, lambda tmp: tmp.write_bytes(graph))
    else:
        (out_dir / ONNX_FILE).unlink(missing_ok=True)  # never leave a stale graph behind
    served = serving.ServingAdapter(meta, serving.read_safetensors(weights_path))
    meta["verification"] = {
        "max_abs_diff": max_differences(
            with_weights(adapter, weights, precision),
            served,
            out_dir / ONNX_FILE if onnx else None,
        ),
        "n_probes": N_PROBES,
        "tolerance": TOLERANCE,
    }
    if precision != "float32":
        meta["verification"]["fidelity_to_float32"] = fidelity_to_float32(adapter, served)
    text = json.dumps(meta, indent=2, default=str) + "\n"
    atomic_write(out_dir / serving.META_FILE, lambda tmp: tmp.write_text(text))
    return out_dir


def default_normalisation(adapter: Adapter) -> dict[str, str]:
    return {
        "queries": "l2: unit-norm new-model vectors, as the new encoder returns them",
        "output": "l2" if getattr(adapter, "normalize_output", False) else "none",
        "index_metric": "inner_product over unit-norm old-model vectors (cosine)",
    }


def verify_artifact(adapter: Adapter, out_dir: str | Path) -> dict[str, float]:
    """Check an artifact folder against the adapter it came from: its weights against their
    recorded sha256 (as `drift_serving.load` does), then its outputs (`max_differences`)."""
    out_dir = Path(out_dir)
    onnx_path = out_dir / ONNX_FILE
    try:
        served = serving.load(out_dir)
    except serving.ServingError as err:
        raise ExportError(f"artifact {out_dir} does not load: {err}") from err
    rounded = encode_weights(adapter.params(), served.precision)[1]
    reference = with_weights(adapter, rounded, served.precision)
    diffs = max_differences(reference, served, onnx_path if onnx_path.exists() else None)
    if served.precision != "float32":
        fidelity_to_float32(adapter, served)
    return diffs


def with_weights(adapter: Adapter, rounded: Mapping[str, np.ndarray], precision: str) -> Adapter:
    """`adapter` itself for float32; otherwise a copy of it holding `rounded` (its weights rounded
    to `precision`, as float32): the computation a half-precision artifact must reproduce."""
    if precision == "float32":
        return adapter
    twin = copy.deepcopy(adapter)
    twin.set_params(dict(rounded))
    return twin


def fidelity_to_float32(
    adapter: Adapter, served: serving.ServingAdapter, *, seed: int = 0
) -> dict[str, float]:
    """The half-precision artifact's outputs against the float32 adapter's on seeded probes;
    ExportError when their smallest cosine is below MIN_COSINE."""
    probes = _probes(adapter.d_in, seed)
    found = fidelity(adapter.transform(probes), served.apply(probes))
    if not found["min_cosine"] >= MIN_COSINE:
        raise ExportError(
            f"{adapter.name} in {served.precision}: the smallest cosine to the float32 adapter's "
            f"outputs is {found['min_cosine']:.6f} (< {MIN_COSINE}); export it as float32"
        )
    return found


def _probes(d_in: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return l2_normalize(rng.standard_normal((N_PROBES, d_in)).astype(np.float32))


def max_differences(
    adapter: Adapter, served: serving.ServingAdapter, onnx_path: Path | None, *, seed: int = 0
) -> dict[str, float]:
    """Max |artifact - adapter.transform| on seeded unit probe queries, per backend.

    Raises ExportError when a backend differs by more than TOLERANCE (scaled by the output's
    magnitude when that exceeds 1).
    """
    probes = _probes(adapter.d_in, seed)
    expected = adapter.transform(probes)
    try:
        outputs = {"numpy": served.apply(probes), "numpy_ops": served.apply_ops(probes)}
    except serving.ServingError as err:
        raise ExportError(f"the exported numpy computation fails on probe queries: {err}") from err
    if onnx_path is not None:
        outputs["onnx"] = run_onnx(onnx_path, probes)
    limit = TOLERANCE * max(1.0, float(np.abs(expected).max(initial=0.0)))
    diffs = {}
    for backend, got in outputs.items():
        if got.shape != expected.shape:
            raise ExportError(
                f"{backend} artifact returns shape {got.shape}, expected {expected.shape}"
            )
        diffs[backend] = float(np.abs(got - expected).max(initial=0.0))
        if not diffs[backend] <= limit:
            raise ExportError(
                f"the exported {backend} computation differs from {adapter.name}.transform by "
                f"{diffs[backend]:.3g} (> {limit:.3g}); the export does not reproduce the adapter"
            )
    return diffs


def _model_entry(model: str | Mapping[str, Any], dim: int) -> dict[str, Any]:
    entry = {"name": model} if isinstance(model, str) else dict(model)
    if not entry.get("name"):
        raise ConfigError(f"model description {model!r} needs a non-empty name")
    if entry.setdefault("dim", dim) != dim:
        raise ConfigError(f"model {entry['name']!r} has dim {entry['dim']}, the adapter has {dim}")
    return entry

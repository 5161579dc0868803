"""One seed for every library. Seed 0 is a seed like any other (no `if seed:` shortcuts)."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed python, numpy and (if imported or importable) torch, CPU and CUDA."""
    if seed is None:
        raise ValueError("seed must be an integer (0 is fine); got None")
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses; this process hashes as it started
    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def derive_seed(seed: int, purpose: str) -> int:
    """A stable per-purpose seed (pairs, bootstrap, ...) derived from the run seed."""
    import hashlib

    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little")

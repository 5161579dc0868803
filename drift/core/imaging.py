"""Reading image files the same way everywhere (data loaders check images, encoders read them)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drift.core.errors import ImageReadError

if TYPE_CHECKING:
    import torch
    from PIL import Image

# Threads that decode and transform one batch of images: PIL and torchvision release the GIL, so
# on a GPU machine the encoder is no longer bound by one core's decoding (results/gpu_check/).
MAX_LOAD_THREADS = 8

# Every image loader composites transparency onto white before the model's own transform, so
# cut-out images (e.g. PNG stamps) look the same to every image encoder.
IMAGE_LOADING = "rgb,alpha_on_white"


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB (transparent areas on white), or raise ImageReadError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return Image.alpha_composite(canvas, rgba).convert("RGB")
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"cannot read image {str(path)!r}: {err}") from err


def load_threads() -> int:
    """Threads that decode images: MAX_LOAD_THREADS, at most one per core this process may use
    (1: decode in the calling thread)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_LOAD_THREADS, cores or 1))


@cache
def _load_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, "load_image")


def load_batch(
    paths: Sequence[str | Path], transform: Callable[[Image.Image], Any]
) -> torch.Tensor:
    """`transform(load_image(path))` of every path, decoded in parallel, stacked in order."""
    import torch

    def load(path: str | Path) -> Any:
        return transform(load_image(path))

    threads = load_threads()
    tensors = map(load, paths) if threads == 1 else _load_pool(threads).map(load, paths)
    return torch.stack(list(tensors))

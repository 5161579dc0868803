"""Reading image files the same way everywhere (data loaders check images, encoders read them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from drift.errors import ImageReadError

if TYPE_CHECKING:
    from PIL import Image

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

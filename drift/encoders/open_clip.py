"""One tower (image or text) of an open_clip CLIP model.

Online, `pretrained` names an open_clip tag ("openai", "laion2b_s34b_b79k", ...) that open_clip
downloads. Offline no package ships CLIP weights, so a tag needs `checkpoint_path` (a state dict
file for that architecture and tag, e.g. one open_clip cached on a machine with internet).
`pretrained: null` builds the architecture with seeded random weights: it exercises the code path,
and every result built on it says real_weights=False.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np

from drift.core.errors import ConfigError, ModelUnavailableError
from drift.core.imaging import IMAGE_LOADING, load_batch
from drift.encoders.base import ENCODERS, BatchedEncoder, Role
from drift.encoders.common import batch_size_on, resolve_torch_device
from drift.encoders.resolver import hub_errors, is_offline, weights_record

log = logging.getLogger(__name__)


@ENCODERS.register("open_clip")
class OpenClipEncoder(BatchedEncoder):
    """The image or text tower of an open_clip model; both map into the same embedding space.

    Args:
        architecture: open_clip model name ("ViT-B-32", "ViT-L-14", "ViT-S-32", ...).
        pretrained: open_clip pretrained tag, or None for seeded random weights.
        tower: "image" (items are image file paths) or "text".
        checkpoint_path: local weights for `architecture`/`pretrained` (required offline).
        seed: seeds the random weights when pretrained is None.
        batch_size: default items per forward pass; one number, or one per device kind
            ({"cpu": 8, "cuda": 128}: see drift.encoders.common.batch_size_on).
        normalize: L2-normalise outputs.
    """

    real_weights: bool

    def __init__(
        self,
        architecture: str,
        pretrained: str | None,
        tower: Literal["image", "text"] = "image",
        checkpoint_path: str | Path | None = None,
        *,
        seed: int = 0,
        batch_size: int | Mapping[str, int] = 64,
        normalize: bool = True,
        device: str = "auto",
        offline: bool | None = None,
        model_cache_dir: str | Path | None = None,
    ) -> None:
        import open_clip
        import torch

        if tower not in ("image", "text"):
            raise ConfigError(f"tower must be 'image' or 'text', got {tower!r}")
        if architecture not in open_clip.list_models():
            raise ConfigError(
                f"unknown open_clip architecture {architecture!r}; see open_clip.list_models()"
            )
        self._device = resolve_torch_device(device)
        version = open_clip.__version__
        kwargs: dict = {"device": self._device.device, "precision": self._device.dtype_name}

        if pretrained is None:
            if checkpoint_path is not None:
                raise ConfigError("checkpoint_path needs `pretrained` set to the checkpoint's tag")
            self.revision = f"open_clip=={version}:random-seed{seed}"
            self.source = "random"
            self.weights = weights_record("random", note=f"random weights, seed {seed}")
            self.real_weights = False
            message = (
                f"{architecture} has RANDOM weights (pretrained: null, seed {seed}): fine for "
                "testing the CLIP code path, never a CLIP result"
            )
            warnings.warn(message, stacklevel=2)
            log.warning(message)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    architecture, pretrained=None, **kwargs
                )
        else:
            tag_cfg = open_clip.get_pretrained_cfg(architecture, pretrained)
            if not tag_cfg:
                raise ConfigError(
                    f"open_clip has no pretrained tag {pretrained!r} for {architecture}; tags: "
                    f"{', '.join(open_clip.list_pretrained_tags_by_model(architecture))}"
                )
            self.real_weights = True
            if checkpoint_path is not None:
                checkpoint = Path(checkpoint_path).expanduser()
                if not checkpoint.is_file():
                    raise ModelUnavailableError(
                        f"checkpoint_path {str(checkpoint)!r} is not a file"
                    )
                self.source = "checkpoint"
                self.weights = weights_record("checkpoint", note=f"checkpoint_path {checkpoint}")
            elif is_offline(offline):
                raise ModelUnavailableError(
                    f"{architecture}/{pretrained}: no PyPI package ships CLIP weights, so offline "
                    "it needs checkpoint_path=<weights file> (e.g. the file open_clip downloads "
                    "on a machine with internet), or go online (unset HF_HUB_OFFLINE). "
                    "pretrained: null gives random weights for testing only."
                )
            else:
                self.source = "hub"
                self.weights = weights_record("hub")
                offline_fix = (
                    "To run without the hub, set checkpoint_path to this tag's weights file "
                    "(no PyPI package ships CLIP weights)."
                )
                # Downloaded here rather than by create_model_and_transforms, which reports a
                # failed download as a bare RuntimeError, and so that the file's hash pins the
                # revision (open_clip downloads a tag's file from the hub's main branch).
                with hub_errors(f"{architecture}/{pretrained}", None, offline_fix=offline_fix):
                    checkpoint = Path(open_clip.download_pretrained(tag_cfg))
            self.revision = f"open_clip=={version}:{pretrained}:sha256={_sha256(checkpoint)}"
            # A file path carries no tag, so pass on what the tag implies for the model.
            model, _, preprocess = open_clip.create_model_and_transforms(
                architecture,
                pretrained=str(checkpoint),
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                image_mean=tag_cfg.get("mean"),
                image_std=tag_cfg.get("std"),
                image_interpolation=tag_cfg.get("interpolation"),
                image_resize_mode=tag_cfg.get("resize_mode"),
                **kwargs,
            )

        model.eval()
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(architecture)
        self.name = f"{architecture}/{pretrained if pretrained else 'random'}"
        self.tower = tower
        self.modality = tower
        self.sort_by_length = tower == "text"
        self.dim = int(open_clip.get_model_config(architecture)["embed_dim"])
        self.batch_size = batch_size_on(batch_size, self._device)
        self.normalize = bool(normalize)
        if tower == "image":
            cfg = open_clip.get_model_preprocess_cfg(model)
            summary = ";".join(
                f"{k}={cfg[k]}"
                for k in ("size", "resize_mode", "interpolation", "mean", "std")
                if k in cfg
            )
            tower_prep = f"load={IMAGE_LOADING};{summary}"
        else:
            tower_prep = f"context_length={self._tokenizer.context_length}"
        self.preprocessing = (
            f"tower={tower};normalize={self.normalize};{tower_prep};dtype={self._device.dtype_name}"
        )

    @property
    def label(self) -> str:
        return f"{self.name} {self.tower}"

    def _encode_batch(self, items: list[str], role: Role) -> np.ndarray:
        """Image paths (image tower) or texts (text tower) of one batch."""
        return self._encode_images(items) if self.tower == "image" else self._encode_texts(items)

    def _encode_images(self, paths: list[str]) -> np.ndarray:
        import torch

        x = load_batch(paths, self._preprocess)
        x = x.to(self._device.device, torch.float16 if self._device.fp16 else torch.float32)
        with torch.inference_mode():
            return self._model.encode_image(x).float().cpu().numpy()

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self._tokenizer(texts).to(self._device.device)
        with torch.inference_mode():
            return self._model.encode_text(tokens).float().cpu().numpy()


def _sha256(path: Path) -> str:
    """First 16 hex digits of the file's sha256: the weights' identity in cache keys."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(16 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]

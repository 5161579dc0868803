"""A BERT-style sentence encoder exported to ONNX (paraphrase-MiniLM-L3-v2), run with onnxruntime.

Mean pooling over the attention mask and L2 normalisation are done here, as the model's
sentence-transformers config prescribes, from the ONNX graph's last hidden state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from drift.core.errors import ConfigError, ModelUnavailableError
from drift.encoders.base import ENCODERS, BatchedEncoder, Role
from drift.encoders.common import CPU, batch_size_on
from drift.encoders.resolver import hub_errors, require_format, resolve_model


@ENCODERS.register("onnx_minilm")
class OnnxMiniLMEncoder(BatchedEncoder):
    """An ONNX MiniLM text encoder (mean-pooled last hidden state).

    Args:
        model_id: hub id; online the hub's onnx/model.onnx and tokenizer.json are downloaded at
            `revision`, offline the bundled copy is used (drift.encoders.resolver).
        revision: pinned hub commit (online).
        batch_size: default texts per run; one number, or one per device kind (onnxruntime
            runs on CPU here: see drift.encoders.common.batch_size_on).
        normalize: L2-normalise outputs.
        max_seq_length: tokens kept per text (128 for paraphrase-MiniLM-L3-v2).
        device: "auto" (CUDA when onnxruntime has its CUDA provider, else CPU), "cpu", "cuda[:N]".
    """

    modality = "text"
    sort_by_length = True

    def __init__(
        self,
        model_id: str = "sentence-transformers/paraphrase-MiniLM-L3-v2",
        revision: str | None = None,
        *,
        batch_size: int | Mapping[str, int] = 64,
        normalize: bool = True,
        max_seq_length: int = 128,
        device: str = "auto",
        offline: bool | None = None,
        model_cache_dir: str | Path | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        resolved = resolve_model(
            model_id, revision, offline=offline, model_cache_dir=model_cache_dir
        )
        require_format(resolved, "onnx", "onnx_minilm")
        if resolved.source == "hub":
            from huggingface_hub import hf_hub_download

            with hub_errors(model_id, resolved.revision):
                onnx_path = hf_hub_download(model_id, "onnx/model.onnx", revision=resolved.revision)
                tokenizer_path = hf_hub_download(
                    model_id, "tokenizer.json", revision=resolved.revision
                )
        else:
            onnx_path, tokenizer_path = resolved.location, resolved.tokenizer

        self._session = ort.InferenceSession(onnx_path, providers=_providers(device, ort))
        self._hidden = _last_hidden_state(self._session, onnx_path)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.enable_truncation(int(max_seq_length))
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in a batch

        self.name = model_id
        self.revision = resolved.revision
        self.source = resolved.source
        self.weights = resolved.weights()
        self.dim = int(self._hidden.shape[-1])
        self.batch_size = batch_size_on(batch_size, CPU)  # onnxruntime runs on CPU here
        self.normalize = bool(normalize)
        self.preprocessing = (
            f"normalize={self.normalize};max_seq_length={int(max_seq_length)};pooling=mean;"
            "runtime=onnx"
        )

    def token_lengths(self, items: Sequence[str], role: Role) -> list[int]:
        """Tokens per text after truncation (the tokenizer pads a batch, so the mask counts)."""
        return [sum(e.attention_mask) for e in self._tokenizer.encode_batch(list(items))]

    def _encode_batch(self, texts: list[str], role: Role) -> np.ndarray:
        """Mean-pooled states of one batch; `role` has no effect."""
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = self._session.run([self._hidden.name], feed)
        weights = mask[:, :, None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _providers(device: str, ort) -> list:
    """onnxruntime execution providers for `device` ("auto": CUDA when this build has it)."""
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    if device == "auto" or device == "cuda" or device.startswith("cuda:"):
        if not has_cuda:
            raise ConfigError(
                f"device={device!r}, but this onnxruntime has no CUDA provider "
                "(install onnxruntime-gpu), or use device=auto/cpu"
            )
        device_id = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": device_id}), "CPUExecutionProvider"]
    raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def _last_hidden_state(session, path: str):
    """The graph output holding per-token states [batch, tokens, dim]."""
    outputs = [o for o in session.get_outputs() if len(o.shape) == 3 and o.type == "tensor(float)"]
    if len(outputs) != 1 or not isinstance(outputs[0].shape[-1], int):
        raise ModelUnavailableError(
            f"{path}: expected one float output [batch, tokens, dim] with a fixed dim, found "
            f"{[(o.name, o.shape, o.type) for o in session.get_outputs()]}"
        )
    return outputs[0]

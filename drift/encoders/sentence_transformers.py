"""sentence-transformers models (all-MiniLM-L6-v2, all-mpnet-base-v2, ...), hub or bundled copy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from drift.encoders.base import ENCODERS, BaseEncoder, Role
from drift.encoders.common import (
    batch_size_on,
    check_items,
    resolve_torch_device,
    tokens_per_batch_on,
)
from drift.encoders.resolver import hub_errors, require_format, resolve_model

TOKENIZE_BLOCK = 4096  # texts tokenised at once when counting tokens (bounds the ids kept)


@ENCODERS.register("sentence_transformers")
class SentenceTransformerEncoder(BaseEncoder):
    """A sentence-transformers text model; sentence-transformers batches (and length-sorts) the
    texts itself.

    Args:
        model_id: hub id; offline it resolves to a bundled copy (drift.encoders.resolver).
        revision: pinned hub commit (online).
        batch_size: default texts per forward pass; one number, or one per device kind
            ({"cpu": 8, "cuda": 128}: see drift.encoders.common.batch_size_on).
        tokens_per_batch: padded tokens per forward pass when the cache plans the batches
            (drift.encoders.batching), one number or one per device kind; null: `batch_size`.
        precision: null (fp16 on CUDA, fp32 on CPU), "fp32", "bf16" (CPUs with AVX512-BF16 or
            AMX, recent GPUs) or "fp16" (CUDA); the weights are cast to it, and it is part of
            `preprocessing`, so each precision has its own cache folder.
        normalize: L2-normalise outputs (models with a Normalize module are unit-norm anyway).
        max_seq_length: tokens kept per text; None keeps the model's own setting.
        query_prefix / document_prefix: prepended to queries / documents (e.g. e5's "query: ").
        device: "auto" (CUDA in fp16 if present, else CPU), "cpu", "cuda", "cuda:N".
        offline: see drift.encoders.resolver.resolve_model.
        model_cache_dir: where bundled copies are unpacked.
    """

    modality = "text"

    def __init__(
        self,
        model_id: str,
        revision: str | None = None,
        *,
        batch_size: int | Mapping[str, int] = 64,
        tokens_per_batch: int | Mapping[str, int] | None = None,
        precision: str | None = None,
        normalize: bool = True,
        max_seq_length: int | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
        device: str = "auto",
        offline: bool | None = None,
        model_cache_dir: str | Path | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self._device = resolve_torch_device(device, precision)  # bad settings fail before loading
        resolved = resolve_model(
            model_id, revision, offline=offline, model_cache_dir=model_cache_dir
        )
        require_format(resolved, "sentence_transformers", "sentence_transformers")
        if resolved.source == "hub":
            with hub_errors(model_id, resolved.revision):
                self._model = SentenceTransformer(
                    model_id, device=self._device.device, revision=resolved.revision
                )
        else:
            self._model = SentenceTransformer(
                resolved.location, device=self._device.device, local_files_only=True
            )
        if max_seq_length is not None:
            self._model.max_seq_length = int(max_seq_length)
        if self._device.dtype_name != "fp32":
            self._model.to(self._device.torch_dtype)
        self._model.eval()

        self.name = model_id
        self.revision = resolved.revision
        self.source = resolved.source
        self.weights = resolved.weights()
        # sentence-transformers 6 renamed the method; older releases have only the old name.
        get_dim = getattr(self._model, "get_embedding_dimension", None)
        self.dim = int(get_dim() if get_dim else self._model.get_sentence_embedding_dimension())
        self.batch_size = batch_size_on(batch_size, self._device)
        self.tokens_per_batch = tokens_per_batch_on(tokens_per_batch, self._device)
        self.normalize = bool(normalize)
        self._prefixes = {"query": query_prefix, "document": document_prefix}
        self.asymmetric = query_prefix != document_prefix
        self.max_seq_length: int | None = self._model.max_seq_length  # None: no token limit
        self.preprocessing = (
            f"normalize={self.normalize};max_seq_length={self.max_seq_length};"
            f"query_prefix={query_prefix!r};document_prefix={document_prefix!r};"
            f"dtype={self._device.dtype_name}"
        )

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text (special tokens included) before truncation to max_seq_length."""
        tokenizer = self._model.tokenizer
        return [
            len(tokenizer(t, truncation=False)["input_ids"]) for t in check_items(texts, "text")
        ]

    def token_lengths(self, items: Sequence[str], role: Role) -> list[int]:
        """Tokens per text in a forward pass: prefix and special tokens included, truncated to
        max_seq_length (the fast tokenizer, on blocks of texts so only the counts are kept)."""
        prefix, limit = self._prefixes[role], self.max_seq_length
        counts: list[int] = []
        for start in range(0, len(items), TOKENIZE_BLOCK):
            block = [prefix + t for t in items[start : start + TOKENIZE_BLOCK]]
            ids = self._model.tokenizer(block, truncation=limit is not None, max_length=limit)
            counts += [len(x) for x in ids["input_ids"]]
        return counts

    def _encode(
        self, items: list[str], role: Role, batch_size: int, show_progress: bool
    ) -> np.ndarray:
        prefix = self._prefixes[role]
        return self._model.encode(
            [prefix + t for t in items] if prefix else items,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )

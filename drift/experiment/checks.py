"""What a run refuses, or warns about, before it spends time: settings that would make its
numbers mean something else than they say.

Each check reads the composed config and the loaded encoders; drift.experiment.pipeline calls
them before encoding (the pair role, the encoders' modalities, the index's dimension) or as soon
as the drift is measured (an uncentred Procrustes map on an anisotropic space). What the config
alone decides is checked earlier still, before anything loads (drift.experiment.validation).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from drift.core.errors import ConfigError, DataError
from drift.data.pairs import check_pair_role_name
from drift.data.types import RetrievalData
from drift.encoders import Encoder
from drift.retrieval.index import IndexSpec
from drift.retrieval.mixed.plan import MIXED_FAMILIES


def check_modalities(
    encoder: Encoder, query_encoder: Encoder, data: RetrievalData, side: str
) -> None:
    """Each encoder reads what its part of the dataset holds; a separate query encoder maps into
    the corpus encoder's space (same dimension)."""
    separate = query_encoder is not encoder
    for part, enc, modality in (
        ("items", encoder, data.corpus_modality),
        ("queries", query_encoder, data.query_modality),
    ):
        if enc.modality != modality:
            hint = ""
            if part == "queries" and not separate:
                hint = (
                    f"; set {side}_query_encoder to a {modality} encoder of the same model, e.g. "
                    f"+encoder@{side}_query_encoder=clip_vit_b32_text"
                )
            which = f"{side}_query_encoder" if part == "queries" and separate else f"{side} encoder"
            raise DataError(
                f"{which} {enc.name!r} encodes {enc.modality} items but dataset {data.name!r} "
                f"holds {modality} {part}{hint}"
            )
    if separate and query_encoder.dim != encoder.dim:
        raise ConfigError(
            f"{side}_query_encoder {query_encoder.name!r} gives {query_encoder.dim}-d vectors but "
            f"the {side} corpus encoder {encoder.name!r} gives {encoder.dim}-d: a query tower "
            "must map into the corpus encoder's space"
        )


def pairs_reused_as_documents(cfg: Mapping[str, Any]) -> list[str]:
    """What counts the pairs' new-model vectors as corpus documents already encoded: the
    strategies beyond the paper, the stream and the timeline (which refits on corpus rows)."""
    reusing = [s for s in cfg["eval"]["strategies"] if s in MIXED_FAMILIES]
    reusing += ["stream"] if cfg["stream"]["enabled"] else []
    reusing += ["timeline"] if cfg["timeline"]["enabled"] else []
    return reusing


def check_pair_role_settings(role: str, cfg: Mapping[str, Any]) -> None:
    """Refuse, from the config alone, a pair role that is unknown or that something the run
    does would take for corpus documents: held-out queries (`query_log`) are no corpus rows."""
    check_pair_role_name(role)
    reusing = pairs_reused_as_documents(cfg)
    if role == "query_log" and reusing:
        raise ConfigError(
            f"adapter.pair_role=query_log trains on held-out queries, but {', '.join(reusing)} "
            "reuse the pairs as corpus documents already encoded by the new model; drop them "
            "(eval.strategies, stream.enabled=false, timeline.enabled=false) or use "
            "adapter.pair_role=document"
        )


def check_pair_role(
    role: str,
    cfg: dict[str, Any],
    encoders: Mapping[str, Encoder],
    query_encoders: Mapping[str, Encoder],
) -> None:
    """Refuse pairs where they mean something else than the adapter's input: what the config
    alone decides (check_pair_role_settings, also checked before anything loads), then what
    the encoders decide.

    Corpus items in the query role need queries and corpus to go through the same encoder, and
    are document vectors only for a symmetric model. (An asymmetric old model costs Np
    old-model query encodes, outside the new-model encode counts.)
    """
    check_pair_role_settings(role, cfg)
    if role != "query":
        return
    separate = [side for side in encoders if query_encoders[side] is not encoders[side]]
    if separate:
        raise ConfigError(
            f"adapter.pair_role=query encodes the pair items (corpus items) in the query role, "
            f"but queries go through a separate query encoder on the {' and '.join(separate)} "
            "side; use adapter.pair_role=document"
        )
    asymmetric = [encoders[side].name for side in ("old", "new") if encoders[side].asymmetric]
    if cfg["timeline"]["enabled"] and asymmetric:
        raise ConfigError(
            f"adapter.pair_role=query with the asymmetric model {asymmetric[0]!r}: the timeline "
            "refits its adapters on backfilled documents, in the document role; set "
            "timeline.enabled=false or use adapter.pair_role=document"
        )
    if not encoders["new"].asymmetric:
        return
    reusing = [s for s in pairs_reused_as_documents(cfg) if s != "timeline"]
    if reusing:
        raise ConfigError(
            f"adapter.pair_role=query with the asymmetric new model {encoders['new'].name!r}: "
            f"{', '.join(reusing)} count the pairs' new-model vectors as document vectors "
            "already paid for, which query-role vectors are not; drop them (eval.strategies, "
            "stream.enabled=false) or use adapter.pair_role=document"
        )


def check_index_dims(spec: IndexSpec, encoders: Mapping[str, Encoder]) -> None:
    """Refuse, once the models are loaded and before they encode, a corpus dimension the index
    cannot hold (IVF-PQ: index.pq_m must divide it): an encoder config seldom states its
    dimension, so this is the first moment it is known."""
    for side, encoder in encoders.items():
        try:
            spec.check_dim(encoder.dim)
        except ConfigError as err:
            raise ConfigError(f"index with the {side} model {encoder.name!r}: {err}") from err


ANISOTROPIC_MEAN_COSINE = 0.5


def warn_uncentred_procrustes(measured_drift: dict[str, Any], methods: dict[str, Any]) -> None:
    """Warn when an uncentred Procrustes map starts from (or lands in) an anisotropic space.

    Such a space's vectors share one dominant direction, which an orthogonal map must carry
    across: on MiniLM-L6 -> e5-small (mean cosine .83) uncentred OP falls to a quarter of the
    status quo and centring triples it (experiment=asymmetric_pairs).
    """
    if "procrustes" not in methods or (methods["procrustes"] or {}).get("center"):
        return  # no Procrustes, or a centred one (`procrustes: null` is the uncentred default)
    sides = {
        side: measured_drift.get(f"mean_cosine_{side}", float("nan")) for side in ("old", "new")
    }
    anisotropic = {side: v for side, v in sides.items() if v > ANISOTROPIC_MEAN_COSINE}
    if anisotropic:
        shown = ", ".join(f"{side} {value:.2f}" for side, value in anisotropic.items())
        warnings.warn(
            f"anisotropic embedding space (mean cosine between items: {shown}): uncentred "
            "Procrustes must carry the shared direction across; consider "
            "adapter.methods.procrustes.center=true (see experiment=asymmetric_pairs)",
            stacklevel=2,
        )

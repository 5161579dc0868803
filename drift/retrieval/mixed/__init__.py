"""Strategies that mix the old index with some new-model document vectors (beyond the paper).

The paper's adapter never encodes a document with the new model, and on real corpora it barely
moves quality (results/paper_cpu/README.md: Procrustes at 0.573 kNN R@10 against the status quo's
0.504, and below it under relevance labels). These strategies spend some new-model document
encodes to get closer to a full re-embedding, and count what they spend, so that quality and cost
can be compared:

- rerank:   take candidates from the old index (status quo, adapter, or the union of both), encode
            those documents with the new model on demand (each document once, then kept), and
            re-score them with the new query. Cost: distinct documents encoded.
- fusion:   fuse status-quo and adapter scores over the union of their top lists; both are cosines
            in the old space, normalised per query (zscore, minmax, none, or rank-based rrf).
            Cost: nothing beyond the adapter's pairs.
- backfill: a fraction f of the corpus is re-encoded into a new-model index; queries search it
            with the new query and the old index (items not yet migrated) with a base strategy,
            and the two lists are merged (rrf, zscore, or an affine score calibration fitted on past
            traffic). Cost: f * N encodes.

Row ids are shared: row i of the old and new corpus vectors is the same item. Here the new-model
document vectors come from the experiment's (cached) encodes, which are exactly what an on-demand
encode would return; what such encodes cost in time follows from measured throughput
(drift.migration.stream). Answers use the same evaluator as every other strategy.

"Past traffic" (popularity order, score calibration) must never include the query being answered:
queries are split into seeded folds and each fold is answered with what the other folds taught
(cross-fitting), so every query is answered once and from others' traffic only.

Modules: rerank.py, fusion.py, backfill.py (one strategy each), plan.py (the variants an
experiment runs, from the `eval.mixed` block of the config).
"""

from __future__ import annotations

from typing import Any


def encode_cost(n_encodes: int, n_corpus: int, **extra: Any) -> dict[str, Any]:
    """A strategy's cost in new-model document encodes, absolute and as a share of the corpus."""
    return {
        "new_doc_encodes": int(n_encodes),
        "share_encoded": n_encodes / max(n_corpus, 1),
        **extra,
    }

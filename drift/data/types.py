"""`RetrievalData`: the one shape every dataset loader returns."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from drift.core.errors import DataError

ItemModality = Literal["text", "image", "synthetic"]
MAX_NAMED = 5  # blank items a warning names


@dataclass
class RetrievalData:
    """A corpus, a query set, and optional relevance labels.

    Items are texts, image file paths, or synthetic item ids, as `corpus_modality` and
    `query_modality` say. `qrels[query_id][doc_id] = relevance` (> 0 means relevant); None when
    the dataset has no labels (then only the kNN protocol applies).
    """

    name: str
    corpus_ids: list[str]
    corpus: list[str]
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, int]] | None = None
    corpus_modality: ItemModality = "text"
    query_modality: ItemModality = "text"
    revision: str = "unknown"
    synthetic: bool = False
    meta: dict = field(default_factory=dict)
    # `validate` runs on every copy a loader hands on; each object warns of blank texts once.
    _blank_warned: bool = field(default=False, init=False, repr=False, compare=False)

    def validate(self) -> RetrievalData:
        """Raise DataError naming the first inconsistency; return self when all is well."""
        if not self.corpus:
            raise DataError(f"dataset {self.name!r}: the corpus is empty")
        if not self.queries:
            raise DataError(f"dataset {self.name!r}: the query set is empty")
        if len(self.corpus_ids) != len(self.corpus):
            raise DataError(
                f"dataset {self.name!r}: {len(self.corpus_ids)} corpus ids for "
                f"{len(self.corpus)} items"
            )
        if len(self.query_ids) != len(self.queries):
            raise DataError(
                f"dataset {self.name!r}: {len(self.query_ids)} query ids for "
                f"{len(self.queries)} queries"
            )
        for what, ids in (("corpus", self.corpus_ids), ("query", self.query_ids)):
            repeated = [i for i, n in Counter(ids).items() if n > 1]
            if repeated:
                raise DataError(
                    f"dataset {self.name!r}: {len(repeated)} {what} ids appear more than once "
                    f"(e.g. {repeated[:5]})"
                )
        if self.qrels is not None:
            doc_ids = set(self.corpus_ids)
            missing = {d for rel in self.qrels.values() for d in rel if d not in doc_ids}
            if missing:
                raise DataError(
                    f"dataset {self.name!r}: qrels name {len(missing)} documents that are not in "
                    f"the corpus (e.g. {sorted(missing)[:5]})"
                )
            unknown_q = set(self.qrels) - set(self.query_ids)
            if unknown_q:
                raise DataError(
                    f"dataset {self.name!r}: qrels name {len(unknown_q)} queries that are not in "
                    f"the query set (e.g. {sorted(unknown_q)[:5]})"
                )
        self._warn_blank()
        return self

    def blank_ids(self) -> dict[str, list[str]]:
        """{"corpus": ids, "queries": ids} of the texts that are empty or only whitespace.

        A text encoder still gives them a vector, and they are indexed and scored like any other
        item without saying a word, so they are counted (`summary`) and warned of (`validate`).
        Image and synthetic items are never blank.
        """
        sides = {
            "corpus": (self.corpus_modality, self.corpus_ids, self.corpus),
            "queries": (self.query_modality, self.query_ids, self.queries),
        }
        return {
            side: [i for i, item in zip(ids, items, strict=True) if _is_blank(item)]
            if modality == "text"
            else []
            for side, (modality, ids, items) in sides.items()
        }

    def _warn_blank(self) -> None:
        if self._blank_warned:
            return
        self._blank_warned = True
        blank = self.blank_ids()
        found = [
            f"{len(ids)} of {len(items)} {noun} (e.g. {ids[:MAX_NAMED]})"
            for ids, items, noun in (
                (blank["corpus"], self.corpus, "documents"),
                (blank["queries"], self.queries, "queries"),
            )
            if ids
        ]
        if found:
            warnings.warn(
                f"dataset {self.name!r}: {' and '.join(found)} are empty or whitespace-only "
                "texts; they are encoded and scored like any other (counted in the result "
                "file's dataset.blank)",
                stacklevel=3,
            )

    def summary(self) -> dict:
        """Sizes and provenance, as stored in result files."""
        return {
            "name": self.name,
            "revision": self.revision,
            "n_corpus": len(self.corpus),
            "n_queries": len(self.queries),
            "n_qrels": sum(len(r) for r in self.qrels.values()) if self.qrels else 0,
            "has_qrels": self.qrels is not None,
            "corpus_modality": self.corpus_modality,
            "query_modality": self.query_modality,
            "synthetic": self.synthetic,
            "blank": {side: len(ids) for side, ids in self.blank_ids().items()},
            **self.meta,
        }


def _is_blank(item: object) -> bool:
    return isinstance(item, str) and (not item or item.isspace())

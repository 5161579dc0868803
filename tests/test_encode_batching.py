"""Length-aware batching (drift.encoders.batching) and the cache's encode loop built on it:
longest first across all misses, batches within a token budget, chunked commits that resume, the
vectors back in item order, and a progress bar that moves per batch."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from test_encoders import _shared

import drift.encoders.cache as cache_module
from drift.core.errors import ConfigError
from drift.encoders.batching import BatchPlan, budget_batches, plan_batches
from drift.encoders.cache import EmbeddingCache


class WordEncoder:
    """Test double, not a model: a text's "tokens" are its words plus 2 specials; each vector
    is drawn from a RNG seeded by the text. Records every call's items."""

    name = "test/word-encoder"
    revision = "test-double"
    dim = 4
    modality = "text"
    real_weights = False
    preprocessing = "none"
    asymmetric = False

    def __init__(self, *, tokens_per_batch: int | None = 20, batch_size: int = 3, fail_after=None):
        self.tokens_per_batch = tokens_per_batch
        self.batch_size = batch_size
        self.fail_after = fail_after
        self.calls: list[list[str]] = []

    def token_lengths(self, items, role):
        return [len(t.split()) + 2 for t in items]

    def encode(self, items, *, role="document", batch_size=None, show_progress=False):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("simulated kill")
        assert batch_size == len(items)  # the cache hands over exactly one batch per call
        self.calls.append(list(items))
        return np.stack([vector(t) for t in items])


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(4).astype(np.float32)


def sentences(n: int) -> list[str]:
    """Texts of 1 to 9 words, lengths shuffled."""
    rng = np.random.default_rng(0)
    return [" ".join(["w"] * int(k)) + f" {i}" for i, k in enumerate(rng.integers(0, 9, n))]


def test_budget_batches_stay_within_the_budget_longest_first():
    lengths = np.array([10, 10, 7, 5, 5, 5, 3, 1, 1, 1])
    batches = budget_batches(np.arange(10), lengths, 20, max_size=100)
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4, 5, 6, 7], [8, 9]]
    for batch in batches:  # padded size: items x the batch's longest item
        assert len(batch) * lengths[batch].max() <= 20
    one_each = budget_batches(np.arange(3), np.array([50, 40, 30]), 20, max_size=100)
    assert [len(b) for b in one_each] == [1, 1, 1]  # longer than the budget: alone
    capped = budget_batches(np.arange(10), np.ones(10, dtype=int), 1000, max_size=4)
    assert [len(b) for b in capped] == [4, 4, 2]
    with pytest.raises(ConfigError, match="tokens_per_batch"):
        budget_batches(np.arange(2), np.ones(2, dtype=int), 0, max_size=4)


def test_plan_sorts_the_whole_set_and_covers_every_item_once():
    items = sentences(40)
    plan = plan_batches(WordEncoder(), items, role="document", batch_size=None)
    assert (plan.sorted_by, plan.budget) == ("tokens", 20)
    order = np.concatenate(plan.batches)
    assert sorted(order.tolist()) == list(range(40))
    lengths = [len(items[i].split()) for i in order]
    assert lengths == sorted(lengths, reverse=True)
    assert len(plan.batches[-1]) > len(plan.batches[0])  # short texts share bigger batches


def test_plan_falls_back_to_fixed_sizes():
    items = sentences(10)
    fixed = plan_batches(WordEncoder(), items, role="document", batch_size=4)
    assert [len(b) for b in fixed.batches] == [4, 4, 2] and fixed.budget is None
    no_budget = plan_batches(
        WordEncoder(tokens_per_batch=None), items, role="query", batch_size=None
    )
    assert [len(b) for b in no_budget.batches] == [3, 3, 3, 1]

    class CharEncoder:  # a text encoder that cannot count tokens: sorted by characters
        modality = "text"
        batch_size = 2

    chars = plan_batches(CharEncoder(), ["ab", "abcd", "a", "abc"], role="query", batch_size=None)
    assert chars.sorted_by == "characters"
    assert [b.tolist() for b in chars.batches] == [[1, 3], [0, 2]]

    class ImageEncoder:  # no lengths: item order kept, one chunk's worth when no size is known
        modality = "image"

    images = plan_batches(
        ImageEncoder(), ["a", "b", "c"], role="query", batch_size=None, max_size=2
    )
    assert images.sorted_by == "none" and [b.tolist() for b in images.batches] == [[0, 1], [2]]
    with pytest.raises(ConfigError, match="batch_size"):
        plan_batches(CharEncoder(), ["a"], role="query", batch_size=0)


def test_chunks_group_whole_batches():
    plan = BatchPlan([np.arange(3), np.arange(3, 5), np.arange(5, 9), np.arange(9, 10)], "x", None)
    assert [[len(b) for b in chunk] for chunk in plan.chunks(5)] == [[3, 2], [4, 1]]
    assert [[len(b) for b in chunk] for chunk in plan.chunks(1)] == [[3], [2], [4], [1]]
    with pytest.raises(ConfigError, match="chunk_size"):
        next(plan.chunks(0))


class BarRecorder:
    """Stands in for tqdm: records each update."""

    updates: list[int] = []

    def __init__(self, *, total, disable=False, **_):
        self.total = total

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        BarRecorder.updates.append(n)


def test_cache_encodes_by_budget_in_item_order_and_the_bar_moves_per_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "tqdm", BarRecorder)
    BarRecorder.updates = []
    items = sentences(60)
    encoder = WordEncoder()
    cache = EmbeddingCache(tmp_path)
    out = cache.encode(encoder, items + items[:5], chunk_size=16, show_progress=True)
    np.testing.assert_array_equal(out, np.stack([vector(t) for t in items + items[:5]]))
    sizes = [len(call) for call in encoder.calls]
    assert BarRecorder.updates == sizes  # one update per batch, not per chunk
    assert len(sizes) > len(list((cache.folder(encoder) / "shards").glob("*.npy")))
    for call in encoder.calls:
        assert len(call) * max(len(t.split()) + 2 for t in call) <= 20
    assert sum(sizes) == 60 and cache.stats[encoder.name]["encoded"] == 60


def test_resumed_encode_encodes_only_what_is_missing(tmp_path):
    items = sentences(80)
    killed = WordEncoder(tokens_per_batch=60, fail_after=7)
    with pytest.raises(RuntimeError, match="simulated kill"):
        EmbeddingCache(tmp_path).encode(killed, items, chunk_size=16, show_progress=False)
    shards = list((EmbeddingCache(tmp_path).folder(killed) / "shards").glob("*.json"))
    assert shards, "whole chunks were committed before the kill"
    done = {t for call in killed.calls for t in call}

    rerun = WordEncoder(tokens_per_batch=60)
    out = EmbeddingCache(tmp_path).encode(rerun, items, chunk_size=16, show_progress=False)
    np.testing.assert_array_equal(out, np.stack([vector(t) for t in items]))
    again = {t for call in rerun.calls for t in call}
    assert len(again) < len(items) and len(again | done) == len(items)
    rerun.calls.clear()
    EmbeddingCache(tmp_path).encode(rerun, items, chunk_size=16, show_progress=False)
    assert rerun.calls == []


def test_a_fixed_batch_size_overrides_the_budget(tmp_path):
    encoder = WordEncoder()
    EmbeddingCache(tmp_path).encode(
        encoder, sentences(20), batch_size=5, chunk_size=10, show_progress=False
    )
    assert [len(c) for c in encoder.calls] == [5, 5, 5, 5]


def test_real_model_counts_tokens_and_budget_batches_keep_its_vectors(tmp_path):
    """all-MiniLM-L6-v2 (bundled): token counts match its tokenizer (truncated at its window),
    and vectors encoded in budget batches across chunks equal one plain encode call."""
    encoder = _shared("minilm_l6")
    assert encoder.tokens_per_batch is not None  # conf/encoder/minilm_l6.yaml sets a budget
    texts = [("alpha beta gamma " * k).strip() + f" {k}" for k in (1, 40, 3, 200, 2, 8, 120, 1)]
    counts = encoder.token_lengths(texts, "document")
    full = encoder.token_counts(texts)
    assert counts == [min(c, encoder.max_seq_length) for c in full]
    assert max(full) > encoder.max_seq_length  # one text is truncated
    plain = encoder.encode(texts, batch_size=1)
    cached = EmbeddingCache(tmp_path).encode(encoder, texts, chunk_size=3, show_progress=False)
    assert float((plain * cached).sum(axis=1).min()) >= 0.99999

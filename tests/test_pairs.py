"""Adapter training pairs: which items (corpus items or held-out queries), in which role."""

from __future__ import annotations

import numpy as np
import pytest

from drift.data.subsample import subsample
from drift.data.types import RetrievalData
from drift.errors import ConfigError
from drift.pairs import held_out_queries, pair_vectors, sample_pairs


def _encode_with_role(dim: int, calls: list[tuple[list[int], str]]):
    """A stand-in for a cached encoder: item i -> [i, role code, 0...], calls recorded."""

    def encode(items, role):
        calls.append((list(items), role))
        out = np.zeros((len(items), dim), dtype=np.float32)
        out[:, 0] = items
        out[:, 1] = 1.0 if role == "query" else 0.0
        return out

    return encode


def test_pairs_never_include_excluded_rows_and_split_train_then_val():
    excluded = np.zeros(50, dtype=bool)
    excluded[:10] = True
    split = sample_pairs(50, 20, val_fraction=0.25, seed=3, excluded=excluded)
    assert (split.train.size, split.val.size) == (15, 5)
    assert not set(split.rows) & set(range(10))
    np.testing.assert_array_equal(split.rows, np.concatenate([split.train, split.val]))


def test_document_role_reads_the_corpus_vectors_without_encoding():
    split = sample_pairs(30, 10, val_fraction=0.2, seed=0)
    x_new = np.arange(30 * 4, dtype=np.float32).reshape(30, 4)
    x_old = -x_new[:, :3]
    calls: list = []
    pairs = pair_vectors(
        split,
        "document",
        x_new=x_new,
        x_old=x_old,
        items=list(range(30)),
        encode_new=_encode_with_role(4, calls),
        encode_old=_encode_with_role(3, calls),
    )
    assert calls == []
    np.testing.assert_array_equal(pairs.train[0], x_new[split.train])
    np.testing.assert_array_equal(pairs.train[1], x_old[split.train])
    np.testing.assert_array_equal(pairs.val[0], x_new[split.val])
    np.testing.assert_array_equal(pairs.val[1], x_old[split.val])


def test_query_role_encodes_the_pair_items_as_queries_with_both_models():
    split = sample_pairs(30, 10, val_fraction=0.2, seed=0)
    calls: list = []
    pairs = pair_vectors(
        split,
        "query",
        x_new=np.zeros((30, 4), dtype=np.float32),
        x_old=np.zeros((30, 3), dtype=np.float32),
        items=list(range(30)),
        encode_new=_encode_with_role(4, calls),
        encode_old=_encode_with_role(3, calls),
    )
    assert calls == [(list(split.rows), "query")] * 2
    np.testing.assert_array_equal(pairs.train[0][:, 0], split.train)
    np.testing.assert_array_equal(pairs.val[1][:, 0], split.val)
    assert (pairs.new[:, 1] == 1.0).all() and (pairs.old[:, 1] == 1.0).all()


def test_query_log_pairs_are_queries_the_run_does_not_evaluate():
    queries = [f"question {i}" for i in range(40)]
    queries[39] = queries[0]  # the same text under another id
    data = RetrievalData(
        name="toy",
        corpus_ids=[f"d{i}" for i in range(40)],
        corpus=[f"answer {i}" for i in range(40)],
        query_ids=[f"q{i}" for i in range(40)],
        queries=queries,
    )
    evaluated = subsample(data, max_queries=10, seed=0)
    pool = held_out_queries(data, evaluated)
    assert not set(pool) & set(evaluated.queries)  # by id and by text
    kept = set(evaluated.queries)
    assert pool == [q for q in queries if q not in kept]
    assert len(pool) in (29, 30)  # 30 held out, less the duplicate when its twin is evaluated

    split = sample_pairs(len(pool), 12, val_fraction=0.25, seed=1, items_name="held-out queries")
    calls: list = []
    pairs = pair_vectors(
        split,
        "query_log",
        x_new=np.zeros((40, 4), dtype=np.float32),  # corpus vectors: not read
        x_old=np.zeros((40, 3), dtype=np.float32),
        items=pool,
        encode_new=lambda items, role: calls.append((items, role)) or np.ones((len(items), 4)),
        encode_old=lambda items, role: calls.append((items, role)) or np.ones((len(items), 3)),
    )
    assert calls == [([pool[i] for i in split.rows], "query")] * 2
    assert pairs.train[0].shape == (9, 4) and pairs.val[1].shape == (3, 3)
    with pytest.warns(UserWarning, match="exceeds the 29 eligible held-out queries|30 eligible"):
        sample_pairs(len(pool), 100, val_fraction=0.2, seed=0, items_name="held-out queries")


def test_a_pool_too_small_for_two_training_pairs_is_a_clear_error():
    with (
        pytest.warns(UserWarning, match="exceeds the 2 eligible"),
        pytest.raises(ConfigError, match="only 2 eligible held-out queries.*max_queries"),
    ):
        sample_pairs(2, 10, val_fraction=0.2, seed=0, items_name="held-out queries")
    with pytest.warns(UserWarning, match="using all 3"):
        assert sample_pairs(3, 10, val_fraction=0.2, seed=0).train.size == 2


def test_query_log_without_held_out_queries_says_how_to_hold_some_out():
    data = RetrievalData(
        name="toy", corpus_ids=["d0"], corpus=["a"], query_ids=["q0", "q1"], queries=["x", "y"]
    )
    with pytest.raises(ConfigError, match="all 2 queries of 'toy' are evaluated.*max_queries"):
        held_out_queries(data, subsample(data, max_queries=None))


def test_unknown_pair_role_is_a_clear_error():
    split = sample_pairs(10, 4, val_fraction=0.25, seed=0)
    with pytest.raises(ConfigError, match="pair_role must be one of"):
        pair_vectors(
            split,
            "passage",
            x_new=np.zeros((10, 2)),
            x_old=np.zeros((10, 2)),
            items=list(range(10)),
            encode_new=None,
            encode_old=None,
        )


def _config(strategies, stream=False, timeline=False):
    return {
        "eval": {"strategies": strategies},
        "stream": {"enabled": stream},
        "timeline": {"enabled": timeline},
    }


def test_query_role_needs_one_encoder_per_side_and_no_document_reuse():
    from types import SimpleNamespace

    from drift.experiment import check_pair_role

    e5 = SimpleNamespace(name="e5", asymmetric=True)
    minilm = SimpleNamespace(name="minilm", asymmetric=False)
    clip_text = SimpleNamespace(name="clip-text", asymmetric=False)
    same = {"old": minilm, "new": e5}
    paper = _config(["status_quo", "adapter"])
    check_pair_role("query", paper, same, same)  # fine: the paper's strategies only
    check_pair_role("document", _config(["rerank"], stream=True), same, same)
    with pytest.raises(ConfigError, match="separate query encoder on the new side"):
        check_pair_role("query", paper, same, {"old": minilm, "new": clip_text})
    with pytest.raises(ConfigError, match="rerank, stream count the pairs"):
        check_pair_role("query", _config(["adapter", "rerank"], stream=True), same, same)
    with pytest.raises(ConfigError, match="timeline refits"):  # an asymmetric old model too
        reversed_pair = {"old": e5, "new": minilm}
        check_pair_role("query", _config(["adapter"], timeline=True), reversed_pair, reversed_pair)
    symmetric = {"old": minilm, "new": minilm}  # query role = document role: nothing to refuse
    check_pair_role("query", _config(["rerank"], stream=True, timeline=True), symmetric, symmetric)
    with pytest.raises(ConfigError, match="pair_role must be one of"):
        check_pair_role("passages", paper, same, same)


def test_query_log_pairs_are_never_reused_as_corpus_documents():
    from types import SimpleNamespace

    from drift.experiment import check_pair_role

    minilm = SimpleNamespace(name="minilm", asymmetric=False)
    clip_text = SimpleNamespace(name="clip-text", asymmetric=False)
    symmetric = {"old": minilm, "new": minilm}
    # Held-out queries go through the query encoders, wherever those are.
    check_pair_role("query_log", _config(["adapter"]), symmetric, {"old": minilm, "new": clip_text})
    for reuse, match in (
        (_config(["adapter", "backfill"]), "but backfill reuse"),
        (_config(["adapter"], stream=True), "but stream reuse"),
        (_config(["adapter"], timeline=True), "but timeline reuse"),
    ):
        with pytest.raises(ConfigError, match=match):  # even with a symmetric model
            check_pair_role("query_log", reuse, symmetric, symmetric)

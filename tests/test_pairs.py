"""Adapter training pairs: which items (corpus items or held-out queries), in which role."""

from __future__ import annotations

import numpy as np
import pytest

from drift.core.errors import ConfigError
from drift.data.pairs import (
    held_out_queries,
    judged_mask,
    pair_vectors,
    query_text_mask,
    requested_pairs,
    sample_pairs,
)
from drift.data.subsample import subsample
from drift.data.types import RetrievalData


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


def test_gate_pairs_are_disjoint_from_training_and_validation_and_never_excluded():
    excluded = np.zeros(300, dtype=bool)
    excluded[::7] = True  # e.g. corpus items whose text equals an evaluated query's
    split = sample_pairs(300, 200, val_fraction=0.2, gate_fraction=0.1, seed=5, excluded=excluded)
    assert split.summary() == {"n_requested": 200, "n_train": 140, "n_val": 40, "n_gate": 20}
    train, val, gate = set(split.train), set(split.val), set(split.gate)
    assert not train & val and not train & gate and not val & gate
    assert len(train | val | gate) == 200
    assert not set(split.rows) & set(np.flatnonzero(excluded))
    np.testing.assert_array_equal(split.rows, np.concatenate([split.train, split.val, split.gate]))
    # The gate takes its rows from the training share: validation does not move, and without a
    # gate the split is the earlier train/validation split.
    no_gate = sample_pairs(300, 200, val_fraction=0.2, seed=5, excluded=excluded)
    np.testing.assert_array_equal(no_gate.val, split.val)
    np.testing.assert_array_equal(no_gate.train, np.union1d(split.train, split.gate))
    assert no_gate.gate.size == 0
    assert sample_pairs(30, 10, val_fraction=0.0, gate_fraction=0.01, seed=0).gate.size == 1


def test_bad_gate_fractions_are_clear_errors():
    with pytest.raises(ConfigError, match=r"adapter.gate_fraction must be in \[0, 1\)"):
        sample_pairs(30, 10, val_fraction=0.2, gate_fraction=1.0, seed=0)
    with pytest.raises(ConfigError, match="must leave pairs to train on"):
        sample_pairs(30, 10, val_fraction=0.6, gate_fraction=0.4, seed=0)
    with pytest.raises(
        ConfigError, match="besides the 1 held out for validation and 1 for the gate"
    ):
        sample_pairs(3, 3, val_fraction=0.2, gate_fraction=0.2, seed=0)


def test_no_adapter_sees_the_gate_pairs_and_the_run_saves_them_for_the_gate(tmp_path):
    from drift.core.timing import Timings
    from drift.experiment.fitting import fit_adapters
    from drift.migration.gate import gate_pairs, save_gate_pairs

    split = sample_pairs(100, 60, val_fraction=0.2, gate_fraction=0.1, seed=2)
    x_new = np.zeros((100, 4), dtype=np.float32)
    x_new[:, 0] = np.arange(100)  # each vector names its corpus row
    x_old = x_new[:, :3].copy()
    pairs = pair_vectors(
        split, "document", x_new=x_new, x_old=x_old, items=[], encode_new=None, encode_old=None
    )
    np.testing.assert_array_equal(pairs.gate[0][:, 0], split.gate)
    np.testing.assert_array_equal(pairs.gate[1][:, 0], split.gate)

    class Recorder:
        """Stands in for an adapter: records the rows `fit` receives."""

        def fit(self, x_new, x_old, *, x_new_val, x_old_val, seed):
            self.seen = {"train": x_new[:, 0], "val": x_new_val[:, 0], "val_old": x_old_val[:, 0]}
            return self

    fitted, unfit = fit_adapters({"spy": Recorder()}, pairs, seed=0, timings=Timings())
    seen = fitted["spy"].seen
    assert not unfit
    np.testing.assert_array_equal(seen["train"], split.train)
    np.testing.assert_array_equal(seen["val"], split.val)
    np.testing.assert_array_equal(seen["val_old"], split.val)
    assert not set(split.gate) & (set(seen["train"]) | set(seen["val"]))

    held_out = gate_pairs(pairs.gate, pairs.val, fitted)
    assert held_out.source == "gate" and held_out.seen_by == ()
    saved = save_gate_pairs(tmp_path, held_out)
    assert saved == {"gate_pairs": str(tmp_path / "gate_pairs.npz")}
    with np.load(saved["gate_pairs"], allow_pickle=False) as gate:
        np.testing.assert_array_equal(gate["new"][:, 0], split.gate)
        np.testing.assert_array_equal(gate["old"][:, 0], split.gate)


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
    # Seed 0 evaluates q0 and holds out its twin q39: held out by id, but not by text.
    assert "q0" in evaluated.query_ids and "q39" not in evaluated.query_ids
    assert len(pool) == 29 and queries[39] not in pool  # 30 held out, less the twin

    split = sample_pairs(
        len(pool), 12, val_fraction=0.25, gate_fraction=0.25, seed=1, items_name="held-out queries"
    )
    assert not {pool[i] for i in split.gate} & kept  # the gate's pairs: no evaluated query either
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
    assert pairs.train[0].shape == (6, 4) and pairs.val[1].shape == (3, 3)
    assert pairs.gate[0].shape == (3, 4)
    with pytest.warns(UserWarning, match="exceeds the 29 eligible held-out queries"):
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

    from drift.experiment.checks import check_pair_role

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

    from drift.experiment.checks import check_pair_role

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


def test_np_as_a_fraction_of_the_corpus():
    assert requested_pairs(20_000, None, 5_818) == 20_000
    assert [requested_pairs(20_000, f, 5_818) for f in (0.02, 0.05, 0.8)] == [116, 291, 4654]
    assert requested_pairs(20_000, 0.0001, 100) == 2  # never fewer than a fit needs
    with pytest.raises(ConfigError, match="n_pairs_fraction"):
        requested_pairs(20_000, 1.5, 100)


def test_judged_documents_and_query_texts_are_never_pairs():
    """The guards that keep the evaluated queries' answers (exclude_judged) and any corpus item
    equal to a query out of the adapter's pairs, even when Np asks for the whole corpus."""
    data = RetrievalData(
        name="toy",
        corpus_ids=[f"d{i}" for i in range(12)],
        corpus=[f"answer {i}" for i in range(11)] + ["question 1"],  # d11's text is a query
        query_ids=["q0", "q1", "q2"],
        queries=["question 0", "question 1", "question 2"],
        qrels={"q0": {"d3": 1, "d4": 0}, "q1": {"d5": 2}, "q2": {"d3": 1}},  # d4: grade 0
    )
    judged, same_text = judged_mask(data), query_text_mask(data)
    assert np.flatnonzero(judged).tolist() == [3, 5]
    assert np.flatnonzero(same_text).tolist() == [11]
    with pytest.warns(UserWarning, match="exceeds the 9 eligible corpus items"):
        split = sample_pairs(12, 12, val_fraction=0.25, seed=0, excluded=judged | same_text)
    assert sorted(split.rows.tolist()) == [0, 1, 2, 4, 6, 7, 8, 9, 10]
    unlabelled = RetrievalData(name="u", corpus_ids=["a"], corpus=["x"], query_ids=["q"],
                               queries=["y"])  # fmt: skip
    assert judged_mask(unlabelled).tolist() == [False]

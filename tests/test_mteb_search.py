"""drift.integrations.mteb_search: upgrade strategies scored by `mteb.evaluate`, offline.

A retrieval task in mteb's format is built from a tiny harness dataset (`local_task`); the models
are two clearly synthetic text encoders (hashed bags of words; the "new" one a fixed nonlinear map
of them into 48 dimensions). For every strategy, the nDCG@10 mteb reports must equal the harness's
own evaluator (drift.scoring.metrics) on the rankings mteb saved.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

mteb = pytest.importorskip("mteb")

from drift.core.errors import ConfigError, DataError  # noqa: E402
from drift.data.types import RetrievalData  # noqa: E402
from drift.integrations.mteb_search import (  # noqa: E402
    STRATEGIES,
    DriftSearchModel,
    PairFit,
    local_task,
    to_run,
)
from drift.scoring.metrics import qrels_metrics  # noqa: E402

N_DOCS, N_QUERIES, PAIRS = 300, 60, 200


class HashedWords:
    """A synthetic text encoder: the sum of one seeded Gaussian vector per word (sha256-seeded,
    so the same in every process), optionally mapped by a fixed tanh layer; unit norm."""

    modality = "text"
    real_weights = False
    asymmetric = False

    def __init__(self, name: str, dim: int, mapped_to: int | None = None) -> None:
        self.name, self.revision, self.preprocessing = name, "synthetic-1", "hashed-words"
        self.base_dim = dim
        self.dim = mapped_to or dim
        rng = np.random.default_rng(7)
        self.map = None if mapped_to is None else rng.standard_normal((dim, mapped_to)) / dim**0.5
        self.calls = 0

    def encode(self, items, *, role="document", batch_size=None, show_progress=False):
        self.calls += 1
        out = np.zeros((len(items), self.base_dim))
        for i, text in enumerate(items):
            for word in text.split():
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                out[i] += np.random.default_rng(seed).standard_normal(self.base_dim)
        if self.map is not None:
            out = np.tanh(out @ self.map)
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> RetrievalData:
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(400)]
    docs = [" ".join(rng.choice(vocab, 15)) for _ in range(N_DOCS)]
    queries = [" ".join(rng.choice(docs[i].split(), 5)) for i in range(N_QUERIES)]
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(N_QUERIES)}
    qrels["q0"]["d7"] = 2  # one graded, two-document judgement
    return RetrievalData(
        name="toy",
        corpus_ids=[f"d{i}" for i in range(N_DOCS)],
        corpus=docs,
        query_ids=[f"q{i}" for i in range(N_QUERIES)],
        queries=queries,
        qrels=qrels,
    ).validate()


def encoders() -> tuple[HashedWords, HashedWords]:
    return HashedWords("synthetic/old-words", 32), HashedWords("synthetic/new-words", 32, 48)


def model(strategy: str) -> DriftSearchModel:
    old, new = encoders()
    fit = PairFit("procrustes", n_pairs=PAIRS) if strategy in ("adapter", "lazy_rerank") else None
    return DriftSearchModel(old, new, strategy=strategy, fit=fit, rerank_depth=20)


def evaluate(search_model: DriftSearchModel, task, tmp_path: Path):
    result = mteb.evaluate(
        search_model,
        task,
        cache=mteb.ResultCache(tmp_path / "mteb"),
        prediction_folder=tmp_path / "predictions",
        overwrite_strategy="always",
        show_progress_bar=False,
    )
    (task_result,) = result.task_results
    predictions = json.loads((tmp_path / "predictions" / "drift-toy_predictions.json").read_text())
    return task_result, predictions["default"]["test"]


def ranking(run: dict[str, dict[str, float]], data: RetrievalData) -> np.ndarray:
    """mteb's saved answers as the harness's row-id ranking [nq, k] (sorted by score)."""
    row = {doc: i for i, doc in enumerate(data.corpus_ids)}
    k = max(len(answers) for answers in run.values())
    ids = np.full((N_QUERIES, k), -1, dtype=np.int64)
    for q, qid in enumerate(data.query_ids):
        scores = run[qid]
        assert len(set(scores.values())) == len(scores), "ties would make the order ambiguous"
        ordered = sorted(scores, key=scores.get, reverse=True)
        ids[q, : len(ordered)] = [row[d] for d in ordered]
    return ids


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_mteb_ndcg_equals_the_harness_evaluator(strategy, data, tmp_path) -> None:
    search_model = model(strategy)
    task_result, run = evaluate(search_model, local_task(data), tmp_path)
    ids = ranking(run, data)
    row = {doc: i for i, doc in enumerate(data.corpus_ids)}
    labels = [{row[d]: g for d, g in data.qrels[q].items()} for q in data.query_ids]
    ours = qrels_metrics(ids, labels, ks=(10,))["ndcg@10"]

    # per query, unrounded: mteb's own scorer (pytrec_eval) on the same answers
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    theirs = calculate_retrieval_scores(run, data.qrels, [10]).all_scores
    per_query = np.array([theirs[q]["ndcg_cut_10"] for q in data.query_ids])
    np.testing.assert_allclose(ours, per_query, atol=1e-6, rtol=0)
    # the TaskResult mteb wrote: its mean, which mteb rounds to 5 decimals
    assert task_result.get_score() == pytest.approx(round(float(ours.mean()), 5), abs=1e-9)
    assert task_result.scores["test"][0]["ndcg_at_10"] == task_result.get_score()
    # and mteb saw the strategy's own ranking (the harness's search), not a re-sorted one
    direct = search_model.answer(data.queries, ids.shape[1]).ids
    np.testing.assert_array_equal(direct[:, :10], ids[:, :10])


def test_result_files_name_both_models_and_the_adapter(data, tmp_path) -> None:
    evaluate(model("adapter"), local_task(data), tmp_path)
    (path,) = (tmp_path / "mteb" / "results").rglob("drift-toy.json")
    meta = json.loads((path.parent / "model_meta.json").read_text())
    assert meta["name"] == "drift/new-words-to-old-words"
    assert meta["adapted_from"] == "synthetic/new-words"
    assert meta["embed_dim"] == 32  # the old index's dimension
    assert meta["experiment_kwargs"] == {
        "strategy": "adapter",
        "index": "flat",
        "adapter": "procrustes",
        "pairs": PAIRS,
        "seed": 0,
    }
    loaded = mteb.TaskResult.from_disk(path)
    assert loaded.task_name == "drift-toy"
    assert 0 < loaded.get_score() <= 1


def test_lazy_rerank_encodes_only_candidates_on_demand(data, tmp_path) -> None:
    search_model = model("lazy_rerank")
    evaluate(search_model, local_task(data), tmp_path)
    assert 0 < search_model.new_doc_encodes <= N_QUERIES * search_model.rerank_depth
    held = search_model._pair_rows.size
    assert search_model.new_doc_encodes + held <= N_DOCS


def test_a_given_adapter_is_served_and_fingerprinted(data, tmp_path) -> None:
    from drift.adapters import build_adapter

    old, new = encoders()
    x = data.corpus[:PAIRS]
    adapter = build_adapter("procrustes").fit(new.encode(x), old.encode(x))
    served = DriftSearchModel(old, new, adapter=adapter)
    other = DriftSearchModel(
        old, new, adapter=build_adapter("procrustes").fit(new.encode(x[:100]), old.encode(x[:100]))
    )
    assert served.revision() != other.revision()
    assert served.describe() == {"strategy": "adapter", "index": "flat", "adapter": "procrustes"}
    task_result, _ = evaluate(served, local_task(data), tmp_path)
    assert task_result.get_score() > 0


def test_bad_input_is_refused_with_one_clear_error(data) -> None:
    old, new = encoders()
    with pytest.raises(ConfigError, match="strategy must be one of"):
        DriftSearchModel(old, new, strategy="magic")
    with pytest.raises(ConfigError, match="needs exactly one of"):
        DriftSearchModel(old, new, strategy="adapter")
    with pytest.raises(DataError, match="search before index"):
        DriftSearchModel(old, new, strategy="status_quo").search(
            {"id": ["q"], "text": ["x"]},
            task_metadata=local_task(data).metadata,
            hf_split="test",
            hf_subset="default",
            top_k=10,
            encode_kwargs={},
        )
    unlabelled = RetrievalData("bare", ["d"], ["text"], ["q"], ["query"], qrels=None)
    with pytest.raises(DataError, match="no relevance labels"):
        local_task(unlabelled)


def test_a_rerank_tail_keeps_its_order_under_mteb_sorting() -> None:
    ids = np.array([[3, 1, 2, 0, -1]])
    scores = np.array([[0.9, 0.5, -np.inf, -np.inf, -np.inf]], dtype=np.float32)
    run = to_run(["q"], ["a", "b", "c", "d"], ids, scores)
    assert sorted(run["q"], key=run["q"].get, reverse=True) == ["d", "b", "c", "a"]
    assert all(np.isfinite(list(run["q"].values())))


def test_drift_mteb_refuses_an_unknown_task_in_one_line(capsys) -> None:
    from drift.cli.mteb import main

    assert main(["--task", "SciFactt", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown mteb task 'SciFactt'" in err and "SciFact" in err

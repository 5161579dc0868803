"""End to end: `drift.run.run(cfg)` writes a complete result file (synthetic and real models)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from drift.cli.config import compose
from drift.core.errors import ConfigError, DataError
from drift.experiment.checks import warn_uncentred_procrustes
from drift.run import run

SYNTHETIC = [
    "encoder@old_encoder=synthetic_old",
    "encoder@new_encoder=synthetic_new",
    "dataset=synthetic",
    "debug=smoke",
    "logger=none",
]


def overrides_for(tmp: Path, *extra: str) -> list[str]:
    return [f"paths.results_dir={tmp / 'results'}", f"paths.cache_dir={tmp / 'cache'}", *extra]


def result_files(tmp: Path) -> list[Path]:
    return sorted((tmp / "results").rglob("*.json"))


def check_record(record: dict) -> None:
    for key in (
        "config",
        "provenance",
        "models",
        "dataset",
        "pairs",
        "adapters",
        "index",
        "timings",
        "metrics",
        "seed",
        "seeds",
        "cache",
        "drift",
    ):
        assert key in record, key
    assert record["provenance"]["packages"]["numpy"]
    assert "commit" in record["provenance"]["git"]
    assert record["models"]["old"]["revision"] and record["models"]["new"]["revision"]
    timings = record["timings"]
    for side in ("old", "new"):
        assert 0 < timings[f"encode/{side}/corpus"] < timings["total"]
    # The stages are timed one after another inside the run: together at most its total.
    assert sum(t for name, t in timings.items() if name != "total") <= timings["total"]
    knn = record["metrics"]["protocols"]["knn"]["strategies"]
    assert knn["full_reindex"]["metrics"]["recall@10"]["mean"] > 0.9
    # Under knn the ARR is the recall itself (the paper's), the ratio divides by the re-index's.
    status_quo, full = knn["status_quo"], knn["full_reindex"]["metrics"]["recall@10"]["mean"]
    recall = status_quo["metrics"]["recall@10"]["mean"]
    assert status_quo["arr"]["arr_recall@10"]["mean"] == recall < full
    assert status_quo["vs_reindex"]["vs_reindex_recall@10"]["mean"] == pytest.approx(recall / full)
    assert "arr_recall@10" in knn["adapter/procrustes"]["arr"]


def test_synthetic_smoke_run_writes_result(tmp_path: Path) -> None:
    record = run(compose(overrides_for(tmp_path, *SYNTHETIC)))
    (path,) = result_files(tmp_path)
    on_disk = json.loads(path.read_text())
    assert on_disk["config_hash"] == record["config_hash"]
    check_record(on_disk)
    assert on_disk["synthetic"] is True and on_disk["real_weights"] is False
    assert on_disk["debug"] is True
    assert "misaligned" in on_disk["metrics"]["not_applicable"]  # 768-d queries, 384-d index
    assert set(on_disk["adapters"]) >= {"procrustes", "procrustes+dsm", "residual_mlp+dsm"}


def test_adapter_the_pairs_cannot_determine_is_not_applicable(tmp_path: Path) -> None:
    """LA with more rank than training pairs is reported (with why) and the run goes on."""
    record = run(
        compose(
            overrides_for(
                tmp_path,
                *SYNTHETIC,
                "adapter.n_pairs=20",
                "adapter.methods.low_rank_affine.rank=32",
            )
        )
    )
    reasons = record["metrics"]["not_applicable"]
    assert "16 training pairs cannot determine a rank-32 map" in reasons["adapter/low_rank_affine"]
    assert "low_rank_affine" not in record["adapters"]
    knn = record["metrics"]["protocols"]["knn"]["strategies"]
    procrustes = knn["adapter/procrustes"]["metrics"]["recall@10"]
    assert (procrustes["n"], procrustes["n_excluded"]) == (record["dataset"]["n_queries"], 0)


def test_stream_and_timeline_sections(tmp_path: Path) -> None:
    """Both analyses run on a smoke setting and land in the result file and its summary."""
    record = run(
        compose(
            overrides_for(
                tmp_path,
                *SYNTHETIC,
                "stream.enabled=true",
                "stream.length=300",
                "stream.capacity=100",
                "timeline.enabled=true",
                "timeline.hours=4",
                "timeline.rate=0.5",
                "timeline.modes=[adapter_frozen,adapter_refit,backfill_status_quo]",
            )
        )
    )
    stream = record["stream"]
    assert stream["length"] == 300 and stream["encode_rate"] > 0
    assert "measured" in stream["encode_rate_source"]
    rerank = stream["strategies"]["rerank/status_quo@50"]
    assert rerank["encodes"] == sorted(rerank["encodes"])  # cumulative
    assert stream["strategies"]["full_reindex"]["final_encodes"] == 300  # smoke corpus
    assert "ceiling" not in stream["strategies"]
    # A store of 100 vectors cannot hold status-quo candidates over a 300-row corpus: evicted
    # documents are encoded again, so the count passes the corpus size.
    assert stream["strategies"]["rerank/status_quo@50"]["final_encodes"] > 300
    timeline = record["timeline"]
    assert timeline["share_migrated"][0] == 0.0 and timeline["share_migrated"][-1] == 1.0
    backfill = timeline["modes"]["backfill_status_quo"]["knn/recall@10"]["mean"]
    full = timeline["references"]["full_reindex"]["knn/recall@10"]["mean"]
    assert backfill[-1] == pytest.approx(full)


def test_rerun_encodes_nothing(tmp_path: Path) -> None:
    run(compose(overrides_for(tmp_path, *SYNTHETIC)))
    record = run(compose(overrides_for(tmp_path, *SYNTHETIC, "adapter=procrustes")))
    assert all(s["encoded"] == 0 for s in record["cache"].values())
    assert record["index"]["old"]["cached"] is True


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    a = run(compose(overrides_for(tmp_path, *SYNTHETIC)))
    b = run(compose(overrides_for(tmp_path, *SYNTHETIC)))
    knn_a, knn_b = (r["metrics"]["protocols"]["knn"]["strategies"] for r in (a, b))
    assert (
        knn_a["adapter/low_rank_affine+dsm"]["metrics"]
        == knn_b["adapter/low_rank_affine+dsm"]["metrics"]
    )


def test_unknown_model_type_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown encoder type"):
        run(compose(overrides_for(tmp_path, *SYNTHETIC, "old_encoder.type=nope")))


def test_modality_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="encodes"):
        run(compose(overrides_for(tmp_path, *SYNTHETIC[1:], "encoder@old_encoder=minilm_l6")))


def test_real_minilm_to_mpnet_tiny_run(tmp_path: Path) -> None:
    """The paper's text pair with real bundled weights over a handful of real documents."""
    record = run(
        compose(
            overrides_for(
                tmp_path,
                "dataset=faq",
                "debug=smoke",
                "logger=none",
                "data_limits.max_corpus=100",
                "data_limits.max_queries=12",
                "adapter.n_pairs=90",
                # Short inputs keep mpnet's CPU time small; the code path is the real one.
                "old_encoder.max_seq_length=64",
                "new_encoder.max_seq_length=64",
            )
        )
    )
    check_record(record)
    assert record["real_weights"] is True and record["synthetic"] is False
    assert record["models"]["old"]["dim"] == 384 and record["models"]["new"]["dim"] == 768
    assert "qrels" in record["metrics"]["protocols"]
    # What `drift gate --corpus-size 100` would estimate from the 18 held-out pairs, per adapter.
    gate = record["gate"]
    assert set(gate) == set(record["adapters"])
    assert (gate["procrustes"]["n_pool"], gate["procrustes"]["pool_k"]) == (18, 2)
    # Recomputed from the saved pairs and adapter: each held-out item queries the others (old
    # vectors, adapted new query) at depth 2, against its 2 nearest others by the new model.
    from drift.adapters.base import load_adapter

    with np.load(record["artifacts"]["gate_pairs"]) as held_out:
        new, old = held_out["new"], held_out["old"]
    mapped = load_adapter(record["artifacts"]["procrustes"]).transform(new)

    def top2(corpus: np.ndarray, queries: np.ndarray) -> np.ndarray:
        scores = queries @ corpus.T
        np.fill_diagonal(scores, -np.inf)
        return np.argsort(-scores, axis=1)[:, :2]

    found, truth = top2(old, mapped), top2(new, new)
    expected = np.mean([len(set(a) & set(b)) / 2 for a, b in zip(found, truth, strict=True)])
    assert gate["procrustes"]["arr"]["mean"] == pytest.approx(expected)


@pytest.mark.slow  # about a minute of real e5 loading; tests/test_pairs.py covers the roles fast
def test_query_role_pairs_encode_the_pair_items_as_e5_queries(tmp_path: Path) -> None:
    """adapter.pair_role=query with an asymmetric new model (real e5-small weights, real faq
    texts): e5 encodes the pair items once more, as queries; MiniLM-L6 is symmetric, so the same
    items come from its cache. The strategies beyond the paper refuse such pairs up front."""
    base = overrides_for(
        tmp_path,
        "experiment=asymmetric_pairs",
        "adapter.pair_role=query",
        "debug=smoke",
        "logger=none",
        "data_limits.max_corpus=30",
        "data_limits.max_queries=8",
        "adapter.n_pairs=24",
    )
    record = run(compose(base))
    # 30 documents, 8 of them the evaluated queries' answers (never pairs): 22 pairs of 24 asked.
    assert record["pairs"] == {
        "n_requested": 24,
        "n_train": 18,
        "n_val": 4,
        "n_gate": 0,
        "role": "query",
        "fraction_requested": None,
        "source": "corpus",
        "n_pool": 30,
        "judged_in_pairs": 0,
    }
    cache = record["cache"]
    e5_name = "intfloat/multilingual-e5-small"
    minilm_name = "sentence-transformers/all-MiniLM-L6-v2"
    e5, minilm = cache[e5_name], cache[minilm_name]
    assert e5["encoded"] == minilm["encoded"] + 22
    assert record["timings"]["encode/pairs"] > 0
    assert record["drift"]["mean_cosine_new"] > 0.5 > record["drift"]["mean_cosine_old"]
    assert any("center=true" in warning for warning in record["warnings"])  # e5 is anisotropic
    assert (
        "arr_recall@10"
        in record["metrics"]["protocols"]["knn"]["strategies"]["adapter/procrustes"]["arr"]
    )
    # The adapters were fitted on e5's query-role vectors of the pair items: the held-out pairs
    # saved for `drift gate` differ from a document-role run's on the e5 side only.
    documents = run(compose([*base, "adapter.pair_role=document"]))
    assert documents["pairs"]["role"] == "document" and documents["cache"][e5_name]["encoded"] == 0
    with (
        np.load(record["artifacts"]["gate_pairs"]) as as_queries,
        np.load(documents["artifacts"]["gate_pairs"]) as as_documents,
    ):
        np.testing.assert_array_equal(as_queries["old"], as_documents["old"])
        cosines = (as_queries["new"] * as_documents["new"]).sum(axis=1)  # unit vectors
        assert cosines.max() < 0.99, cosines
    with pytest.raises(ConfigError, match="rerank, fusion, backfill count the pairs"):
        run(compose([*base, "eval.strategies=[status_quo,adapter,rerank,fusion,backfill]"]))
    with pytest.raises(ConfigError, match="pair_role must be one of"):
        run(compose([*base, "adapter.pair_role=passage"]))

    # query_log: 24 of the faq questions the run does not evaluate, encoded as queries by both
    # models (neither had seen them); no corpus document is encoded for the adapter.
    logged = run(compose([*base, "adapter.pair_role=query_log"]))
    assert logged["pairs"]["source"] == "held-out queries"
    assert (
        400
        < logged["pairs"]["n_pool"]
        <= logged["dataset"]["subsample"]["n_queries_full"] - logged["dataset"]["n_queries"]
    )
    assert logged["cache"][e5_name]["encoded"] == logged["cache"][minilm_name]["encoded"] == 24
    adapter_cost = logged["strategies"]["adapter/procrustes"]["cost"]
    assert adapter_cost["new_doc_encodes"] == 0 and adapter_cost["pair_query_encodes"] == 24
    with pytest.raises(ConfigError, match="all 482 queries of 'faq' are evaluated"):
        run(compose([*base, "adapter.pair_role=query_log", "data_limits.max_queries=null"]))


def test_uncentred_procrustes_warns_only_on_an_anisotropic_space() -> None:
    anisotropic = {"mean_cosine_old": 0.1, "mean_cosine_new": 0.8}
    for uncentred in ({"center": False}, {}, None):  # None: `procrustes: null`, its defaults
        with pytest.warns(UserWarning, match=r"new 0\.80.*center=true"):
            warn_uncentred_procrustes(anisotropic, {"procrustes": uncentred})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_uncentred_procrustes(anisotropic, {"procrustes": {"center": True}})
        warn_uncentred_procrustes(anisotropic, {"ridge": {}})
        warn_uncentred_procrustes(
            {"mean_cosine_old": 0.2, "mean_cosine_new": 0.3}, {"procrustes": {}}
        )

"""The GCIDE scale pipeline (docs/large_text.md) on a slice small enough for CI: the committed
117,029-entry corpus, a random corpus subset as the scale sweeps draw them, the paper's pair with
real bundled weights, the strategies beyond the paper and the query stream on."""

from __future__ import annotations

from pathlib import Path

from drift.cli.config import compose
from drift.run import run


def test_gcide_slice_runs_the_scale_pipeline(tmp_path: Path) -> None:
    record = run(
        compose(
            [
                f"paths.results_dir={tmp_path / 'results'}",
                f"paths.cache_dir={tmp_path / 'cache'}",
                "experiment=corpus_size_gcide",
                "debug=smoke",
                "logger=none",
                "data_limits.max_corpus=120",
                "data_limits.max_queries=12",
                "adapter.n_pairs_fraction=0.5",
                "adapter=procrustes",
                "eval.strategies=[full_reindex,status_quo,adapter,rerank,backfill]",
                "stream.enabled=true",
                "stream.length=100",
                "stream.encode_rate_sample=8",
                # Short inputs keep mpnet's CPU time small; the code path is the real one.
                "old_encoder.max_seq_length=48",
                "new_encoder.max_seq_length=48",
            ]
        )
    )
    assert record["real_weights"] is True
    subsample = record["dataset"]["subsample"]
    assert subsample["n_corpus_full"] == 117_029 and subsample["corpus_subset"] == "nested"
    assert record["dataset"]["n_corpus"] == 120 and record["dataset"]["n_queries"] == 12
    assert record["pairs"]["n_requested"] == 60
    knn = record["metrics"]["protocols"]["knn"]["strategies"]
    assert knn["full_reindex"]["metrics"]["recall@10"]["mean"] == 1.0
    for name in ("status_quo", "adapter/procrustes", "rerank/status_quo@50"):
        assert 0.0 <= knn[name]["metrics"]["recall@10"]["mean"] <= 1.0, name
    assert record["stream"]["n_corpus"] == 120

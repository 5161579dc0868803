"""Bad input is refused before the first encode, with one message naming every problem
(drift/experiment/validation.py), and a run whose adapters all fail still writes its result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_experiments import EXPERIMENTS, sweep_jobs

from drift.cli.config import compose, to_plain
from drift.core.errors import ConfigError
from drift.core.provenance import REPO_ROOT
from drift.data.types import RetrievalData
from drift.experiment import pipeline, stages
from drift.experiment.validation import validate_against_data, validate_config
from drift.retrieval.index import IndexCache, IndexSpec, exact_search, search
from drift.retrieval.mixed.backfill import partial_index
from drift.run import run

SYNTHETIC = [
    "encoder@old_encoder=synthetic_old",
    "encoder@new_encoder=synthetic_new",
    "dataset=synthetic",
    "debug=smoke",
    "logger=none",
]
# Procrustes alone, and the paper's strategies with the backfill (which builds sub-indexes).
FAST = ["adapter=procrustes", "eval.strategies=[full_reindex,status_quo,adapter,backfill]"]
# An adapter config fitting low-rank affine alone (rank 64).
LA_ONLY = [
    "adapter=procrustes",
    "~adapter.methods.procrustes",
    "+adapter.methods.low_rank_affine.rank=64",
    "eval.mixed.adapter=low_rank_affine",
]


def paths(tmp: Path) -> list[str]:
    return [f"paths.results_dir={tmp / 'results'}", f"paths.cache_dir={tmp / 'cache'}"]


def problems_of(*overrides: str) -> str:
    """The message validate_config raises for the default config with `overrides`."""
    with pytest.raises(ConfigError) as raised:
        validate_config(to_plain(compose(list(overrides))))
    return str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["seed=abc"], "seed: must be an integer >= 0 (got 'abc')"),
        (["eval.n_boot=0"], "eval.n_boot: must be an integer >= 1 (got 0)"),
        (["adapter.n_pairs=0"], "adapter.n_pairs: must be an integer >= 2 (got 0)"),
        (["eval.ks=[0,10]"], "eval.ks: must be a non-empty list, each item an integer >= 1"),
        (["index=ivfpq", "index.nprobe=0"], "index nprobe must be a positive integer, got 0"),
        (["eval.protocols=[knn,bm25]"], "eval.protocols: must be a non-empty list"),
        (["eval.strategies=[status_quo,oracle]"], "names unknown strategies ['oracle']"),
        (["encode.chunk_size=0"], "encode.chunk_size: must be an integer >= 1 (got 0)"),
        (["adapter.val_fraction=0.6", "adapter.gate_fraction=0.4"], "must be < 1"),
        (["adapter.n_pairs_fraction=1.5"], "adapter.n_pairs_fraction: must be a number in (0, 1]"),
        (["eval.mixed.fusion.weights=[2.0]"], "eval.mixed.fusion.weights: must be"),
        (["eval.mixed.backfill.fractions=[0.25,abc]"], "eval.mixed.backfill.fractions: must"),
        (LA_ONLY[:3], "eval.mixed.adapter: must name an adapter the run fits (low_rank_affine"),
        (["adapter.pair_role=query_log"], "backfill reuse the pairs as corpus documents"),
        (["stream.enabled=true", "stream.length=0"], "stream.length: must be an integer >= 1"),
        (["timeline.enabled=true", "timeline.rate=-1"], "timeline.rate must be finite and >= 0"),
        (
            ["timeline.enabled=true", "timeline.adapter=op_low_rank"],
            "timeline.adapter='op_low_rank' is not",
        ),
    ],
)
def test_each_bad_setting_is_named_with_its_value(overrides: list[str], expected: str) -> None:
    assert expected in problems_of(*overrides)


def test_every_problem_in_one_message() -> None:
    message = problems_of("seed=abc", "eval.n_boot=0", "adapter.n_pairs=0", "eval.ks=[0,10]")
    assert message.startswith("4 problems in the config, found before anything loaded: ")
    for key in ("seed:", "eval.n_boot:", "adapter.n_pairs:", "eval.ks:"):
        assert key in message
    assert "\n" not in message


def test_settings_a_run_does_not_read_are_not_refused() -> None:
    """The stream's, the timeline's and a strategy family's settings count only when used."""
    validate_config(
        to_plain(
            compose(
                [
                    "stream.length=0",
                    "timeline.rate=-1",
                    "eval.mixed.fusion.weights=[2.0]",
                    "eval.strategies=[status_quo,adapter,rerank]",
                    "adapter.n_pairs=0",
                    "adapter.n_pairs_fraction=0.02",  # Np as a share: n_pairs is not read
                ]
            )
        )
    )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_and_its_sweep_ends_are_valid(experiment: str) -> None:
    jobs = sweep_jobs(experiment)
    for job in (jobs[0], jobs[-1]):
        for extra in ([], ["debug=smoke"]):
            validate_config(to_plain(compose([f"experiment={experiment}", *job, *extra])))


def refuse(*_args, **_kwargs):
    raise AssertionError("called before the config was refused")


@pytest.fixture
def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model, or encoding, fails the test."""
    monkeypatch.setattr(stages, "shared_encoder", refuse)
    monkeypatch.setattr(pipeline, "encode_corpus_and_queries", refuse)


def test_a_bad_setting_with_real_models_fails_before_any_data_or_model_loads(
    tmp_path: Path, no_model_loads: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offline default (MiniLM-L6 -> mpnet, minutes of encoding) with eval.n_boot=0 used to
    fail after the whole run; now before the data loads."""
    monkeypatch.setattr(stages, "load_data", refuse)
    with pytest.raises(ConfigError, match=r"eval\.n_boot: must be an integer >= 1 \(got 0\)"):
        run(compose([*paths(tmp_path), "logger=none", "eval.n_boot=0"]))


def test_ivfpq_over_a_tiny_corpus_is_refused_once_the_data_is_loaded(
    tmp_path: Path, no_model_loads: None
) -> None:
    """IVF-PQ's codebooks (pq_nbits=8) train on 256 vectors at least: a real corpus of 100
    documents is refused after loading it, before MiniLM-L6 and mpnet load."""
    overrides = ["dataset=faq", "data_limits.max_corpus=100", "data_limits.max_queries=20"]
    with pytest.raises(ConfigError, match=r"index\.pq_nbits: .* 256 vectors, but the corpus"):
        run(compose([*paths(tmp_path), *overrides, "logger=none", "index=ivfpq"]))


def test_an_index_dimension_is_checked_before_the_first_encode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "encode_corpus_and_queries", refuse)
    with pytest.raises(ConfigError, match="old model 'synthetic/old'.*pq_m=7 must divide .* 384"):
        run(compose([*paths(tmp_path), *SYNTHETIC, "index=ivfpq", "index.pq_m=7"]))


def test_what_needs_the_data_size_is_named_after_the_data_loads() -> None:
    cfg = to_plain(compose(["index=ivfpq", "stream.enabled=true", "stream.popularity=sequential"]))
    with pytest.raises(ConfigError) as raised:
        validate_against_data(cfg, toy_data("tiny", 255, 10))
    message = str(raised.value)
    assert message.startswith("2 problems in the config, found once the data (tiny) was loaded")
    assert "index.pq_nbits:" in message and "stream.length:" in message
    enough = toy_data("enough", 256, 10)
    validate_against_data(cfg | {"stream": cfg["stream"] | {"length": 10}}, enough)


def toy_data(name: str, n_docs: int, n_queries: int, judged: int = 0) -> RetrievalData:
    """Distinct documents and queries; the first `judged` documents are the queries' answers."""
    qrels = {f"q{i % n_queries}": {} for i in range(n_queries)}
    for i in range(judged):
        qrels[f"q{i % n_queries}"][f"d{i}"] = 1
    return RetrievalData(
        name=name,
        corpus_ids=[f"d{i}" for i in range(n_docs)],
        corpus=[f"document {i}" for i in range(n_docs)],
        query_ids=[f"q{i}" for i in range(n_queries)],
        queries=[f"query {i}" for i in range(n_queries)],
        qrels=qrels,
    )


def test_pairs_left_too_few_by_excluding_the_answers_are_refused_before_models_load() -> None:
    """Labels that make nearly every item some query's answer (same-folder, same-class) leave no
    pairs once the answers are excluded: refused with the way out, right after the data loads."""
    cfg = to_plain(compose([]))
    with pytest.raises(ConfigError, match="adapter.exclude_judged: only 2 of the 20 corpus items"):
        validate_against_data(cfg, toy_data("labelled", 20, 5, judged=18))
    validate_against_data(cfg, toy_data("labelled", 20, 5, judged=16))  # 4 items: 3 train pairs
    allowed = cfg | {"adapter": cfg["adapter"] | {"exclude_judged": False}}
    validate_against_data(allowed, toy_data("labelled", 20, 5, judged=20))


def test_a_backfill_sub_index_too_small_for_ivfpq_is_searched_exactly(tmp_path: Path) -> None:
    """75 rows (a quarter of a 300-item corpus) cannot train IVF-PQ's 256-centroid codebooks:
    the sub-index falls back to exact search, with a warning, instead of failing late."""
    rng = np.random.default_rng(0)
    x_new = rng.normal(size=(300, 16)).astype(np.float32)
    x_new /= np.linalg.norm(x_new, axis=1, keepdims=True)
    queries = x_new[:5] + 0.1
    spec = IndexSpec(kind="ivfpq", pq_m=4, device="cpu")
    rows = np.arange(0, 300, 4)
    with pytest.warns(UserWarning, match="75 rows is too small to train IVF-PQ"):
        partial = partial_index(x_new, rows, spec, IndexCache(tmp_path))
    _, ids = search(partial.index, queries, 10, spec)
    _, exact = exact_search(x_new[rows], queries, 10, device="cpu")
    np.testing.assert_array_equal(ids, exact)


def test_ivfpq_backfill_on_a_small_corpus_runs(tmp_path: Path) -> None:
    """The smoke corpus (300 items) with IVF-PQ: backfill at 25% used to end in "got 75"."""
    record = run(
        compose(
            [
                *paths(tmp_path),
                *SYNTHETIC,
                *FAST,
                "index=ivfpq",
                "eval.mixed.backfill.fractions=[0.25]",
            ]
        )
    )
    knn = record["metrics"]["protocols"]["knn"]["strategies"]
    (backfill,) = [name for name in knn if name.startswith("backfill/")]
    assert 0 < knn[backfill]["metrics"]["recall@10"]["mean"] <= 1
    assert any("too small to train IVF-PQ" in warning for warning in record["warnings"])


def test_no_adapter_fitted_still_writes_the_result(tmp_path: Path) -> None:
    """LA of rank 64 on 48 training pairs: not fitted, and nothing else to fit. The run goes on
    (it used to end in numpy's FileNotFoundError): every adapter, and the strategies that need
    eval.mixed.adapter, are not applicable with the reason; the held-out pairs are saved."""
    record = run(compose([*paths(tmp_path), *SYNTHETIC, *LA_ONLY, "adapter.n_pairs=60"]))
    assert record["adapters"] == {} and record["gate"] == {}
    reasons = record["metrics"]["not_applicable"]
    assert "48 training pairs cannot determine a rank-64 map" in reasons["adapter/low_rank_affine"]
    for family in ("rerank", "fusion", "backfill"):
        assert reasons[family].startswith("needs eval.mixed.adapter='low_rank_affine', not fitted")
    assert set(record["artifacts"]) == {"gate_pairs"}
    assert Path(record["artifacts"]["gate_pairs"]).is_file()
    assert len(list((tmp_path / "results").rglob("*.json"))) == 1
    knn = record["metrics"]["protocols"]["knn"]["strategies"]
    assert knn["full_reindex"]["metrics"]["recall@10"]["mean"] > 0.9


def test_a_drift_error_is_one_line_on_stderr_and_exit_code_2(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "drift.run", *SYNTHETIC, *paths(tmp_path),
        f"hydra.run.dir={tmp_path / 'hydra'}", "seed=abc",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.splitlines() == [
        "drift: ConfigError: 1 problem in the config, found before anything loaded: "
        "seed: must be an integer >= 0 (got 'abc')"
    ]
    assert "ConfigError" not in done.stdout and "seed" not in done.stdout

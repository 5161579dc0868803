"""scripts/gpu_check.py (GPU paths against CPU paths) and drift/report/compare_runs.py (one
config on two machines). The CUDA half of gpu_check runs only where torch sees a GPU (marker
gpu)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from drift.core.errors import ConfigError
from drift.core.provenance import REPO_ROOT
from drift.core.records import ResultRecord
from drift.data.beir import read_beir

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import gpu_check  # noqa: E402

from drift.cli import compare_runs as compare_runs_cli
from drift.report import compare_runs

E2E = REPO_ROOT / "results" / "gpu_check" / "e2e"


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_agreement_is_perfect_for_identical_vectors_and_drops_with_noise() -> None:
    x = unit_rows(200, 32, 0)
    same = gpu_check.agreement(x, x.copy())
    assert same["cosine_min"] == pytest.approx(1.0, abs=1e-6) and same["knn_overlap@10"] == 1.0
    noisy = gpu_check.agreement(x, x + 0.3 * unit_rows(200, 32, 1))
    assert noisy["cosine_min"] < 0.99 and noisy["knn_overlap@10"] < 1.0
    with pytest.raises(ConfigError, match="cannot be compared"):
        gpu_check.agreement(x, x[:10])


def test_top_k_is_exact_inner_product_order() -> None:
    corpus = np.eye(5, dtype=np.float32)
    query = np.array([[0.1, 0.9, 0.0, 0.5, 0.0]], dtype=np.float32)
    assert gpu_check.top_k(corpus, query, k=3).tolist() == [[1, 3, 0]]
    assert gpu_check.overlap(np.array([[1, 2, 3]]), np.array([[3, 4, 1]])) == pytest.approx(2 / 3)


def test_text_items_alternate_questions_and_answers() -> None:
    faq = REPO_ROOT / "data" / "offline_text" / "faq"
    data = read_beir(faq)
    items = gpu_check.encoder_items({"type": "sentence_transformers"}, 4, faq, None)
    assert items == [data.queries[0], data.corpus[0], data.queries[1], data.corpus[1]]
    with pytest.raises(ConfigError, match="needs --images"):
        gpu_check.encoder_items({"type": "efficientnet_lite"}, 4, faq, None)


def test_unknown_encoder_config_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown encoder config 'nope'.*minilm_l6"):
        gpu_check.load_encoder_spec("nope")


def test_cpu_dry_run_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    report = gpu_check.main(
        ["--devices", "cpu", "--encoders", "--skip", "faiss", "--out", str(out)]
    )
    assert json.loads(out.read_text())["residual_mlp"] == report["residual_mlp"]
    mlp = report["residual_mlp"]
    assert mlp["synthetic"] and "cpu_vs_cuda" not in mlp
    # The MLP beats keeping the old model on the same synthetic queries (0.355 against 0.283 at
    # seed 0), recomputed here in numpy: a map that learned nothing, or a wrong recall, does not.
    n_pairs, n_corpus, n_queries = mlp["n_pairs"], mlp["n_corpus"], 500  # as main draws them
    old, new = gpu_check.synthetic_vectors(n_pairs + n_corpus + n_queries, 0, level=0.5)
    corpus, queries = slice(n_pairs, n_pairs + n_corpus), slice(n_pairs + n_corpus, None)
    truth = gpu_check.top_k(new[corpus], new[queries])
    status_quo = gpu_check.overlap(gpu_check.top_k(old[corpus], old[queries]), truth)
    assert status_quo + 0.03 < mlp["cpu"]["recall@10"] < 1.0


@pytest.mark.gpu
def test_cuda_paths_match_cpu(tmp_path: Path) -> None:
    report = gpu_check.main(
        ["--encoders", "minilm_l6", "--n-items", "64", "--out", str(tmp_path / "check.json")]
    )
    assert report["encoders"]["minilm_l6"]["cpu_vs_cuda"]["cosine_min"] > 0.999
    assert report["residual_mlp"]["cpu_vs_cuda"]["retrieved_top10_overlap"] > 0.95


def test_compare_runs_reports_the_committed_cpu_and_gpu_runs(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    files = [str(E2E / "cpu.json"), str(E2E / "h200.json")]
    assert compare_runs_cli.main([*files, "--labels", "cpu", "gpu", "--out", str(out)]) == 0
    report = out.read_text()
    assert "NVIDIA H200" in report and "fp16" in report and "### qrels: recall@10" in report
    records = [ResultRecord.from_path(E2E / name) for name in ("cpu.json", "h200.json")]
    _, worst = compare_runs.compare(records, ["cpu", "gpu"], "recall@10")
    assert worst < 0.01  # fp16 encodes change single neighbours, not the answer


def test_compare_runs_refuses_runs_of_different_configs(tmp_path: Path, capsys) -> None:
    record = ResultRecord.from_path(E2E / "cpu.json").data
    other = copy.deepcopy(record)
    other["config"]["seed"] = 1
    other["config"]["paths"]["results_dir"] = "/elsewhere"  # where files go: not a difference
    other["config"]["encode"]["show_progress"] = not record["config"]["encode"]["show_progress"]
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, rec in zip(paths, [record, other], strict=True):
        path.write_text(json.dumps(rec))
    assert compare_runs_cli.main([str(p) for p in paths]) == 2
    assert "differ in: seed" in capsys.readouterr().err
    assert compare_runs.config_differences(record["config"], other["config"]) == ["seed"]


def test_faiss_twins_on_the_cpu_include_ivf_flat_and_say_why_cagra_is_skipped() -> None:
    report = gpu_check.check_faiss(["cpu"], 4000, 50, 0)
    assert report["flat"]["cpu"]["recall@10_vs_exact"] == 1.0  # float64 numpy vs faiss: exact
    assert report["ivf_flat"]["cpu"]["spec"]["factory"] == "IVF1024,Flat"
    assert 0.3 < report["ivf_flat"]["cpu"]["recall@10_vs_exact"] <= 1.0
    assert "build_s" in report["ivfpq"]["cpu"] and "overlap_between_the_two" not in report["flat"]
    assert report["cagra_vs_hnsw"] == {"skipped": "no cuda device asked for"}


def test_the_scale_out_preset_fills_in_what_was_not_given() -> None:
    args = gpu_check.parse_args(["--preset", "scale_out", "--n-items", "50"])
    assert args.encoders == ["minilm_l6", "mpnet"] and args.n_items == 50 and args.repeats == 1
    assert args.texts.name == "pydoc" and args.out.name == "scale_out.json"
    assert "e2e" not in args.skip and args.e2e_items == 1_000_000
    plain = gpu_check.parse_args([])
    assert {"sharded_encode", "e2e"} <= set(plain.skip)  # only the preset starts drift processes


@pytest.mark.slow
def test_the_scale_out_dry_run_on_the_cpu(tmp_path: Path) -> None:
    """The preset's CPU dry path at small sizes (a few minutes on 2 cores): a sharded encode of
    real models through submitit_local and a synthetic run end to end."""
    out = tmp_path / "dry.json"
    report = gpu_check.main(
        ["--preset", "scale_out", "--devices", "cpu", "--encoders", "--skip", "residual_mlp",
         "faiss", "--e2e-items", "5000", "--shard-docs", "40", "--out", str(out)]
    )  # fmt: skip
    shards = report["sharded_encode"]
    assert shards["encoded_by_shards"] == shards["encoded_by_one_process"]
    assert shards["cosine_min"] > 0.9999 and shards["shard_devices"] == ["cpu", "cpu"]
    e2e = report["e2e"]
    assert e2e["synthetic"] and e2e["recall@10"]["full_reindex"] == 1.0 and e2e["wall_s"] > 0
    assert json.loads(out.read_text())["e2e"]["n_items"] == 5000

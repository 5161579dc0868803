"""Sharded encoding (`python -m drift.encode`, drift.encoders.shards) and the launchers it runs
through: the partition, the shard check before anything loads, `encode.require_cached`, a
two-shard encode through `hydra/launcher=submitit_local` (real offline models, vectors bitwise
equal to a one-process encode), a two-job drift.run multirun through it that encodes nothing
after the shards, and the SLURM dry run (scripts/slurm_dry_run.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drift.cli.config import compose, to_plain
from drift.core.errors import CacheIncompleteError, ConfigError
from drift.core.provenance import REPO_ROOT
from drift.core.timing import Timings
from drift.encode import encode
from drift.encoders.cache import cached_vectors, encode_corpus_and_queries, item_digest
from drift.encoders.shards import check_shard, in_shard, shard_device, shard_of
from drift.experiment.stages import RunContext, load_models, load_run_data
from drift.run import run

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import slurm_dry_run  # noqa: E402
from test_run import SYNTHETIC  # noqa: E402

# Real offline models (MiniLM-L3 ONNX -> MiniLM-L6) on 40 FAQ documents and 10 questions, one
# text per forward pass: a text's vector then does not depend on which others share its batch.
REAL = [
    "encoder@old_encoder=minilm_l3",
    "encoder@new_encoder=minilm_l6",
    "dataset=faq",
    "data_limits.max_corpus=40",
    "data_limits.max_queries=10",
    "encode.batch_size=1",
    "encode.show_progress=false",
    "logger=none",
]


def paths(tmp: Path, cache: str = "cache") -> list[str]:
    return [f"paths.results_dir={tmp / 'results'}", f"paths.cache_dir={tmp / cache}"]


def cli(tmp: Path, module: str, *args: str) -> subprocess.Popen:
    """`python -m <module> args` from the repository root, offline, one thread per process."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", module, *args, f"hydra.run.dir={tmp / 'hydra_run'}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(job: subprocess.Popen, timeout: float = 180) -> str:
    out, _ = job.communicate(timeout=timeout)
    assert job.returncode == 0, out[-3000:]
    return out


def shard_records(tmp: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp / "results" / "encode").rglob("*.json"))]


# -- the partition --------------------------------------------------------------------------------
def test_shards_partition_the_distinct_items_whatever_their_order() -> None:
    items = [f"text {i}" for i in range(500)] + ["text 3", "text 7"]  # duplicates
    shards = [in_shard(items, "text", s, 3) for s in range(3)]
    assert sorted(sum(shards, [])) == sorted(set(items))  # each distinct item exactly once
    assert min(map(len, shards)) > 120  # and about a third each
    assert [set(in_shard(items[::-1], "text", s, 3)) for s in range(3)] == list(map(set, shards))
    assert all(shard_of(item_digest(x, "text"), 3) == 1 for x in shards[1])
    assert in_shard(items, "text", 0, 1) == list(dict.fromkeys(items))


def test_a_shard_out_of_range_is_refused() -> None:
    for shard, num_shards in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ConfigError, match=r"encode\.shard must be in 0\.\.encode\.num_shards"):
            check_shard(shard, num_shards)
    with pytest.raises(ConfigError, match="must be an integer"):
        check_shard(True, 2)


def test_each_shard_takes_its_own_gpu_on_a_multi_gpu_node() -> None:
    assert [shard_device("auto", s, 4) for s in range(5)] == [
        "cuda:0",
        "cuda:1",
        "cuda:2",
        "cuda:3",
        "cuda:0",
    ]
    assert shard_device("cuda", 1, 2) == "cuda:1"
    assert shard_device("auto", 3, 1) == "auto" and shard_device("auto", 3, 0) == "auto"
    assert shard_device("cpu", 3, 8) == "cpu" and shard_device("cuda:5", 0, 8) == "cuda:5"


def test_the_config_check_refuses_a_shard_out_of_range_before_anything_loads(
    tmp_path: Path,
) -> None:
    cfg = compose([*paths(tmp_path), *SYNTHETIC, "encode.shard=2", "encode.num_shards=2"])
    with pytest.raises(ConfigError, match=r"encode\.shard: must be below encode\.num_shards \(2\)"):
        encode(cfg)
    with pytest.raises(ConfigError, match=r"encode\.num_shards: must be an integer >= 1"):
        encode(compose([*paths(tmp_path), *SYNTHETIC, "encode.num_shards=0"]))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "results").exists()


# -- require_cached -------------------------------------------------------------------------------
def test_require_cached_names_what_is_missing_and_then_encodes_nothing(tmp_path: Path) -> None:
    overrides = [*paths(tmp_path), *SYNTHETIC]
    first = encode(compose([*overrides, "encode.shard=0", "encode.num_shards=2"]))
    assert first["parts"]["old/corpus"]["distinct"] == 300
    run_ctx = RunContext.from_config(to_plain(compose(overrides)))
    _, data = load_run_data(run_ctx)
    models = dataclasses.replace(load_models(run_ctx, data), require_cached=True)
    lacking = 300 - first["parts"]["old/corpus"]["in_shard"]
    with pytest.raises(CacheIncompleteError) as caught:
        encode_corpus_and_queries(models, data.corpus, data.queries, Timings())
    message = str(caught.value)
    for expected in (
        "synthetic/old@", f"(old/corpus, role document): {lacking} of 300 distinct items",
        "(new/queries, role query):", "python -m drift.encode",
    ):  # fmt: skip
        assert expected in message, message
    assert all(s["encoded"] == 0 for s in models.cache.stats.values())  # refused, not encoded

    encode(compose([*overrides, "encode.shard=1", "encode.num_shards=2"]))
    vectors = encode_corpus_and_queries(models, data.corpus, data.queries, Timings())
    assert vectors.x_old.shape == (300, 384)
    assert all(s["encoded"] == 0 for s in models.cache.stats.values())


# -- through the launchers ------------------------------------------------------------------------
def launched(tmp: Path, module: str, sweep: str, *overrides: str) -> subprocess.Popen:
    """`python -m <module> -m hydra/launcher=submitit_local <overrides>`: jobs as processes."""
    return cli(
        tmp,
        module,
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={tmp / sweep}",
        *overrides,
    )


def quality(record: dict) -> dict:
    """Per protocol and strategy, the scores of a result record (not its timings)."""
    return {
        protocol: {
            name: {key: row[key] for key in ("metrics", "arr", "vs_reindex")}
            for name, row in block["strategies"].items()
        }
        for protocol, block in record["metrics"]["protocols"].items()
    }


def check_two_shards(tmp: Path, one_process: dict, sharded_cache: Path, one_cache: Path) -> None:
    """The shard records of `tmp` against the one-process encode's record: every distinct item in
    exactly one shard and encoded once, and the two caches hold the same vectors, bitwise."""
    records = shard_records(tmp)
    assert sorted(r["shard"] for r in records) == [0, 1]
    for part, counts in one_process["parts"].items():
        assert counts["in_shard"] == counts["distinct"]
        assert sum(r["parts"][part]["in_shard"] for r in records) == counts["distinct"]
    for model, stats in one_process["cache"].items():
        assert sum(r["cache"][model]["encoded"] for r in records) == stats["encoded"] > 0
    merged, reference = cached_vectors(sharded_cache), cached_vectors(one_cache)
    assert merged.keys() == reference.keys()
    assert all(merged[key].tobytes() == reference[key].tobytes() for key in reference)  # bitwise


def test_submitit_local_runs_a_two_shard_encode_and_a_two_job_multirun(tmp_path: Path) -> None:
    """Through hydra/launcher=submitit_local (each job its own process): two shards of a tiny
    synthetic run fill the cache with the bytes a one-process encode writes, and a two-job
    drift.run sweep afterwards encodes nothing and scores as a run that encoded for itself."""
    overrides = [*paths(tmp_path), *SYNTHETIC, "adapter=procrustes"]
    shards = launched(tmp_path, "drift.encode", "sweep_encode", *overrides, "encode.shard=0,1",
                      "encode.num_shards=2")  # fmt: skip
    one = tmp_path / "one"
    one_process = encode(compose([*paths(one), *SYNTHETIC, "adapter=procrustes"]))
    reference = run(compose([*paths(one), *SYNTHETIC, "adapter=procrustes"]))
    finished(shards)
    check_two_shards(tmp_path, one_process, tmp_path / "cache", one / "cache")

    finished(launched(tmp_path, "drift.run", "sweep_run", *overrides, "index=flat,hnsw"))
    files = sorted((tmp_path / "results").glob("synthetic/*/*.json"))
    records = {r["config"]["index"]["kind"]: r for r in map(json.loads, map(Path.read_text, files))}
    assert sorted(records) == ["flat", "hnsw"]
    for record in records.values():
        assert all(s["encoded"] == 0 and s["hits"] > 0 for s in record["cache"].values())
    assert quality(records["hnsw"]) == quality(reference)  # reference: hnsw, encoded itself
    assert all(s["encoded"] > 0 for s in one_process["cache"].values())


@pytest.mark.slow
def test_two_shards_of_real_models_equal_one_process_bitwise(tmp_path: Path) -> None:
    """Real offline models (about 2 minutes on 2 busy cores): two shards as submitit jobs and one
    process encoding everything, side by side into two caches, one thread each."""
    sharded = launched(tmp_path, "drift.encode", "sweep", *REAL, *paths(tmp_path),
                       "encode.shard=0,1", "encode.num_shards=2")  # fmt: skip
    whole = cli(tmp_path / "one", "drift.encode", *REAL, *paths(tmp_path / "one"))
    finished(sharded, timeout=400), finished(whole, timeout=400)
    (one_process,) = shard_records(tmp_path / "one")
    check_two_shards(tmp_path, one_process, tmp_path / "cache", tmp_path / "one" / "cache")
    assert {s["encoded"] for s in one_process["cache"].values()} == {50}  # 40 docs + 10 questions
    assert len(cached_vectors(tmp_path / "cache")) == 100


def test_the_slurm_dry_run_shows_what_the_cluster_would_receive(tmp_path: Path, capsys) -> None:
    plan = slurm_dry_run.main(
        [
            "--entry",
            "drift.encode",
            "encode.shard=0,1,2,3",
            "encode.num_shards=4",
            "hydra.launcher.partition=gpu",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ]
    )
    assert len(plan["jobs"]) == 4 and plan["jobs"][3][:1] == ["encode.shard=3"]
    assert plan["parameters"]["slurm_max_num_timeout"] == 2  # requeued twice on a time limit
    script = plan["sbatch"]
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --time=240",
        "#SBATCH --array=0-3%4",
        "#SBATCH --job-name=encode",
        "#SBATCH --output=" + str(tmp_path / "sweep" / ".submitit" / "%A_%a" / "%A_%a_0_log.out"),
        "submitit.core._submit",
    ):
        assert line in script, line
    assert "#SBATCH --array=0-3%4" in capsys.readouterr().out
    assert not (tmp_path / "sweep").exists()  # a dry run submits and writes nothing

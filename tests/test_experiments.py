"""Every experiment file composes, expands its sweep and runs on the smoke setting, offline.

Default run: each experiment runs once, at the first point of its sweep, on the smoke setting;
drift_severity with its real models (MiniLM-L6 -> MiniLM-L3, bundled weights, the fastest real
pair, on 150 real documents), the others with the synthetic encoders in place of their models
(their adapters, indexes and sweep values unchanged): encoding with mpnet costs minutes on 2 busy
cores, and tests/test_run.py already runs the real MiniLM-L6 -> mpnet pair.
The runs are shared with tests/test_figures.py (`smoke_run`) in one session-wide folder whose
embedding cache they all reuse. The slow-marked variant runs every experiment with its own models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from omegaconf import DictConfig

from drift.cli.config import CONFIG_DIR, compose
from drift.core.errors import ConfigError
from drift.core.provenance import REPO_ROOT
from drift.experiment.tracking import stream_rows, timeline_rows, tracked_run
from drift.run import run

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
# The analyses of the paper (issue: every paper analysis as an experiment).
PAPER_ANALYSES = {
    "main_table",
    "drift_severity",
    "drift_synthetic",
    "sample_size",
    "sample_size_fraction",
    "dsm_ablation",
    "la_rank",
    "mlp_width",
    "mlp_loss",
    "ann_sensitivity",
}

SYNTHETIC = [
    "encoder@old_encoder=synthetic_old",
    "encoder@new_encoder=synthetic_new",
    "dataset=synthetic",
]
# Run with their own (real) models in the default test run; smaller than smoke to stay fast.
REAL_MODELS = {"drift_severity": ["data_limits.max_corpus=150", "data_limits.max_queries=20"]}

# Shared by the tests of this module and of test_figures.py for one pytest session.
_SESSION: dict[str, Any] = {"runs": {}}


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "root" not in _SESSION:
        _SESSION["root"] = tmp_path_factory.mktemp("experiments")
    return _SESSION["root"]


def smoke_overrides(root: Path, *extra: str) -> list[str]:
    return [
        "debug=smoke",
        "logger=none",
        f"paths.results_dir={root / 'results'}",
        f"paths.cache_dir={root / 'cache'}",
        *extra,
    ]


def hydra_config(*overrides: str) -> DictConfig:
    """The composed config with Hydra's own node (sweeper, launcher), unlike drift.cli.config."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=True)


def sweep_jobs(experiment: str) -> list[list[str]]:
    """The overrides of each job `python -m drift.run -m experiment=<experiment>` launches."""
    params = hydra_config(f"experiment={experiment}").hydra.sweeper.params or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    (batch,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return batch


def smoke_run(root: Path, experiment: str, *, own_models: bool = False) -> dict[str, Any]:
    """Run `experiment` at the first point of its sweep on the smoke setting, once a session;
    with synthetic encoders unless `own_models` or the experiment is in REAL_MODELS."""
    key = (experiment, own_models)
    if key not in _SESSION["runs"]:
        point = sweep_jobs(experiment)[0]
        if own_models:
            models = []
        elif experiment in REAL_MODELS:
            models = REAL_MODELS[experiment]
        else:  # keep the sweep's other values; its encoder choice gives way to the synthetic one
            models, point = SYNTHETIC, [o for o in point if not o.startswith("encoder@")]
        overrides = [f"experiment={experiment}", *point, *models, *smoke_overrides(root)]
        _SESSION["runs"][key] = run(compose(overrides))
    return _SESSION["runs"][key]


def test_every_paper_analysis_has_an_experiment_file() -> None:
    assert set(EXPERIMENTS) >= PAPER_ANALYSES, PAPER_ANALYSES - set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_as_a_global_package(experiment: str) -> None:
    text = (CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    cfg = compose([f"experiment={experiment}", "debug=smoke"])
    # Figures find an experiment's runs by its first tag (debug=smoke renames the task).
    assert cfg.tags[0] == experiment
    assert cfg.task_name == "smoke" and cfg.run_mode == "smoke"
    assert compose([f"experiment={experiment}"]).task_name == experiment


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_sweep_expands_to_valid_configs(experiment: str) -> None:
    jobs = sweep_jobs(experiment)
    assert len({tuple(job) for job in jobs}) == len(jobs) >= 5
    seeds = {o for job in jobs for o in job if o.startswith("seed=")}
    assert seeds == {f"seed={s}" for s in range(5)}  # the paper's 5 seeds, for error bars
    for job in (jobs[0], jobs[-1]):  # every swept key exists and composes
        cfg = compose([f"experiment={experiment}", *job])
        assert f"seed={cfg.seed}" in job


def test_sweep_values_reach_the_config() -> None:
    jobs = {tuple(job) for job in sweep_jobs("ann_sensitivity")}
    assert ("index={kind:flat}", "seed=0") in jobs
    flat = compose(["experiment=ann_sensitivity", "index={kind:flat}"])
    hnsw = compose(["experiment=ann_sensitivity", "index={kind:hnsw,ef_search:200}"])
    assert flat.index.kind == "flat" and (hnsw.index.kind, hnsw.index.ef_search) == ("hnsw", 200)
    severity = [job[0] for job in sweep_jobs("drift_severity")]
    assert "encoder@new_encoder=e5_small" in severity
    e5 = compose(["experiment=drift_severity", "encoder@new_encoder=e5_small"])
    assert e5.new_encoder.model_id == "intfloat/multilingual-e5-small"
    rank = compose(["experiment=la_rank", "adapter.methods.low_rank_affine.rank=256"])
    assert set(rank.adapter.methods) == {"procrustes", "low_rank_affine"}
    assert rank.adapter.methods.low_rank_affine.rank == 256


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_on_smoke_setting(smoke_root: Path, experiment: str) -> None:
    record = smoke_run(smoke_root, experiment)
    assert record["debug"] is True and record["config"]["tags"][0] == experiment
    knn = record["metrics"]["protocols"]["knn"]["strategies"]
    recall = {name: s["metrics"]["recall@10"]["mean"] for name, s in knn.items()}
    # A few hundred items: the re-index's own ANN search finds nearly all of the exact top 10
    # (0.99-1.0 on every smoke setting), and keeping the old model misses some of them.
    assert recall["full_reindex"] >= 0.95
    assert recall["status_quo"] < recall["full_reindex"]
    assert any(name.startswith("adapter/") for name in knn)
    assert 0.0 <= record["drift"]["knn_overlap@10"] <= 1.0


def test_drift_severity_smoke_run_uses_real_models(smoke_root: Path) -> None:
    record = smoke_run(smoke_root, "drift_severity")
    assert record["real_weights"] is True and record["synthetic"] is False
    assert record["models"]["new"]["name"] == "sentence-transformers/paraphrase-MiniLM-L3-v2"
    assert set(record["metrics"]["protocols"]) == {"knn", "qrels"}
    # 384 -> 384: the new query fits the old index without an adapter.
    assert "misaligned" in record["metrics"]["protocols"]["knn"]["strategies"]


def test_smoke_runs_share_the_embedding_cache(smoke_root: Path) -> None:
    """Experiments over the same data and models encode it once per session."""
    first = smoke_run(smoke_root, "la_rank")
    again = smoke_run(smoke_root, "mlp_width")
    assert first["models"] == again["models"]
    assert all(stats["encoded"] == 0 for stats in again["cache"].values())


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(PAPER_ANALYSES - {"drift_synthetic"}))
def test_experiment_runs_with_its_own_models(smoke_root: Path, experiment: str) -> None:
    """The fuller variant: each experiment's real models (MiniLM-L6, mpnet, MiniLM-L3) on the
    smoke setting; about 4 minutes on 2 cores, nearly all of it mpnet unpacking and encoding."""
    record = smoke_run(smoke_root, experiment, own_models=True)
    assert record["real_weights"] is True and record["synthetic"] is False
    assert "qrels" in record["metrics"]["protocols"]


def test_multirun_sweeps_with_one_command(tmp_path: Path) -> None:
    """`python -m drift.run -m experiment=...` launches the file's sweep; the command line pins
    or narrows any swept key; later jobs reuse the embedding cache of earlier ones."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "drift.run", "-m", "experiment=drift_synthetic",
        "seed=0", "new_encoder.level=0.0,1.0", f"hydra.sweep.dir={tmp_path / 'multirun'}",
        *smoke_overrides(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("*.json")]
    levels = sorted(r["config"]["new_encoder"]["level"] for r in records)
    assert levels == [0.0, 1.0]
    # The basic launcher runs the jobs in sweep order (creation times can share a second).
    later = next(r for r in records if r["config"]["new_encoder"]["level"] == 1.0)
    assert later["cache"]["synthetic/old"]["encoded"] == 0


def test_parallel_launcher_is_joblib() -> None:
    launcher = hydra_config("hydra/launcher=parallel", "experiment=la_rank").hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2


@pytest.mark.skipif(
    find_spec("hydra_plugins.hydra_submitit_launcher") is None,
    reason="hydra-submitit-launcher is not installed (pip install -e '.[slurm]')",
)
def test_slurm_launcher_composes_with_the_plugin() -> None:
    launcher = hydra_config("hydra/launcher=slurm", "experiment=main_table").hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1


@pytest.mark.skipif(
    find_spec("hydra_plugins.hydra_submitit_launcher") is not None,
    reason="hydra-submitit-launcher is installed",
)
def test_slurm_launcher_without_the_plugin_fails_only_when_chosen() -> None:
    with pytest.raises(MissingConfigException, match="submitit_slurm"):
        hydra_config("hydra/launcher=slurm")
    assert hydra_config("experiment=main_table").hydra.launcher._target_.endswith("BasicLauncher")


def test_wandb_offline_writes_a_run_folder(tmp_path: Path) -> None:
    record = run(
        compose(
            [
                "experiment=drift_synthetic",
                *smoke_overrides(tmp_path),
                "logger=wandb",
                f"logger.save_dir={tmp_path / 'wandb'}",
                "stream.enabled=true",  # its curves go to W&B as a table
                "stream.length=50",
                "timeline.enabled=true",
                "timeline.hours=2",
                "timeline.rate=0.5",
                "timeline.modes=[adapter_frozen,backfill_status_quo]",
            ]
        )
    )
    (folder,) = (tmp_path / "wandb" / "wandb").glob("offline-run-*")
    (log,) = folder.glob("run-*.wandb")
    assert log.stat().st_size > 0
    tables = {p.name.split("_")[0] for p in (folder / "files" / "media" / "table").glob("*.json")}
    assert tables == {"strategies", "stream", "timeline"}
    assert record["config"]["logger"]["tags"] == ["drift_synthetic"]
    assert record["config"]["logger"]["group"] == "smoke"


def test_stream_and_timeline_become_long_tables_for_wandb(smoke_root: Path) -> None:
    stream = smoke_run(smoke_root, "query_stream")["stream"]
    rows = stream_rows(stream)
    n_strategies, n_points = len(stream["strategies"]), len(stream["checkpoints"])
    assert len({(r["strategy"], r["quantity"]) for r in rows}) >= n_strategies
    assert len(rows) % n_points == 0
    full = [r for r in rows if r["strategy"] == "full_reindex" and r["quantity"] == "share_encoded"]
    assert [r["value"] for r in full] == [1.0] * n_points
    timeline = smoke_run(smoke_root, "migration_timeline")["timeline"]
    rows = timeline_rows(timeline)
    modes = {r["mode"] for r in rows}
    assert modes == set(timeline["modes"]) and {r["hours"] for r in rows} == set(timeline["hours"])
    # Each row carries the timeline's own numbers for its mode, hour and metric.
    for row in rows[:: max(1, len(rows) // 25)]:
        hour = timeline["hours"].index(row["hours"])
        summary = timeline["modes"][row["mode"]][row["metric"]]
        np.testing.assert_equal(
            [row["mean"], row["ci_low"], row["ci_high"]],
            [summary["mean"][hour], summary["ci_low"][hour], summary["ci_high"][hour]],
        )
    assert stream_rows(None) == [] and timeline_rows(None) == []


class FakeWandb:
    """Stands in for the wandb module: records what a tracked run sends it."""

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data

    class Artifact:
        def __init__(self, name, type):  # noqa: A002 (wandb's own argument name)
            self.name, self.type, self.files = name, type, []

        def add_file(self, path):
            self.files.append(path)

    def __init__(self) -> None:
        self.runs: list[SimpleNamespace] = []

    def init(self, **kwargs):
        run = SimpleNamespace(init=kwargs, dir="fake", logged=[], artifacts=[], summary={})
        run.log = run.logged.append
        run.log_artifact = run.artifacts.append
        run.finish = lambda exit_code: setattr(run, "exit_code", exit_code)
        self.runs.append(run)
        return run


def test_tracked_run_logs_config_metrics_table_and_artifact_and_always_finishes(
    tmp_path: Path, monkeypatch
) -> None:
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    logger = {"kind": "wandb", "mode": "offline", "project": "p", "save_dir": str(tmp_path),
              "group": "g", "tags": ["t"], "metrics": "full"}  # fmt: skip
    result = tmp_path / "result.json"
    result.write_text("{}")
    record = {"metrics": {"r": {"mean": 0.5}}, "timings": {"fit": 1.0}, "config_hash": "abc"}
    with tracked_run(logger, {"seed": 3}) as tracker:
        tracker.log_record(record, result, [{"strategy": "status_quo", "R@10": 0.5}])
    (ok,) = fake.runs
    assert ok.init["config"] == {"seed": 3} and (ok.init["group"], ok.init["tags"]) == ("g", ["t"])
    assert {"metrics/r/mean": 0.5, "timings/fit": 1.0}.items() <= ok.logged[0].items()
    assert ok.logged[1]["strategies"].data == [["status_quo", 0.5]]
    assert ok.artifacts[0].files == [str(result)] and ok.exit_code == 0
    with pytest.raises(RuntimeError), tracked_run(logger, {}):
        raise RuntimeError("the experiment failed")
    assert fake.runs[1].exit_code == 1  # finished, marked failed


def test_online_logger_without_credentials_says_how_to_get_them(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    logger = {"kind": "wandb", "mode": "online", "project": "p", "save_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match="wandb login"), tracked_run(logger, {}):
        pass

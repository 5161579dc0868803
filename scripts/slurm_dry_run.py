"""Show what a SLURM sweep would submit, without a cluster: the jobs and the sbatch script.

    python scripts/slurm_dry_run.py --entry drift.encode encode.shard=0,1,2,3 encode.num_shards=4 \
        hydra.launcher.partition=gpu
    python scripts/slurm_dry_run.py experiment=main_table dataset=ag_news,dbpedia_14,emotion

Composes the config as `python -m <entry> -m hydra/launcher=slurm <overrides>` would, expands
the sweep as Hydra's basic sweeper does (one job per combination), turns the launcher config into
submitit parameters as hydra-submitit-launcher does, and asks submitit's own SlurmExecutor for the
sbatch script of the job array (`#SBATCH` lines: partition, time, GPUs, CPUs, memory, array and
its parallelism, then the srun line). Nothing is submitted and nothing is written: submitit
refuses to build a SlurmExecutor where `srun` is absent, so this one is told that it is present.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any
from unittest import mock

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from drift.cli.config import CONFIG_DIR

ENTRIES = ("drift.run", "drift.encode")


def sweep_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """The override list of each job of the sweep `overrides` describes (Hydra's basic sweeper:
    the product of the comma-separated choices)."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in batches for job in batch]


def launcher_parameters(entry: str, job: Sequence[str]) -> tuple[dict[str, Any], str]:
    """(submitit parameters, submitit folder) of one job of `python -m <entry>` under
    hydra/launcher=slurm, translated as hydra-submitit-launcher's `launch` does."""
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    name = entry.rsplit(".", 1)[-1]  # Hydra's job name for `python -m drift.<name>`
    overrides = ["hydra/launcher=slurm", f"hydra.job.name={name}", *job]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert isinstance(params, dict)
    params.pop("_target_")
    folder = str(params.pop("submitit_folder"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    converted = {k if k in base else f"slurm_{k}": v for k, v in params.items()}
    return converted, folder


def sbatch_script(params: dict[str, Any], folder: str, n_jobs: int) -> str:
    """The sbatch file submitit would submit for an array of `n_jobs` jobs with `params`
    (building it creates no file or folder)."""
    import submitit
    from submitit.slurm import slurm

    params = dict(params)
    max_num_timeout = params.pop("slurm_max_num_timeout", 0)
    with mock.patch.object(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 2)):
        executor = submitit.AutoExecutor(
            folder=folder, cluster="slurm", slurm_max_num_timeout=max_num_timeout
        )
        executor.update_parameters(**params)
    inner = executor._executor
    if n_jobs > 1:  # as SlurmExecutor._internal_process_submissions does for an array
        inner.parameters["map_count"] = n_jobs
    return inner._make_submission_file_text(inner._submitit_command_str, "dry-run")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entry", choices=ENTRIES, default="drift.run")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, sweeps included")
    args = parser.parse_args(argv)
    jobs = sweep_jobs(args.overrides)
    params, folder = launcher_parameters(args.entry, jobs[0])
    plan = {
        "command": f"python -m {args.entry} -m hydra/launcher=slurm {' '.join(args.overrides)}",
        "jobs": jobs,
        "submitit_folder": folder,
        "parameters": dict(params),
        "sbatch": sbatch_script(params, folder, len(jobs)),
    }
    print(f"{plan['command']}\n{len(jobs)} job(s):")
    for i, job in enumerate(jobs):
        print(f"  #{i}: {' '.join(job)}")
    print(f"submitit parameters: {json.dumps(plan['parameters'], sort_keys=True)}")
    print(f"submitit folder: {folder}\n\n{plan['sbatch']}")
    return plan


if __name__ == "__main__":
    main()

"""The encode stage on its own: one shard of a run's encoding into the shared embedding cache
(`python -m drift.encode`, drift/encode.py), with the data and models exactly as drift.run
loads them, so that a run with the same overrides afterwards finds every vector cached.

`encode_shard_run(config)` takes the plain, validated config and returns the record that
drift/encode.py writes beside the run results (`<results_dir>/encode/...`; it has no metrics, so
result readers skip it): the shard, its device, per part how many distinct items there were and
how many this shard holds, the cache's counters (items encoded, hits) and timings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from drift.core.records import config_hash, slug
from drift.core.seeding import seed_everything
from drift.encoders.shards import encode_shard, shard_device
from drift.experiment.stages import RunContext, load_models, load_run_data, pair_pool


def cuda_device_count() -> int:
    """GPUs torch sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def encode_shard_run(config: dict[str, Any]) -> dict[str, Any]:
    """Encode shard `encode.shard` of `encode.num_shards` of the run `config` describes."""
    started = time.time()
    shard, num_shards = int(config["encode"]["shard"]), int(config["encode"]["num_shards"])
    device = shard_device(str(config["device"]), shard, cuda_device_count())
    run = RunContext.from_config({**config, "device": device})
    seed_everything(run.seed)
    loaded, data = load_run_data(run)
    models = load_models(run, data)
    queries = list(data.queries)
    if config["adapter"]["pair_role"] == "query_log":  # its pairs are query encodes of these
        queries += list(pair_pool(run, loaded, data))
    parts = encode_shard(models, data.corpus, queries, shard, num_shards, run.timings)
    return {
        "kind": "encode_shard",
        "task_name": config["task_name"],
        "shard": shard,
        "num_shards": num_shards,
        "device": device,
        "config_hash": config_hash(config),
        "dataset": data.summary(),
        "models": {
            side: {"name": e.name, "revision": e.revision} for side, e in models.corpus.items()
        },
        "query_models": {
            side: {"name": e.name, "revision": e.revision}
            for side, e in models.separate_query.items()
        },
        "parts": parts,
        "cache": models.cache.stats,
        "timings": {**run.timings, "total": time.time() - started},
    }


def shard_record_path(results_dir: str | Path, record: dict[str, Any]) -> Path:
    """<results_dir>/encode/<dataset>/<old>__to__<new>/<task>-shard<i>of<n>-<config hash>.json"""
    models = record["models"]
    pair = f"{slug(models['old']['name'])}__to__{slug(models['new']['name'])}"
    name = (
        f"{slug(record['task_name'])}-shard{record['shard']}of{record['num_shards']}-"
        f"{record['config_hash']}.json"
    )
    return Path(results_dir) / "encode" / slug(record["dataset"]["name"]) / pair / name

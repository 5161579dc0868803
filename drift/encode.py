"""Encode one shard of a run's corpus and queries into the shared cache: `python -m drift.encode`.

    python -m drift.encode                                         # everything, one process
    python -m drift.encode -m encode.shard=0,1 encode.num_shards=2                  # 2 shards
    python -m drift.encode -m encode.shard=0,1,2,3 encode.num_shards=4 hydra/launcher=parallel
    python -m drift.encode -m encode.shard=0,1 encode.num_shards=2 hydra/launcher=submitit_local
    python -m drift.run encode.require_cached=true                 # then: encodes nothing

Same config groups and overrides as drift.run (give both the same dataset, models, data limits
and paths): shard i of n encodes, with the old and new models (and their query towers), the
distinct items whose content hash is i modulo n (drift.encoders.shards), so the shards of one
sweep fill the cache together and never encode an item twice. On a node with several GPUs and
device auto or cuda, shard i runs on cuda:(i % GPUs). Each shard writes a small record (counts,
cache counters, timings, provenance) under <paths.results_dir>/encode/. docs/scale_out.md.

Exit codes as drift.run's: 0 done; 2 bad input (one line on stderr), e.g. a shard out of range,
found before anything loads; Hydra's own refusals exit 1.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from drift.cli import refused
from drift.cli.config import CONFIG_DIR, to_plain
from drift.core.errors import DriftError


def encode(cfg: DictConfig) -> dict:
    """Encode the shard `cfg` names, write its record, return it."""
    from drift.core.provenance import provenance
    from drift.core.records import to_jsonable, write_json_atomic
    from drift.core.registry import import_plugins
    from drift.experiment.encoding import encode_shard_run, shard_record_path
    from drift.experiment.validation import validate_config
    from drift.run import warn_cpu_fallback

    config = to_plain(cfg)
    import_plugins(config.get("plugins") or [])
    validate_config(config)
    warn_cpu_fallback(config["device"])
    record = encode_shard_run(config)
    record = to_jsonable({**record, "config": config, "provenance": provenance()})
    path = write_json_atomic(shard_record_path(config["paths"]["results_dir"], record), record)
    counts = ", ".join(
        f"{part} {c['in_shard']}/{c['distinct']}" for part, c in record["parts"].items()
    )
    encoded = sum(stats["encoded"] for stats in record["cache"].values())
    print(
        f"shard {record['shard']} of {record['num_shards']} on {record['device']}: {counts} "
        f"items in this shard; {encoded} encoded, the rest were cached\nrecord: {path}"
    )
    return record


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        encode(cfg)
    except DriftError as err:
        sys.exit(refused("drift.encode", err))


if __name__ == "__main__":
    main()

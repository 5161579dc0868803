"""Run one experiment: `python -m drift.run [hydra overrides]`.

    python -m drift.run                                   # offline default: MiniLM-L6 -> mpnet
    python -m drift.run dataset=ag_news                   # the paper's own setup (needs the hub)
    python -m drift.run dataset=beir_local dataset.path=/data/scifact
    python -m drift.run debug=smoke paths.results_dir=/tmp/r
    python -m drift.run -m seed=0,1,2,3,4                 # a sweep

Writes one result JSON under paths.results_dir and prints a table shaped like the paper's.

The whole config is checked before anything loads (drift.experiment.validation), what needs the
data's size right after the data loads, before any model does.

Exit codes: 0 done; 2 bad input (a config, data set, model or cache that cannot be used: a
DriftError), with one line on stderr naming every problem found and nothing on stdout; Hydra's
own refusals (an unknown config key, a malformed override) exit 1 with Hydra's message.
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from drift.cli import refused
from drift.cli.config import CONFIG_DIR, sweep_folder, to_plain
from drift.core.errors import DriftError


def warn_cpu_fallback(device: str) -> None:
    """Log a warning when `device=auto` will encode on the CPU (drift.core.provenance)."""
    from drift.core.provenance import cpu_fallback

    message = cpu_fallback(device)
    if message:
        logging.getLogger("drift").warning(message)


def run(cfg: DictConfig) -> dict:
    """Run the experiment `cfg` describes, write its result file, return the record."""
    from drift.core.records import build_record, result_path, write_json_atomic
    from drift.core.registry import import_plugins
    from drift.experiment.pipeline import run_experiment
    from drift.experiment.tracking import tracked_run
    from drift.experiment.validation import validate_config
    from drift.migration.gate import summarise_gate
    from drift.migration.stream import summarise_stream
    from drift.migration.timeline import summarise_timeline
    from drift.scoring.evaluate import format_table, table_rows

    config = to_plain(cfg)
    import_plugins(config.get("plugins") or [])  # modules registering the user's components
    validate_config(config)
    warn_cpu_fallback(config["device"])
    with tracked_run(config["logger"], config, sweep=sweep_folder()) as tracker:
        outcome = run_experiment(config)
        record = build_record(config, outcome, debug=config["run_mode"] != "full")
        path = write_json_atomic(result_path(config["paths"]["results_dir"], record), record)
        tracker.log_record(record, path, table_rows(record["metrics"]))
    for protocol in record["metrics"].get("protocols", {}):
        print(
            f"\n## {record['dataset']['name']}: {record['models']['old']['name']} -> "
            f"{record['models']['new']['name']} ({protocol} protocol)\n"
        )
        print(format_table(record["metrics"], protocol))
    if record.get("gate") and "knn" in record["metrics"].get("protocols", {}):
        print("\n## drift gate: estimated from the held-out pairs vs measured\n")
        print(summarise_gate(record))
    if "stream" in record:
        print(f"\n## Query stream ({record['stream']['popularity']})\n")
        print(summarise_stream(record["stream"]))
    if "timeline" in record:
        print("\n## Migration timeline\n")
        print(summarise_timeline(record["timeline"]))
    if record["warnings"]:
        print("\nWarnings during the run (also in the result file):")
        print("\n".join(f"- {warning}" for warning in record["warnings"]))
    if not record["real_weights"]:
        print(
            "\nNOTE: an encoder uses random or synthetic weights; this is not a real-model result."
        )
    print(f"\nresult file: {path}")
    return record


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except DriftError as err:
        # One line, not through logging (Hydra's handlers print to stdout and the job's log).
        sys.exit(refused("drift", err))


if __name__ == "__main__":
    main()

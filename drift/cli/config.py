"""Hydra/OmegaConf glue: the `drift_root` and `drift_pid` resolvers, config composition, and the
sweep a job runs in.

Only drift.run, scripts/ and tests use this module; stages below receive plain Python values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from drift.core.errors import ConfigError
from drift.core.provenance import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "conf"

if not OmegaConf.has_resolver("drift_root"):
    OmegaConf.register_new_resolver("drift_root", lambda: str(REPO_ROOT))
# The process id, in Hydra's output folder names: two runs started in the same second get
# folders (and logs) of their own (conf/hydra/default.yaml).
if not OmegaConf.has_resolver("drift_pid"):
    OmegaConf.register_new_resolver("drift_pid", os.getpid)


def sweep_folder() -> str | None:
    """Under a Hydra multirun, the name of the sweep's folder (each job's output folder is one of
    its subfolders); None otherwise. drift.run hands it to the W&B run as its group. Not a config
    value: the config (and so its hash, and result file names) must not change between sweeps."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or not hydra_cfg.runtime.output_dir:
        return None
    return Path(hydra_cfg.runtime.output_dir).parent.name


def compose(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose the config as `python -m drift.run <overrides>` would, without running a job."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """Resolve interpolations and drop Hydra's own node: what the stages and result files see."""
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    return container


def encoder_config(name: str) -> dict[str, Any]:
    """One conf/encoder/<name>.yaml as a plain mapping (what `build_encoder` takes), for scripts
    that build an encoder outside a composed run."""
    path = CONFIG_DIR / "encoder" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"unknown encoder config {name!r}; known: {', '.join(known)}")
    return yaml.safe_load(path.read_text())

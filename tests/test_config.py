"""Every config file composes; struct mode rejects unknown keys; seeds apply (0 included); blocks
shared by several config files live in one file they inherit through Hydra's defaults list."""

from __future__ import annotations

import random

import numpy as np
import pytest
import yaml
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from drift.cli.config import CONFIG_DIR, compose, to_plain
from drift.core.seeding import derive_seed, seed_everything

GROUPS = ["encoder", "dataset", "adapter", "index", "logger", "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_root_config_composes_and_resolves() -> None:
    plain = to_plain(compose())
    assert plain["seed"] == 0
    assert plain["old_encoder"]["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert plain["new_encoder"]["model_id"] == "sentence-transformers/all-mpnet-base-v2"
    assert plain["paths"]["results_dir"] == str(CONFIG_DIR.parent / "results" / "runs")
    assert "hydra" not in plain


@pytest.mark.parametrize(
    "override",
    [f"encoder@old_encoder={o}" for o in options("encoder")]
    + [f"dataset={o}" for o in options("dataset")]
    + [f"{g}={o}" for g in ("adapter", "index", "logger", "debug", "paths") for o in options(g)]
    + [f"experiment={o}" for o in options("experiment")],
)
def test_every_config_file_composes(override: str) -> None:
    # every interpolation resolves too; ??? marks what the user must give (dataset.path, ...)
    cfg = OmegaConf.to_container(compose([override]), resolve=True, throw_on_missing=False)
    assert cfg["task_name"]


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert options(group), f"conf/{group}/ has no config files"


def test_unknown_key_fails() -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError, ConfigAttributeError)):
        compose(["adapter.n_pairz=10"])


def test_results_dir_overridable(tmp_path) -> None:
    cfg = compose([f"paths.results_dir={tmp_path}"])
    assert cfg.paths.results_dir == str(tmp_path)


def test_seed_zero_is_applied() -> None:
    seed_everything(0)
    a = (random.random(), np.random.rand())
    seed_everything(0)
    assert (random.random(), np.random.rand()) == a
    seed_everything(1)
    assert np.random.rand() != a[1]
    assert derive_seed(0, "pairs") != derive_seed(1, "pairs")
    assert derive_seed(0, "pairs") != derive_seed(0, "bootstrap")


def settings(path: str) -> dict:
    """What a config file sets itself (its defaults list aside)."""
    values = yaml.safe_load((CONFIG_DIR / path).read_text())
    values.pop("defaults", None)
    return values


# Blocks several config files share, each kept in one file: (that file, the files inheriting it
# through their defaults list, the composed node they land in).
SHARED_BLOCKS = [
    ("adapter/pairs/paper.yaml", [f"adapter/{o}.yaml" for o in options("adapter")], "adapter"),
    (
        "dataset/classification.yaml",
        ["dataset/ag_news.yaml", "dataset/dbpedia_14.yaml", "dataset/emotion.yaml"],
        "dataset",
    ),
    (
        "dataset/beir_local.yaml",
        ["dataset/faq.yaml", "dataset/manpages.yaml", "dataset/pydoc.yaml"],
        "dataset",
    ),
]


@pytest.mark.parametrize(("shared", "inheriting", "node"), SHARED_BLOCKS)
def test_shared_block_is_inherited_not_copied(
    shared: str, inheriting: list[str], node: str
) -> None:
    block = settings(shared)
    for path in inheriting:
        own = settings(path)
        copied = sorted(key for key, value in own.items() if key in block and block[key] == value)
        assert not copied, f"{path} repeats {copied} of {shared}: inherit them instead"
        group, option = path.removesuffix(".yaml").split("/")
        composed = to_plain(compose([f"{group}={option}"]))[node]
        inherited = {key: value for key, value in block.items() if key not in own}
        assert {key: composed[key] for key in inherited} == inherited, path


PAIR_SETTINGS = {
    "n_pairs",
    "n_pairs_fraction",
    "val_fraction",
    "gate_fraction",
    "pair_role",
    "exclude_judged",
}


def test_every_adapter_config_samples_the_same_pairs() -> None:
    assert set(settings("adapter/pairs/paper.yaml")) == PAIR_SETTINGS
    pairs = [
        {key: to_plain(compose([f"adapter={o}"]))["adapter"][key] for key in PAIR_SETTINGS}
        for o in options("adapter")
    ]
    assert len(pairs) >= 3 and all(p == pairs[0] for p in pairs)
    assert (pairs[0]["n_pairs"], pairs[0]["pair_role"]) == (20000, "document")  # the paper's


@pytest.mark.parametrize("adapter", options("adapter"))
def test_inherited_pair_settings_override(adapter: str) -> None:
    cfg = compose([f"adapter={adapter}", "adapter.n_pairs=123", "adapter.pair_role=query"])
    assert (cfg.adapter.n_pairs, cfg.adapter.pair_role) == (123, "query")
    assert compose([f"adapter={adapter}", "debug=smoke"]).adapter.n_pairs == 200


OFFLINE_1K = ["beyond_paper", "migration_timeline", "query_stream", "continuous_adaptation"]


@pytest.mark.parametrize("experiment", OFFLINE_1K)
def test_experiment_block_applies_and_yields(experiment: str) -> None:
    """experiment/common/offline_1k.yaml sets pairs and queries for the experiments listing it;
    their own values and the command line still win."""
    path = f"experiment/{experiment}.yaml"
    assert "common/offline_1k" in yaml.safe_load((CONFIG_DIR / path).read_text())["defaults"]
    assert "n_pairs" not in settings(path).get("adapter", {})
    assert "data_limits" not in settings(path)
    cfg = compose([f"experiment={experiment}"])
    assert (cfg.adapter.n_pairs, cfg.data_limits.max_queries) == (1000, 1000)
    assert compose([f"experiment={experiment}", "adapter.n_pairs=77"]).adapter.n_pairs == 77
    assert compose([f"experiment={experiment}", "debug=smoke"]).adapter.n_pairs == 200


def test_experiment_keeps_its_adapter_group_and_own_values_beside_a_block() -> None:
    cfg = compose(["experiment=continuous_adaptation"])
    assert {"procrustes", "residual_mlp"} <= cfg.adapter.methods.keys()  # override /adapter: all
    assert cfg.adapter.dsm == [False]  # its own value over adapter/all.yaml's [false, true]

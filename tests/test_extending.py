"""Adding a component is one module and one config file (docs/extending.md): a toy adapter,
dataset and encoder from a module of the tests (tests/toy_components.py), named in a toy
experiment's `plugins`, run end to end and reach the result file, the exporter and the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drift.adapters import ADAPTERS, build_adapter, hparam_columns, load_adapter, register_adapter
from drift.cli.config import compose
from drift.core.errors import ConfigError, DataError
from drift.core.registry import Registry, import_plugins
from drift.data import DATASETS, load_data
from drift.encoders import ENCODERS, build_encoder
from drift.report.collect import collect
from drift.report.figures import label_of, ordered, style
from drift.run import run
from drift.serving.export import export_adapter

TOY = "toy_signed_permutation"
# What a user writes beside their module: config files on Hydra's search path.
CONFIGS = {
    "encoder/toy_old.yaml": "type: toy_hash\nrole: old\ndim: 16\n",
    "encoder/toy_new.yaml": "type: toy_hash\nrole: new\ndim: 16\n",
    "dataset/toy_items.yaml": "type: toy_items\nn_corpus: 300\nn_queries: 40\n",
    "experiment/toy.yaml": """\
# @package _global_
# The toy components of tests/toy_components.py, end to end (tiny).
defaults:
  - override /encoder@old_encoder: toy_old
  - override /encoder@new_encoder: toy_new
  - override /dataset: toy_items
  - override /adapter: procrustes
  - override /index: flat
  - override /logger: none

plugins: [toy_components]
task_name: toy
tags: [toy]

adapter:
  n_pairs: 200
  methods:
    toy_signed_permutation:
      sign: true
eval:
  strategies: [full_reindex, status_quo, misaligned, adapter]
  n_boot: 50
  ks: [1, 10]
encode:
  show_progress: false
""",
}


@pytest.fixture(scope="module")
def registries():
    """The registries as they were before this module's toys, restored afterwards (with the module
    cache), so that no other test sees the toys. Every built-in is registered first: a built-in
    module first imported during these tests would otherwise stay imported but unregistered."""
    registries = (ADAPTERS, ENCODERS, DATASETS)
    saved = [dict(registry.items()) for registry in registries]
    yield
    for registry, entries in zip(registries, saved, strict=True):
        registry._entries = entries
    sys.modules.pop("toy_components", None)


@pytest.fixture(scope="module")
def toy_record(registries, tmp_path_factory) -> dict:
    """The toy experiment's record; its `plugins` imports tests/toy_components.py."""
    tmp = tmp_path_factory.mktemp("toy")
    for name, text in CONFIGS.items():
        (tmp / "conf" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "conf" / name).write_text(text)
    return run(
        compose(
            [
                f"hydra.searchpath=[file://{tmp / 'conf'}]",
                "experiment=toy",
                f"paths.results_dir={tmp / 'results'}",
                f"paths.cache_dir={tmp / 'cache'}",
            ]
        )
    )


def test_the_toy_adapter_recovers_the_planted_drift_end_to_end(toy_record: dict) -> None:
    assert "toy_components" in sys.modules  # imported by the run, from the config's plugins
    assert toy_record["synthetic"] is True and toy_record["real_weights"] is False
    assert toy_record["models"]["new"]["name"] == "toy/new"
    assert toy_record["dataset"]["name"] == "toy_items"
    # the fitted map is the planted one: new coordinate i is old coordinate permutation[i], signed
    new = build_encoder({"type": "toy_hash", "role": "new", "dim": 16})
    planted = np.zeros((16, 16), dtype=np.float32)
    planted[np.arange(16), new.permutation] = new.signs
    fitted = load_adapter(toy_record["artifacts"][TOY])
    np.testing.assert_array_equal(fitted.params()["weight"], planted)
    knn = toy_record["metrics"]["protocols"]["knn"]["strategies"]
    toy = knn[f"adapter/{TOY}"]
    assert toy["metrics"]["recall@10"]["mean"] > 0.99
    assert toy["arr"]["arr_recall@10"]["mean"] > 0.99
    # the planted drift is real: the new queries sent as they are find little
    assert knn["misaligned"]["metrics"]["recall@10"]["mean"] < 0.5
    assert toy_record["adapters"][TOY]["hparams"]["sign"] is True


def test_the_toy_adapter_exports_and_reports_under_its_own_label(toy_record, tmp_path) -> None:
    adapter = load_adapter(toy_record["artifacts"][TOY])
    export_adapter(adapter, tmp_path / "served", old_model="toy/old", new_model="toy/new")
    frame = collect(Path(toy_record["config"]["paths"]["results_dir"]))
    rows = frame[frame.strategy == f"adapter/{TOY}"]
    assert not rows.empty and set(rows["toy_sign"]) == {True}  # its hyper-parameter column
    assert label_of(f"adapter/{TOY}") == "Toy permutation"
    assert label_of(f"adapter/{TOY}+dsm") == "Toy permutation+DSM"
    assert style(f"adapter/{TOY}")["color"] == "#117733"
    # after the built-in adapters, before the strategies that come after them
    assert ordered(["dual_index", f"adapter/{TOY}", "adapter/ridge", "full_reindex"]) == [
        "full_reindex",
        "adapter/ridge",
        f"adapter/{TOY}",
        "dual_index",
    ]


def test_the_toy_encoder_gets_the_shared_checks_and_batching(registries) -> None:
    import_plugins(["toy_components"])
    encoder = build_encoder({"type": "toy_hash", "role": "old", "dim": 16, "batch_size": 3})
    items = [f"toy/doc{i}" for i in range(10)]
    vectors = encoder.encode(items)
    assert vectors.dtype == np.float32 and vectors.shape == (10, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(encoder.encode(items, batch_size=10), vectors)
    assert encoder.encode([]).shape == (0, 16)
    with pytest.raises(DataError, match="item id item 1 is int"):
        encoder.encode(["toy/doc0", 1])
    with pytest.raises(ConfigError, match="role must be one of"):
        encoder.encode(items, role="passage")
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        encoder.encode(items, batch_size=-1)
    with pytest.raises(ConfigError, match="encoder type 'toy_hash' has no setting"):
        build_encoder({"type": "toy_hash", "role": "old", "colour": "red"})
    data = load_data({"type": "toy_items", "n_corpus": 5, "n_queries": 2}, seed=0, data_dir=".")
    assert data.synthetic and data.corpus[:2] == ["toy/doc0", "toy/doc1"]


# -- the registry ---------------------------------------------------------------------------------
def test_unknown_names_list_the_known_ones_without_importing_them() -> None:
    with pytest.raises(ConfigError, match="unknown adapter 'nope'; known adapters: .*procrustes"):
        build_adapter("nope")
    with pytest.raises(ConfigError, match="unknown encoder type 'nope'; known types: .*synthetic"):
        build_encoder({"type": "nope"})
    with pytest.raises(ConfigError, match="unknown dataset type 'nope'; known types: .*beir"):
        load_data({"type": "nope"}, seed=0, data_dir=".")


def test_a_run_imports_only_the_modules_of_the_components_it_uses() -> None:
    script = (
        "import sys\n"
        "from drift.adapters import build_adapter\n"
        "from drift.data import load_data\n"
        "from drift.encoders import build_encoder\n"
        "spec = {'type': 'synthetic', 'n_corpus': 5, 'n_queries': 2}\n"
        "load_data(spec, seed=0, data_dir='.')\n"
        "build_encoder({'type': 'synthetic', 'role': 'old', 'dim': 8}).encode(['a'])\n"
        "build_adapter('procrustes')\n"
        "heavy = ('torch', 'mteb', 'datasets', 'drift.data.mteb_tasks', 'drift.data.images',\n"
        "         'drift.encoders.sentence_transformers', 'drift.adapters.residual_mlp')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_two_adapter_kinds_cannot_claim_one_column(registries) -> None:
    from drift.adapters.low_rank_affine import LowRankAffine

    @register_adapter("rank_twin")
    class RankTwin(LowRankAffine):
        hparam_columns = {"la_rank": "rank"}

    try:
        with pytest.raises(ConfigError, match="'low_rank_affine' and 'rank_twin' both claim"):
            hparam_columns()
    finally:
        ADAPTERS._entries.pop("rank_twin")


def test_registry_order_duplicates_and_plugins() -> None:
    registry: Registry[object] = Registry("widget", "widgets", builtins={"b": "json", "a": "json"})

    class Late:
        pass

    registry.register("late")(Late)
    registry.register("a")(dict)  # builtins module "json" registers nothing: a stands in
    registry.register("b")(list)
    assert registry.names() == ["a", "b", "late"]
    assert [name for name, _ in registry.items()] == ["b", "a", "late"]  # builtins' order first
    registry.register("late")(Late)  # the same module again (a re-import): replaced
    with pytest.raises(ConfigError, match="widget 'late' is registered twice"):
        registry.register("late")(dict)
    with pytest.raises(ConfigError, match="unknown widget 'c'; known widgets: a, b, late"):
        registry.get("c")
    with pytest.raises(ConfigError, match="plugins: cannot import 'no_such_module_here'"):
        import_plugins(["no_such_module_here"])

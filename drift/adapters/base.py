"""The adapter contract: a map from the new model's space into the old model's space.

Adapters are pure: numpy arrays in, numpy arrays out; no files besides their own save/load,
no configs, no FAISS. A newcomer can test one with two arrays and nothing else:

    from drift.adapters import build_adapter
    adapter = build_adapter("procrustes").fit(x_new, x_old)
    x_mapped = adapter.transform(x_new)

What other stages need to know about a kind lives on its class too: how figures show it
(`display`), the hyper-parameters the result tables give a column each (`hparam_columns`), and its
serving form for `drift export` (`serving_ops`). docs/extending.md adds a new kind.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from drift.core.errors import VectorError
from drift.core.files import atomic_savez, atomic_write, clean_stale
from drift.core.registry import Registry
from drift.core.vectors import check_vectors

# The built-in kinds in the order figures and tables list them, and the modules defining them.
ADAPTERS: Registry[type[Adapter]] = Registry(
    "adapter",
    "adapters",
    builtins={
        "procrustes": "drift.adapters.procrustes",
        "low_rank_affine": "drift.adapters.low_rank_affine",
        "op_low_rank": "drift.adapters.op_low_rank",
        "residual_mlp": "drift.adapters.residual_mlp",
        "ridge": "drift.adapters.baselines",
        "identity": "drift.adapters.baselines",
        "routed": "drift.adapters.routed",
        "ranking_linear": "drift.adapters.ranking",
        "ranking_low_rank": "drift.adapters.ranking",
        "ranking_mlp": "drift.adapters.ranking",
    },
)

MIN_PAIRS = 2  # below this no adapter (and no validation split) is defined


def register_adapter(name: str):
    """Class decorator adding an adapter class to the registry under `name` (its `kind`)."""

    def wrap(cls: type[Adapter]) -> type[Adapter]:
        cls.kind = name
        return ADAPTERS.register(name)(cls)

    return wrap


class Display(NamedTuple):
    """How figures and tables show an adapter kind: its label, colour and matplotlib marker."""

    label: str
    color: str
    marker: str


class Adapter(ABC):
    """Fit on paired vectors (x_new[i], x_old[i]) of the same items; map new -> old.

    Subclasses implement `_fit`, `_transform`, `params` (name -> array, everything needed to
    transform) and `hparams` (JSON-able constructor arguments). `save`/`load` store the arrays in
    an .npz (loaded with allow_pickle=False) beside an adapter.json; nothing is ever unpickled.
    """

    kind: ClassVar[str] = "base"
    # Whether `fit` looks at the validation pairs (early stopping): such an adapter has seen them,
    # so they are no held-out pairs for its re-index gate.
    uses_validation: ClassVar[bool] = False
    # How figures show the kind; None: by its kind name, in grey, after the known strategies.
    display: ClassVar[Display | None] = None
    # Result-table column -> the hyper-parameter (a key of adapter.methods.<kind>) it holds.
    hparam_columns: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.d_in: int | None = None
        self.d_out: int | None = None
        self.fit_seconds: float | None = None
        self.fit_info: dict[str, Any] = {}

    # -- to implement -------------------------------------------------------------------------
    @abstractmethod
    def _fit(
        self,
        x_new: np.ndarray,
        x_old: np.ndarray,
        x_new_val: np.ndarray | None,
        x_old_val: np.ndarray | None,
        seed: int,
    ) -> None: ...

    @abstractmethod
    def _transform(self, x_new: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def params(self) -> dict[str, np.ndarray]:
        """The fitted arrays; `set_params` must accept exactly these."""

    @abstractmethod
    def set_params(self, params: dict[str, np.ndarray]) -> None: ...

    def hparams(self) -> dict[str, Any]:
        """Constructor arguments, JSON-able (so `type(self)(**hparams)` rebuilds it)."""
        return {}

    def serving_ops(self) -> list[dict[str, Any]] | None:
        """The fitted transform as serving operations over the names of `params()`, in the
        vocabulary of drift/serving/runtime.py; None (the default): it has no serving form, so
        `drift export` refuses it. Every MapAdapter has one."""
        return None

    # -- shared -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.kind

    @property
    def n_params(self) -> int:
        return int(sum(np.asarray(a).size for a in self.params().values()))

    def fit(
        self,
        x_new: np.ndarray,
        x_old: np.ndarray,
        *,
        x_new_val: np.ndarray | None = None,
        x_old_val: np.ndarray | None = None,
        seed: int = 0,
    ) -> Adapter:
        x_new = check_vectors(x_new, name=f"{self.name} fit: new-model vectors")
        x_old = check_vectors(x_old, name=f"{self.name} fit: old-model vectors")
        if x_new.shape[0] != x_old.shape[0]:
            raise VectorError(
                f"{self.name} fit: {x_new.shape[0]} new-model vectors but {x_old.shape[0]} "
                "old-model vectors; pairs must be row-aligned"
            )
        if x_new.shape[0] < MIN_PAIRS:
            raise VectorError(
                f"{self.name} fit: got {x_new.shape[0]} pair(s); an adapter needs at least "
                f"{MIN_PAIRS} row-aligned (new, old) pairs"
            )
        if (x_new_val is None) != (x_old_val is None):
            raise VectorError(
                f"{self.name} fit: validation pairs need both x_new_val and x_old_val, got only "
                f"{'x_new_val' if x_old_val is None else 'x_old_val'}"
            )
        if x_new_val is not None and x_old_val is not None:
            x_new_val = check_vectors(x_new_val, name="validation new vectors", dim=x_new.shape[1])
            x_old_val = check_vectors(x_old_val, name="validation old vectors", dim=x_old.shape[1])
            if x_new_val.shape[0] != x_old_val.shape[0] or x_new_val.shape[0] == 0:
                raise VectorError(
                    f"{self.name} fit: {x_new_val.shape[0]} new and {x_old_val.shape[0]} old "
                    "validation vectors; validation pairs must be row-aligned and non-empty"
                )
        self.d_in, self.d_out = int(x_new.shape[1]), int(x_old.shape[1])
        self.fit_info = {}
        start = time.perf_counter()
        self._fit(x_new, x_old, x_new_val, x_old_val, seed)
        self.fit_seconds = time.perf_counter() - start
        return self

    def transform(self, x_new: np.ndarray) -> np.ndarray:
        if self.d_in is None:
            raise RuntimeError(f"{self.name}: transform called before fit/load")
        x_new = check_vectors(
            x_new, name=f"{self.name} transform: new-model vectors", dim=self.d_in
        )
        return np.ascontiguousarray(self._transform(x_new), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "hparams": self.hparams(),
            "d_in": self.d_in,
            "d_out": self.d_out,
            "n_params": self.n_params,
            "fit_seconds": self.fit_seconds,
            "fit_info": self.fit_info,
        }

    def save(self, directory: str | Path) -> Path:
        """Write weights.npz, then adapter.json (which `load_adapter` reads first), each whole or
        not at all (drift.core.files), after removing what a killed save left in `directory`."""
        directory = Path(directory)
        clean_stale(directory)
        arrays = {k: np.asarray(v) for k, v in self.params().items()}
        atomic_savez(directory / "weights.npz", arrays)
        meta = json.dumps(self.describe(), indent=2)
        atomic_write(directory / "adapter.json", lambda tmp: tmp.write_text(meta))
        return directory


def load_adapter(directory: str | Path) -> Adapter:
    """Rebuild an adapter saved with `Adapter.save` (no pickle involved)."""
    directory = Path(directory)
    # Imported here, not at the top: drift.adapters imports this module, and building through
    # it registers every adapter module, so a fresh process can load any saved kind.
    from drift.adapters import build_adapter

    meta = json.loads((directory / "adapter.json").read_text())
    adapter = build_adapter(meta["kind"], **meta["hparams"])
    with np.load(directory / "weights.npz", allow_pickle=False) as npz:
        adapter.set_params({k: npz[k] for k in npz.files})
    adapter.d_in, adapter.d_out = meta["d_in"], meta["d_out"]
    adapter.fit_seconds, adapter.fit_info = meta["fit_seconds"], meta.get("fit_info", {})
    return adapter

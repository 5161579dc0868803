"""Components by name: one registry each for adapters, encoder types and dataset types.

A component registers itself where it is defined, with a decorator:

    @ADAPTERS.register("procrustes")
    class Procrustes(MapAdapter): ...

A registry knows the built-in names and the module that registers each, and imports that module
only when the name is first looked up, so that, e.g., a synthetic run never imports torch or mteb.
A user's own components register the same way from their own module; naming that module in the
run config's `plugins` list imports it before the run (docs/extending.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from drift.core.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named components of one kind.

    Args:
        noun, plural: what a name is, for errors ("unknown adapter 'x'; known adapters: ...").
        builtins: built-in name -> the module whose import registers it, in the order that
            `items` lists them (the order reports show them in).
    """

    def __init__(self, noun: str, plural: str, builtins: Mapping[str, str]) -> None:
        self.noun, self.plural = noun, plural
        self.builtins = dict(builtins)
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding a class or function under `name`.

        Raises ConfigError when `name` is taken by a component of another module (re-importing
        the same module replaces its own entry).
        """

        def wrap(component: T) -> T:
            taken = self._entries.get(name)
            if taken is not None and _module(taken) != _module(component):
                raise ConfigError(
                    f"{self.noun} {name!r} is registered twice: by {_module(taken)} and by "
                    f"{_module(component)}; rename one"
                )
            self._entries[name] = component
            return component

        return wrap

    def get(self, name: str) -> T:
        """The component registered as `name`, importing its built-in module if need be."""
        if name not in self._entries and name in self.builtins:
            importlib.import_module(self.builtins[name])
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.noun} {name!r}; known {self.plural}: {', '.join(self.names())}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        """Every known name, sorted, without importing anything."""
        return sorted({*self.builtins, *self._entries})

    def items(self) -> list[tuple[str, T]]:
        """(name, component) of every component: the built-ins first, in their order (all of
        their modules imported), then the others in the order they registered."""
        for module in dict.fromkeys(self.builtins.values()):
            importlib.import_module(module)
        order = {name: rank for rank, name in enumerate(self.builtins)}
        ranked = sorted(self._entries, key=lambda name: order.get(name, len(order)))
        return [(name, self._entries[name]) for name in ranked]


def import_plugins(modules: Iterable[str]) -> None:
    """Import the modules a run config's `plugins` list names, so that their components
    register before the run looks them up."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            raise ConfigError(
                f"plugins: cannot import {module!r} ({err}); a plugin is a module name that "
                "Python can import (on sys.path or PYTHONPATH), e.g. my_package.my_adapters"
            ) from err


def _module(component: object) -> str:
    return str(getattr(component, "__module__", "?"))

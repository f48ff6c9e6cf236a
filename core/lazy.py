"""Lazy package exports: a layer package names its public API without importing the whole layer.

Every forgeml process loads the plugins, and the plugins' settings live in the layer packages
(``forgeml.tracking.settings``...). With eager ``__init__`` imports, reading one settings dataclass
would import every layer in full; with :func:`lazy_exports` a name loads from its module on first use.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any


class LazyPackage(ModuleType):
    """A package module whose exported names win over same-named submodules, as with eager imports.

    The import system binds each loaded submodule on its package (``forgeml.pipelines.triggers``); an
    eager ``from .triggers import triggers`` rebound the name to the function afterwards. Here the
    binding is redirected, so ``from forgeml.pipelines import triggers`` is the function whatever was
    imported first.
    """

    _lazy_sources: dict[str, str]

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, ModuleType) and value.__name__ == f"{self.__name__}.{name}":
            bound = self.__dict__.get(name)
            if bound is not None and not isinstance(bound, ModuleType):
                return
            source = self.__dict__.get("_lazy_sources", {}).get(name)
            if source is not None:
                if source != value.__name__:
                    return
                value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]) -> tuple[
        list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """Make package load its exports on first use; return its ``__all__``, ``__getattr__`` and ``__dir__``.

    exports maps a module (absolute, or relative to the package like ``".api"``) to the names it provides.
    """
    sources: dict[str, str] = {}
    for module, names in exports.items():
        absolute = package + module if module.startswith(".") else module
        for name in names:
            sources[name] = absolute
    module_object = sys.modules[package]
    module_object.__class__ = LazyPackage
    module_object._lazy_sources = sources

    def __getattr__(name: str) -> Any:
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        # bound on the package: the next access is a plain attribute lookup
        setattr(module_object, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(module_object), *sources})

    return list(sources), __getattr__, __dir__

"""Providers whose plugin code fails as one line naming the plugin, not as a bare traceback from inside it.

A workspace hands out executors, stores and notifiers wrapped in :class:`Guarded`: each public method
call that raises anything but a :class:`~forgeml.errors.ForgeError` (which already speaks to the user)
is re-raised as a :class:`~forgeml.errors.PluginError` saying which provider of which plugin failed,
with the original exception chained for debugging. Attributes and everything else pass through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from forgeml.errors import ForgeError, PluginError


class Guarded:
    """A provider whose public methods name their plugin when they raise something other than a ForgeError."""

    __slots__ = ("_forgeml_inner", "_forgeml_label", "_forgeml_methods")

    def __init__(self, inner: Any, label: str):
        object.__setattr__(self, "_forgeml_inner", inner)
        object.__setattr__(self, "_forgeml_label", label)
        object.__setattr__(self, "_forgeml_methods", {})

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(store, ThePluginsClass) holds for the guarded provider too
        return type(self._forgeml_inner)

    @property
    def wrapped(self) -> Any:
        """The provider object the plugin's factory returned."""
        return self._forgeml_inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_forgeml_"):  # not set yet
            raise AttributeError(name)
        methods = self._forgeml_methods
        found = methods.get(name)
        if found is not None:
            return found
        value = getattr(self._forgeml_inner, name)
        if name.startswith("_") or not callable(value) or isinstance(value, type):
            return value
        methods[name] = found = _named(value, f"{self._forgeml_label} failed in {name}()")
        return found

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_forgeml_"):
            object.__setattr__(self, name, value)
            return
        setattr(self._forgeml_inner, name, value)
        self._forgeml_methods.pop(name, None)

    def __reduce__(self) -> tuple[Any, ...]:
        return Guarded, (self._forgeml_inner, self._forgeml_label)

    def __repr__(self) -> str:
        return f"Guarded({self._forgeml_inner!r})"


def _named(method: Callable[..., Any], what: str) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except ForgeError:
            raise
        except Exception as e:  # a plugin's bug reaches the user as one line naming the plugin
            raise PluginError(f"{what}: {type(e).__name__}: {e}") from e
    return call


def unwrap(provider: Any) -> Any:
    """Return the plugin's own object behind a guarded provider (the provider itself otherwise)."""
    return provider.wrapped if isinstance(provider, Guarded) else provider

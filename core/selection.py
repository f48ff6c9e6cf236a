"""Choosing a provider from a plugins.toml table, with errors that say what went wrong.

Used for every table that names a provider: the layer sections (``[storage.online]``), the named
tables (``[compute.targets.NAME]``), notifiers (``[monitoring.notifiers.NAME]``) and gates
(``[registry.models.NAME]`` gates). A name a disabled plugin would offer is reported as disabled,
and a key another provider of the layer takes is reported as that plugin's leftover.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forgeml.config import build_settings
from forgeml.errors import ConfigError

if TYPE_CHECKING:
    from forgeml.plugin_manager import PluginHost, Provider


def configure(host: PluginHost, layer: str, name: str, values: Mapping[str, Any], where: str) -> tuple[Provider, Any]:
    """Return the provider ``name`` of a layer and its settings validated from ``values``."""
    from forgeml.layers import LAYER

    provider = choose(host, layer, name, where)
    own = {f.name for f in fields(provider.settings)} if provider.settings else set()
    for key in values:
        if key in own:
            continue
        owner = leftover_owner(host, layer, key, name)
        if owner is not None:
            raise ConfigError(f"{where}: key {key!r} belongs to {LAYER[layer].noun} {owner!r}, not {name!r} (left over "
                              f"from an earlier choice?); remove it, or rewrite the table with "
                              f"`forgeml config use {layer} {name}`")
        if provider.settings is None:
            raise ConfigError(f"{where}: unknown key {key!r}; plugin {name!r} takes no settings")
    settings = build_settings(provider.settings, values, where) if provider.settings else None
    return provider, settings


def choose(host: PluginHost, layer: str, name: str, where: str) -> Provider:
    """Return a layer's provider by name; a name only a disabled plugin offers is reported as disabled."""
    from forgeml.layers import LAYER

    if name not in host.providers(layer):
        owner = disabled_offering(host, layer, name)
        if owner is not None:
            raise ConfigError(f"{where}: {LAYER[layer].noun} {name!r} comes from plugin {owner!r}, which is disabled "
                              f"([plugins] disabled); enable it or choose another plugin")
    return host.provider(layer, name, f"{where} plugin")


def disabled_sections(host: PluginHost) -> set[str]:
    """Return the plain settings sections that disabled plugins declare (left in plugins.toml, ignored)."""
    found: list[str] = []
    for module in _disabled_modules(host):
        hook = getattr(module, "forgeml_register_settings", None)
        if hook is not None:
            try:
                hook(register=_collector(found))
            except Exception:  # noqa: BLE001 - a broken disabled plugin declares nothing
                continue
    return set(found)


def _disabled_modules(host: PluginHost) -> list[Any]:
    """Import the disabled entry-point plugins' modules (never registering them); skip those that fail."""
    from forgeml.installed import entry_points
    from forgeml.plugin_manager import ENTRY_POINT_GROUP

    blocked = {info.name for info in host.infos if not info.enabled and not info.error}
    modules = []
    for ep in entry_points(ENTRY_POINT_GROUP):
        if ep.name in blocked:
            try:
                modules.append((ep.name, ep.load()))
            except Exception:  # noqa: BLE001 - a plugin that cannot even be imported offers nothing to name
                continue
    return [m for _, m in modules]


def leftover_owner(host: PluginHost, layer: str, key: str, chosen: str) -> str | None:
    """Return the other provider of the layer whose settings have ``key``, if one has."""
    for other, provider in sorted(host.providers(layer).items()):
        if other != chosen and provider.settings and key in {f.name for f in fields(provider.settings)}:
            return other
    return None


def disabled_offering(host: PluginHost, layer: str, name: str) -> str | None:
    """Return the disabled plugin that would register ``name`` for the layer, if one would."""
    from forgeml.installed import entry_points
    from forgeml.layers import LAYER
    from forgeml.plugin_manager import ENTRY_POINT_GROUP

    blocked = {info.name for info in host.infos if not info.enabled and not info.error}
    for ep in entry_points(ENTRY_POINT_GROUP):
        if ep.name not in blocked:
            continue
        # only on error paths: a disabled plugin is imported to learn what it offers, never registered
        offered: list[str] = []
        try:
            hook = getattr(ep.load(), LAYER[layer].hook, None)
            if hook is not None:
                hook(register=_collector(offered))
        except Exception:  # noqa: BLE001 - a plugin that cannot even be imported offers nothing to name
            continue
        if name in offered:
            return ep.name
    return None


def _collector(names: list[str]) -> Any:
    """A register callback that only records the names registered."""
    def register(name: str, *args: Any, **kwargs: Any) -> None:
        names.append(name)

    return register


def documented_defaults(provider: Provider) -> dict[str, Any]:
    """Return a provider's settings as plugins.toml would hold them by default (unset optional ones left out)."""
    out: dict[str, Any] = {}
    for f in fields(provider.settings) if provider.settings else ():
        value = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        if value is not None:
            out[f.name] = value
    return out


def use_plugin(root: Path, choice: str, plugin: str) -> tuple[str, list[str]]:
    """Rewrite the plugins.toml table choosing a layer's provider for ``plugin``, with its documented defaults.

    ``choice`` is a section (``storage.online``) or a layer (``online_stores``). Keys of the previous
    plugin go; comments and every other table stay. Returns the section and the settings that have
    no default and must still be set.
    """
    import tomlkit

    from forgeml.config import CONFIG_FILE, PluginsSettings, read_toml
    from forgeml.errors import unknown_name
    from forgeml.layers import SECTIONS
    from forgeml.plugin_manager import make_plugin_manager

    by_layer = {layer.name: section for section, layer in SECTIONS.items()}
    section = choice if choice in SECTIONS else by_layer.get(choice)
    if section is None:
        raise unknown_name("layer", choice, [*SECTIONS, *by_layer], "config use")
    path = root / CONFIG_FILE
    raw = read_toml(path) if path.exists() else {}
    plugins = build_settings(PluginsSettings, raw.get("plugins", {}), f"{path}: [plugins]")
    host = make_plugin_manager(plugins.disabled, plugins.local, base_dir=root)
    layer = SECTIONS[section].name
    provider = choose(host, layer, plugin, f"config use {section}")
    table = tomlkit.table()
    table.add("plugin", plugin)
    missing = []
    for f in fields(provider.settings) if provider.settings else ():
        if f.metadata.get("doc"):
            table.add(tomlkit.comment(f.metadata["doc"]))
        value = documented_defaults(provider).get(f.name)
        if value is None:
            table.add(tomlkit.comment(f"{f.name} ="))
            if f.default is MISSING and f.default_factory is MISSING:
                missing.append(f.name)
        else:
            table.add(f.name, value)
    doc = tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()
    parent: Any = doc
    *outer, last = section.split(".")
    for part in outer:
        if part not in parent:
            parent[part] = tomlkit.table(is_super_table=True)
        parent = parent[part]
    parent[last] = table
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(tomlkit.dumps(doc))
    tmp.replace(path)
    return section, missing


"""A workspace: a folder with plugins.toml and .forgeml/, found by walking up like git."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from forgeml.config import (
    CONFIG_FILE,
    PluginsSettings,
    build_settings,
    read_toml,
    render_table,
)
from forgeml.errors import ConfigError, WorkspaceError, did_you_mean
from forgeml.layers import LAYER, NAMED_SECTIONS, SECTIONS, Layer
from forgeml.plugin_manager import PluginHost, Provider, make_plugin_manager
from forgeml.selection import configure, disabled_sections

if TYPE_CHECKING:
    from forgeml.contracts import (
        ArtifactStore,
        EventStream,
        Executor,
        GpuInventory,
        MetadataStore,
        OfflineStore,
        OnlineStore,
        VectorStore,
    )

DOT_DIR = ".forgeml"




class Config:
    """A validated plugins.toml: plain sections, provider choices and compute targets."""

    def __init__(self, raw: Mapping[str, Any], path: Path | None, host: PluginHost):
        self.raw = dict(raw)
        self.path = path
        self.host = host
        self._where = str(path) if path else CONFIG_FILE
        self.plugins = build_settings(PluginsSettings, raw.get("plugins", {}), f"{self._where}: [plugins]")
        self._sections: dict[str, Any] = {}
        self._ignored: set[str] | None = None
        self.validate()

    # ------------------------------------------------------------ lookups
    def secret_variables(self) -> set[str]:
        """Return the environment variables plugins.toml reads secrets from (``{ env = "VAR" }``)."""
        found: set[str] = set()

        def walk(node: Any) -> None:
            if isinstance(node, Mapping):
                if set(node) == {"env"} and isinstance(node["env"], str):
                    found.add(node["env"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(self.raw)
        return found

    def _table(self, dotted: str) -> Mapping[str, Any] | None:
        node: Any = self.raw
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        if not isinstance(node, Mapping):
            raise ConfigError(f"{self._where}: [{dotted}] must be a table")
        return node

    def _known(self) -> set[str]:
        if self._ignored is None:  # sections of disabled plugins may stay in the file; they are not read
            self._ignored = disabled_sections(self.host)
        return {"plugins", *SECTIONS, *NAMED_SECTIONS, *self.host.settings_sections(), *self._ignored}

    def _own_keys(self, dotted: str, table: Mapping[str, Any]) -> dict[str, Any]:
        known = self._known()
        prefixes = {".".join(k.split(".")[:i]) for k in known for i in range(1, k.count(".") + 1)}
        return {k: v for k, v in table.items() if f"{dotted}.{k}" not in known | prefixes}

    def section(self, name: str) -> Any:
        """Return a plain section's validated settings (defaults where plugins.toml is silent)."""
        if name not in self._sections:
            sections = self.host.settings_sections()
            if name not in sections:
                raise ConfigError(f"no settings section [{name}]{did_you_mean(name, sections)}")
            cls = sections[name][0]
            table = self._table(name) or {}
            instance = build_settings(cls, self._own_keys(name, table), f"{self._where}: [{name}]")
            check = getattr(instance, "check_providers", None)
            if callable(check):  # a section naming providers inside it (notifiers, gates) checks them now
                check(self.host, f"{self._where}: ")
            self._sections[name] = instance
        return self._sections[name]

    def _provider_from(self, dotted: str, layer: str, table: Mapping[str, Any], default: str | None) -> tuple[Provider, Any]:
        where = f"{self._where}: [{dotted}]"
        name = table.get("plugin", default)
        if not isinstance(name, str):
            raise ConfigError(f"{where}: 'plugin' must name a plugin")
        return configure(self.host, layer, name, {k: v for k, v in table.items() if k != "plugin"}, where)

    def provider(self, section: str) -> tuple[Provider, Any]:
        """Return the provider a provider section selects, with its validated settings."""
        layer = SECTIONS[section]
        return self._provider_from(section, layer.name, self._table(section) or {}, layer.default)

    def named(self, layer: Layer) -> dict[str, tuple[Provider, Any]]:
        """Return the providers a named section's ``[SECTION.NAME]`` tables choose, by name.

        A layer's default plugin, while it is registered, always has a table named after it (the
        ``local`` compute target); disabling that plugin removes it rather than breaking the workspace.
        """
        section = layer.section or ""
        tables = dict(self._table(section) or {})
        if layer.default and layer.default in self.host.providers(layer.name):
            tables.setdefault(layer.default, {"plugin": layer.default})
        out = {}
        for name, table in tables.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"{self._where}: [{section}.{name}] must be a table")
            out[name] = self._provider_from(f"{section}.{name}", layer.name, table, None)
        return out

    def targets(self) -> dict[str, tuple[Provider, Any]]:
        """Return every compute target by name (the default target exists while its plugin is enabled)."""
        return self.named(LAYER["executors"])

    def streams(self) -> dict[str, tuple[Provider, Any]]:
        """Return every event stream declared as a ``[streams.NAME]`` table, by name."""
        return self.named(LAYER["stream_sources"])

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every table and key now, so a typo fails at start-up with a did-you-mean."""
        known = self._known()
        prefixes = {".".join(k.split(".")[:i]) for k in known for i in range(1, k.count(".") + 1)}

        def walk(dotted: str, table: Mapping[str, Any]) -> None:
            for key, value in table.items():
                path = f"{dotted}.{key}" if dotted else key
                if path in known or path in prefixes:
                    if not isinstance(value, Mapping):
                        raise ConfigError(f"{self._where}: [{path}] must be a table, got {value!r}")
                    if path in prefixes and path not in known:
                        walk(path, value)
                    elif path in self.host.settings_sections():
                        walk_sub(path, value)
                    continue
                if dotted and dotted in known:
                    continue  # keys of a known section are checked by its settings class
                choices = sorted({p.split(".")[-1] for p in known | prefixes if "." in p and p.rsplit(".", 1)[0] == dotted}
                                 if dotted else {p.split(".")[0] for p in known})
                label = f"[{path}]" if isinstance(value, Mapping) or not dotted else f"key {path!r}"
                raise ConfigError(
                    f"{self._where}: unknown section {label}{did_you_mean(key, choices)}; "
                    f"choices{' under [' + dotted + ']' if dotted else ''}: {', '.join(choices)}"
                )

        def walk_sub(path: str, value: Mapping[str, Any]) -> None:
            for key, sub in value.items():
                if f"{path}.{key}" in known | prefixes:
                    walk(path, {key: sub})

        walk("", self.raw)
        for name in self.host.settings_sections():
            if self._table(name) is not None:
                self.section(name)
        for name in SECTIONS:
            if self._table(name) is not None:
                self.provider(name)
        for name, layer in NAMED_SECTIONS.items():
            if self._table(name) is not None:
                self.named(layer)

    # ------------------------------------------------------------ the documented default
    def render_default(self) -> str:
        """Render the commented default plugins.toml from every registered section and provider."""
        out = [
            "# forgeml workspace configuration.",
            "# Every section and setting is shown with its default; edit, or delete what you do not change.",
            "# Secrets are never written here: give them as { env = \"VARIABLE\" }.",
            "",
            render_table("plugins", "Which plugins load.", PluginsSettings()),
        ]
        for dotted, layer in SECTIONS.items():
            found = self.host.providers(layer.name)
            if layer.default in found:
                doc = f"{layer.doc}\n# plugin: one of {', '.join(sorted(found))}."
                out.append(_render_provider(dotted, doc, found[layer.default]))
        for dotted, layer in NAMED_SECTIONS.items():
            found = self.host.providers(layer.name)
            if layer.default in found:
                doc = (f"{layer.doc.rstrip('.')}; this one, {layer.default!r}, always exists.\n"
                       f"# plugin: one of {', '.join(sorted(found))}.")
                out.append(_render_provider(f"{dotted}.{layer.default}", doc, found[layer.default]))
        for name, (cls, _plugin) in sorted(self.host.settings_sections().items()):
            out.append(render_table(name, (cls.__doc__ or "").strip().splitlines()[0], cls()))
        return "\n".join(out)


@dataclass
class _Empty:
    """A provider that takes no settings."""


def _render_provider(header: str, doc: str, provider: Provider) -> str:
    """Render a provider's table with its documented defaults."""
    instance = provider.settings() if provider.settings else _Empty()
    return render_table(header, doc, instance, extra={"plugin": provider.name})


def _field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


class Workspace:
    """An open workspace: its configuration, plugins and lazily opened stores."""

    def __init__(self, root: Path, host: PluginHost | None = None, raw: Mapping[str, Any] | None = None):
        self.root = Path(root).resolve()
        self.dot = self.root / DOT_DIR
        config_path = self.root / CONFIG_FILE
        if raw is None:
            raw = read_toml(config_path) if config_path.exists() else {}
        if host is None:
            plugins = build_settings(PluginsSettings, raw.get("plugins", {}), f"{config_path}: [plugins]")
            host = make_plugin_manager(plugins.disabled, plugins.local, base_dir=self.root)
        self.plugins = host
        self.config = Config(raw, config_path if config_path.exists() else None, host)
        self._lock = threading.Lock()
        self._opened: dict[str, Any] = {}
        self._before_close: list[Callable[[], Any]] = []

    # ------------------------------------------------------------ finding and creating
    @classmethod
    def find(cls, start: str | Path | None = None) -> Workspace:
        """Open the workspace named by FORGEML_HOME, or the nearest one above start (default: cwd)."""
        return cls(find_root(start))

    @classmethod
    def init(cls, root: str | Path) -> Workspace:
        """Create (or reopen) a workspace: write the documented plugins.toml and .forgeml/."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / DOT_DIR).mkdir(exist_ok=True)
        config_path = root / CONFIG_FILE
        if not config_path.exists():
            config_path.write_text(default_config_text())
        ws = cls(root)
        ws.metadata  # noqa: B018 - opening runs the migrations now, not on first use
        return ws

    # ------------------------------------------------------------ stores
    def open_layer(self, layer: str) -> Any:
        """Return the provider of a layer chosen by its plugins.toml section, opened once per workspace."""
        with self._lock:
            if layer not in self._opened:
                section = LAYER[layer].section
                if section is None or section not in SECTIONS:
                    raise ConfigError(f"layer {layer!r} has no plugins.toml section choosing one provider")
                provider, settings = self.config.provider(section)
                self._opened[layer] = provider.build(settings, self)
            return self._opened[layer]

    def open_named(self, layer: str, name: str) -> Any:
        """Return the provider a ``[SECTION.NAME]`` table of a named layer chooses, opened once per workspace."""
        with self._lock:
            key = f"{layer}:{name}"
            if key not in self._opened:
                spec = LAYER[layer]
                found = self.config.named(spec)
                if name not in found:
                    from forgeml.errors import unknown_name

                    raise unknown_name(spec.entry or spec.noun, name, found,
                                       f"add a [{spec.section}.{name}] table to plugins.toml")
                provider, settings = found[name]
                self._opened[key] = provider.build(settings, self)
            return self._opened[key]

    @property
    def metadata(self) -> MetadataStore:
        """The metadata store (contract: MetadataStore)."""
        return cast("MetadataStore", self.open_layer("metadata_stores"))

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store (contract: ArtifactStore)."""
        return cast("ArtifactStore", self.open_layer("artifact_stores"))

    @property
    def offline_store(self) -> OfflineStore:
        """The offline feature store (contract: OfflineStore)."""
        return cast("OfflineStore", self.open_layer("offline_stores"))

    @property
    def online_store(self) -> OnlineStore:
        """The online feature store (contract: OnlineStore)."""
        return cast("OnlineStore", self.open_layer("online_stores"))

    @property
    def vector_store(self) -> VectorStore:
        """The vector store (contract: VectorStore)."""
        return cast("VectorStore", self.open_layer("vector_stores"))

    @property
    def gpu_inventory(self) -> GpuInventory:
        """The GPU inventory (contract: GpuInventory)."""
        return cast("GpuInventory", self.open_layer("gpu_inventories"))

    def encryption_keyring(self) -> Any:
        """Return the keyring that encrypts artifacts and prediction logs, or None when [privacy] leaves it off."""
        privacy = self.config.section("privacy")
        if not privacy.encrypt_at_rest:
            return None
        key = f"keyring:{privacy.encryption_keys_env}"
        if key not in self._opened:
            from forgeml.pii.encryption import Keyring

            # no lock: the artifact store's factory asks for the keyring while open_layer holds it
            self._opened.setdefault(key, Keyring.from_env(privacy.encryption_keys_env))
        return self._opened[key]

    def metadata_for(self, migration_set: str, migrations: Any) -> Any:
        """Return the metadata store with a layer's migration set applied (once per process)."""
        key = f"migrated:{migration_set}"
        if key not in self._opened:
            store = self.metadata
            store.migrate(migration_set, migrations)
            with self._lock:
                self._opened[key] = store
        return self._opened[key]

    def executor(self, target: str) -> Executor:
        """Return the executor for a compute target by name."""
        return cast("Executor", self.open_named("executors", target))

    def stream(self, name: str) -> EventStream:
        """Return the event stream declared as ``[streams.NAME]`` (contract: EventStream)."""
        return cast("EventStream", self.open_named("stream_sources", name))

    def resolve(self, path: str | Path) -> Path:
        """Resolve a path from plugins.toml relative to the workspace root."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    def before_close(self, flush: Callable[[], Any]) -> None:
        """Have close() call ``flush`` first (a service's buffered writes reach the stores before they close)."""
        self._before_close.append(flush)

    def flush_pending(self) -> None:
        """Write what services buffered for this workspace (the callbacks given to before_close)."""
        flushes, self._before_close = self._before_close, []
        for flush in flushes:
            flush()

    def close(self) -> None:
        """Write what services buffered, then close every store this process opened."""
        try:
            self.flush_pending()
        finally:
            self._close_stores()

    def _close_stores(self) -> None:
        with self._lock:
            for key, store in self._opened.items():
                close = None if key.startswith("migrated:") else getattr(store, "close", None)
                if close is not None:
                    close()
            self._opened.clear()


_current: Workspace | None = None
_current_lock = threading.Lock()


def current() -> Workspace:
    """Return this process's workspace (FORGEML_HOME or the nearest above cwd), opened once."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Workspace.find()
        return _current


def set_current(ws: Workspace | None) -> None:
    """Make ws the workspace the module-level API uses (None forgets it)."""
    global _current
    with _current_lock:
        _current = ws


def find_root(start: str | Path | None = None) -> Path:
    """Return the folder of the workspace FORGEML_HOME names, or of the nearest one above start, unopened."""
    home = os.environ.get("FORGEML_HOME")
    if home:
        root = Path(home)
        if not (root / CONFIG_FILE).exists() and not (root / DOT_DIR).is_dir():
            raise WorkspaceError(f"FORGEML_HOME={home} is not a forgeml workspace; run `forgeml init {home}`")
        return root
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DOT_DIR).is_dir():
            return folder
    raise WorkspaceError(f"no forgeml workspace in {here} or any parent; run `forgeml init` to create one")


def default_config_text() -> str:
    """Return the documented default plugins.toml that `forgeml init` writes."""
    host = make_plugin_manager()
    return Config({}, None, host).render_default()

"""The plugin manager: entry points, local plugins, blocking, and a typed facade over every hook."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from forgeml import hookspecs
from forgeml.errors import ConfigError, ForgeError, PluginError, unknown_name
from forgeml.guarded import Guarded
from forgeml.installed import entry_points
from forgeml.layers import CORE, LAYER, core_sections

if TYPE_CHECKING:
    import click

    from forgeml.datasets.versions import DatasetVersion
    from forgeml.hookspecs import ProviderFactory
    from forgeml.jobs.queue import Job
    from forgeml.monitoring.alerts import Alert
    from forgeml.registry.models import ModelVersion
    from forgeml.tracking.records import Run
    from forgeml.workspace import Workspace

ENTRY_POINT_GROUP = "forgeml"
ESSENTIAL = frozenset({"embedded"})



@dataclass
class PluginInfo:
    """What `forgeml plugins list` shows about one plugin."""

    name: str
    version: str
    origin: str  # built-in, installed, local
    enabled: bool
    error: str = ""
    hooks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Provider:
    """One implementation a plugin registered for a layer."""

    layer: str
    name: str
    factory: ProviderFactory
    settings: type | None
    description: str
    plugin: str

    @property
    def label(self) -> str:
        """How errors name this provider: its layer, its name and the plugin that registered it."""
        noun = LAYER[self.layer].noun if self.layer in LAYER else self.layer
        return f"{noun} {self.name!r} (plugin {self.plugin!r})"

    def build(self, settings: Any, workspace: Any) -> Any:
        """Call the plugin's factory; a factory that raises or returns no implementation of the contract is named."""
        try:
            made = self.factory(settings, workspace)
        except ForgeError as e:
            try:
                named = type(e)(f"{self.label} could not start: {e}")
            except TypeError:  # a subclass with other constructor arguments
                named = PluginError(f"{self.label} could not start: {e}")
            raise named from e
        except Exception as e:  # a plugin's bug must surface as one line naming the plugin
            raise PluginError(f"{self.label} could not start: {type(e).__name__}: {e}") from e
        layer = LAYER.get(self.layer)
        contract = layer.contract if layer else None
        if contract is not None and not isinstance(made, contract):
            wanted = {*vars(contract).get("__annotations__", {}), *(m for m in vars(contract) if not m.startswith("_"))}
            missing = sorted(m for m in wanted if not hasattr(made, m))
            raise PluginError(f"{self.label}: its factory returned {type(made).__name__}, which is not a {contract.__name__}"
                              f"{' (missing ' + ', '.join(missing) + ')' if missing else ''}")
        if layer is not None and layer.guarded:
            return Guarded(made, self.label)
        return made


class PluginHost:
    """A loaded plugin manager plus the typed facade core services call instead of ``pm.hook``."""

    def __init__(self, pm: pluggy.PluginManager, infos: list[PluginInfo]):
        self.pm = pm
        self.infos = infos
        self._providers: dict[str, dict[str, Provider]] = {}
        self._sections: dict[str, tuple[type, str]] | None = None

    # ---------------------------------------------------------------- providers
    def providers(self, layer: str) -> dict[str, Provider]:
        """Return every provider registered for a layer, by name."""
        if layer not in LAYER:
            raise unknown_name("provider layer", layer, LAYER)
        if layer not in self._providers:
            found: dict[str, Provider] = {}
            caller = getattr(self.pm.hook, LAYER[layer].hook)
            for impl in reversed(caller.get_hookimpls()):
                plugin_name = impl.plugin_name

                def register(name: str, factory: ProviderFactory, settings: type | None = None,
                             description: str = "", _plugin: str = plugin_name) -> None:
                    if name in found:
                        raise PluginError(
                            f"plugins {found[name].plugin!r} and {_plugin!r} both register {layer} {name!r}"
                        )
                    found[name] = Provider(layer, name, factory, settings, description, _plugin)

                impl.function(register=register)
            self._providers[layer] = found
        return self._providers[layer]

    def provider(self, layer: str, name: str, where: str = "") -> Provider:
        """Return one provider by name or raise a did-you-mean error listing the choices."""
        found = self.providers(layer)
        if name not in found:
            err = unknown_name(LAYER[layer].noun, name, found, where)
            raise ConfigError(str(err))
        return found[name]

    def settings_sections(self) -> dict[str, tuple[type, str]]:
        """Return the plain settings sections core and plugins declared: section -> (dataclass, declarer)."""
        if self._sections is None:
            sections: dict[str, tuple[type, str]] = {name: (cls, CORE) for name, cls in core_sections().items()}
            for impl in reversed(self.pm.hook.forgeml_register_settings.get_hookimpls()):
                def register(section: str, settings: type, _plugin: str = impl.plugin_name) -> None:
                    if section in sections:
                        raise PluginError(f"plugins {sections[section][1]!r} and {_plugin!r} both declare [{section}]")
                    sections[section] = (settings, _plugin)

                impl.function(register=register)
            self._sections = sections
        return self._sections

    # ---------------------------------------------------------------- people-facing
    def register_commands(self, cli: click.Group) -> None:
        """Let plugins add commands to the CLI."""
        self.pm.hook.forgeml_register_commands(cli=cli)

    def screens(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Return the TUI screens plugins contribute as (key, title, factory)."""
        found: list[tuple[str, str, Callable[[], object]]] = []

        def register(key: str, title: str, factory: Callable[[], object]) -> None:
            found.append((key, title, factory))

        self.pm.hook.forgeml_register_screens(register=register)
        return found

    def erasers(self) -> dict[str, tuple[Callable[[Workspace], object], str]]:
        """Return the erasers plugins offer: name -> (factory, plugin)."""
        found: dict[str, tuple[Callable[[Workspace], object], str]] = {}
        for impl in reversed(self.pm.hook.forgeml_register_erasers.get_hookimpls()):
            def register(name: str, factory: Callable[[Workspace], object], _plugin: str = impl.plugin_name) -> None:
                if name in found:
                    raise PluginError(f"plugins {found[name][1]!r} and {_plugin!r} both register eraser {name!r}")
                found[name] = (factory, _plugin)

            impl.function(register=register)
        return found

    # ---------------------------------------------------------------- decisions
    def classify_failure(self, job: Job, exit_code: int | None, log_tail: str) -> str | None:
        """Ask plugins whether a failed attempt is transient or permanent."""
        verdict: str | None = self.pm.hook.forgeml_classify_failure(job=job, exit_code=exit_code, log_tail=log_tail)
        return verdict

    # ---------------------------------------------------------------- events
    def on_job_state_changed(self, job: Job, old_state: str | None, new_state: str, workspace: Workspace) -> None:
        """Announce a committed job state transition."""
        self.pm.hook.forgeml_on_job_state_changed(job=job, old_state=old_state, new_state=new_state,
                                                  workspace=workspace)

    def on_run_finished(self, run: Run, workspace: Workspace) -> None:
        """Announce that a run ended."""
        self.pm.hook.forgeml_on_run_finished(run=run, workspace=workspace)

    def on_model_version_registered(self, model_version: ModelVersion, workspace: Workspace) -> None:
        """Announce a new model version."""
        self.pm.hook.forgeml_on_model_version_registered(model_version=model_version, workspace=workspace)

    def on_model_stage_changed(self, model_version: ModelVersion, old_stage: str | None, new_stage: str, reason: str,
                               workspace: Workspace) -> None:
        """Announce a committed stage transition."""
        self.pm.hook.forgeml_on_model_stage_changed(model_version=model_version, old_stage=old_stage,
                                                    new_stage=new_stage, reason=reason, workspace=workspace)

    def on_alert_fired(self, alert: Alert, workspace: Workspace) -> None:
        """Announce a stored, de-duplicated alert."""
        self.pm.hook.forgeml_on_alert_fired(alert=alert, workspace=workspace)

    def on_upkeep(self, workspace: Workspace, now: float) -> None:
        """Let plugins run the periodic work that is due (called by the scheduler daemon)."""
        self.pm.hook.forgeml_on_upkeep(workspace=workspace, now=now)

    def on_features_materialized(self, view: str, start: str, end: str, rows: int, workspace: Workspace) -> None:
        """Announce a materialization of a feature view."""
        self.pm.hook.forgeml_on_features_materialized(view=view, start=start, end=end, rows=rows,
                                                      workspace=workspace)

    def on_dataset_version_registered(self, dataset_version: DatasetVersion, workspace: Workspace) -> None:
        """Announce a new dataset version."""
        self.pm.hook.forgeml_on_dataset_version_registered(dataset_version=dataset_version, workspace=workspace)

    # ---------------------------------------------------------------- introspection
    def refresh_hooks(self) -> None:
        """Fill each plugin's list of implemented hooks (after registration)."""
        by_name = {info.name: info for info in self.infos}
        for name, plugin in self.pm.list_name_plugin():
            if name in by_name and plugin is not None:
                by_name[name].hooks = sorted(c.name for c in self.pm.get_hookcallers(plugin) or [])


def _load_local(spec: str, base_dir: Path | None) -> tuple[str, ModuleType]:
    """Import a local plugin given as a dotted module path or a .py file path."""
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.exists():
            raise ConfigError(f"plugins.local: file {str(path)!r} does not exist")
        name = f"forgeml_local_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"plugins.local: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return path.stem, module
    return spec, importlib.import_module(spec)


def make_plugin_manager(
    disabled: Iterable[str] = (),
    local: Iterable[str] = (),
    base_dir: Path | None = None,
    extra: Iterable[tuple[str, object]] = (),
    report: Callable[[str], None] | None = None,
) -> PluginHost:
    """Build a plugin manager: block disabled names, load entry points and local plugins, check specs."""
    report = report or (lambda msg: print(msg, file=sys.stderr))
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = list(disabled)
    essential = sorted(ESSENTIAL.intersection(disabled))
    if essential:
        raise ConfigError(f"plugins.disabled: {', '.join(essential)} cannot be disabled (essential plugin)")
    for name in disabled:
        pm.set_blocked(name)
    infos: list[PluginInfo] = []
    seen: set[str] = set()
    for ep in sorted(entry_points(ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        dist = ep.dist
        if dist is None:
            origin, version = "installed", "?"
        else:
            version = dist.version
            origin = "built-in" if dist.name == "forgeml" else "installed"
        if pm.is_blocked(ep.name):
            infos.append(PluginInfo(ep.name, version, origin, enabled=False))
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as e:  # a broken plugin must not take the platform down
            report(f"forgeml: plugin {ep.name!r} failed to load and was skipped: {type(e).__name__}: {e}")
            infos.append(PluginInfo(ep.name, version, origin, enabled=False, error=f"{type(e).__name__}: {e}"))
            continue
        infos.append(PluginInfo(ep.name, version, origin, enabled=True))
    unknown = sorted(set(disabled) - seen)
    for spec in local:
        try:
            name, module = _load_local(spec, base_dir)
            unknown = [u for u in unknown if u != name]
            if name in disabled:
                infos.append(PluginInfo(name, "local", "local", enabled=False))
                continue
            pm.register(module, name=name)
            infos.append(PluginInfo(name, getattr(module, "__version__", "local"), "local", enabled=True))
        except ConfigError:
            raise
        except Exception as e:
            report(f"forgeml: local plugin {spec!r} failed to load and was skipped: {type(e).__name__}: {e}")
            infos.append(PluginInfo(spec, "local", "local", enabled=False, error=f"{type(e).__name__}: {e}"))
    for name, plugin in extra:
        pm.register(plugin, name=name)
        infos.append(PluginInfo(name, getattr(plugin, "__version__", "-"), "local", enabled=True))
    if unknown:
        from forgeml.errors import did_you_mean

        raise ConfigError(
            f"plugins.disabled: no plugin named {unknown[0]!r}{did_you_mean(unknown[0], seen)}; "
            f"installed: {', '.join(sorted(seen))}"
        )
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(f"a plugin implements a hook forgeml does not define: {e}") from e
    host = PluginHost(pm, infos)
    host.refresh_hooks()
    return host

"""Every hook forgeml offers to plugins, documented; plugins write ``from forgeml import hookimpl``.

Three families, by name:

- ``forgeml_register_*`` contribute implementations by calling ``register(...)``;
- ``forgeml_on_*`` are broadcast events, called after the change they announce was persisted;
- the remaining hooks are decisions (``firstresult``): the first non-None answer wins.

A provider ``register`` callback takes ``register(name, factory, settings=None, description="")``:
``name`` is what plugins.toml selects, ``factory(settings, workspace)`` builds the provider from
its validated settings object (an instance of ``settings``, a dataclass declared with
:func:`forgeml.config.setting` fields) and the open :class:`forgeml.workspace.Workspace`.
The provider hooks, one per layer of :data:`forgeml.layers.LAYERS`, are generated from that table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from forgeml.layers import LAYERS, Layer

if TYPE_CHECKING:
    import click

    from forgeml.datasets.versions import DatasetVersion
    from forgeml.jobs.queue import Job
    from forgeml.monitoring.alerts import Alert
    from forgeml.registry.models import ModelVersion
    from forgeml.tracking.records import Run
    from forgeml.workspace import Workspace

PROJECT = "forgeml"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

ProviderFactory = Callable[[Any, "Workspace"], object]
"""Builds a provider from its validated settings (None when it declares none) and the open workspace."""


class RegisterProvider(Protocol):
    """The callback a ``forgeml_register_<layer>`` hook calls once per implementation it offers."""

    def __call__(self, name: str, factory: ProviderFactory, settings: type | None = None,
                 description: str = "") -> None:
        """Offer the provider ``name``, built by ``factory`` from a ``settings`` instance."""


class RegisterSettings(Protocol):
    """The callback of ``forgeml_register_settings``."""

    def __call__(self, section: str, settings: type) -> None:
        """Declare the plain section ``section`` with the settings dataclass ``settings``."""


class RegisterEraser(Protocol):
    """The callback of ``forgeml_register_erasers``."""

    def __call__(self, name: str, factory: Callable[[Workspace], object]) -> None:
        """Add the eraser ``name``, built by ``factory(workspace)`` as a SubjectEraser."""


class RegisterScreen(Protocol):
    """The callback of ``forgeml_register_screens``."""

    def __call__(self, key: str, title: str, factory: Callable[[], object]) -> None:
        """Add a screen opened with ``key``, titled ``title``, built by ``factory()``."""


# ============================================================ configuration
@hookspec
def forgeml_register_settings(register: RegisterSettings) -> None:
    """Declare a plain settings section of plugins.toml.

    Called once when a workspace's configuration is loaded, before it is validated.
    Call ``register(section, settings_cls)`` where ``section`` is a dotted table name such as
    ``"scheduler"`` and ``settings_cls`` is a dataclass whose fields carry defaults and docs.
    Return nothing.
    """


# ============================================================ providers, one hook per layer
def _selection(layer: Layer) -> str:
    if layer.section is None:
        return ""
    if layer.named:
        return f" Each ``[{layer.section}.NAME]`` table names its provider with ``plugin = \"...\"``."
    return f" ``[{layer.section}] plugin`` picks one (default ``{layer.default}``)."


def _provider_hookspec(layer: Layer) -> Callable[[RegisterProvider], None]:
    """Return the documented hook spec through which plugins offer providers of one layer."""

    def spec(register: RegisterProvider) -> None:
        return None

    spec.__name__ = spec.__qualname__ = layer.hook
    spec.__doc__ = (
        f"Offer {layer.offers} (contract: :class:`forgeml.contracts.{layer.contract.__name__}`; "
        f"conformance suite: :class:`forgeml.testing.{layer.suite}`).\n\n"
        f"{layer.called}{_selection(layer)} Call ``register(name, factory, settings=None, description=\"\")``. "
        "Return nothing.\n"
    )
    return hookspec(spec)


for _layer in LAYERS:
    globals()[_layer.hook] = _provider_hookspec(_layer)


# ============================================================ personal data
@hookspec
def forgeml_register_erasers(register: RegisterEraser) -> None:
    """Offer erasers: places outside the stores that keep personal data (logs, snapshots, caches).

    Called when ``forgeml forget`` (or ``forgeml.privacy.forget``) looks for a subject. Call
    ``register(name, factory)`` where ``factory(workspace)`` returns a
    :class:`forgeml.contracts.SubjectEraser`; every registered eraser is asked to find and erase the
    subject, next to the offline, online and vector stores. Return nothing.
    """


# ============================================================ decisions
@hookspec(firstresult=True)
def forgeml_classify_failure(job: Job, exit_code: int | None, log_tail: str) -> str | None:
    """Decide whether a failed job attempt is worth retrying.

    Called by the scheduler when an attempt ends unsuccessfully, with the job, its exit code
    (negative for a signal, None when the process vanished) and the last lines of its log.
    Return ``"transient"`` to retry with backoff, ``"permanent"`` to fail now, or None to let
    other plugins (and finally the built-in policy) decide.
    """


# ============================================================ people-facing extension points
@hookspec
def forgeml_register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``forgeml`` CLI.

    Called when the CLI starts, with the root :class:`click.Group`; call ``cli.add_command(...)``.
    Return nothing.
    """


@hookspec
def forgeml_register_screens(register: RegisterScreen) -> None:
    """Add screens to the terminal UI.

    Called when ``forgeml tui`` starts. Call ``register(key, title, screen_factory)`` where
    ``key`` is the keyboard shortcut and ``screen_factory()`` returns a Textual ``Screen``.
    Return nothing.
    """


# ============================================================ events
@hookspec
def forgeml_on_job_state_changed(job: Job, old_state: str | None, new_state: str, workspace: Workspace) -> None:
    """A job moved between states (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED).

    Called after the transition was committed to the metadata store, with the job record, the
    previous state (None on submission), the new state and the workspace. Return nothing.
    """


@hookspec
def forgeml_on_run_finished(run: Run, workspace: Workspace) -> None:
    """A tracked run ended (FINISHED, FAILED or KILLED).

    Called after the run's end status and last metrics were flushed. Return nothing.
    """


@hookspec
def forgeml_on_model_version_registered(model_version: ModelVersion, workspace: Workspace) -> None:
    """A new model version was registered.

    Called after the version and its artifacts were stored. Return nothing.
    """


@hookspec
def forgeml_on_model_stage_changed(
    model_version: ModelVersion, old_stage: str | None, new_stage: str, reason: str, workspace: Workspace
) -> None:
    """A model version moved between stages (STAGING, CANDIDATE, PRODUCTION, ARCHIVED).

    Called after the transition and its audit record were committed; serving hot-swaps on it.
    Return nothing.
    """


@hookspec
def forgeml_on_alert_fired(alert: Alert, workspace: Workspace) -> None:
    """An alert rule fired (after de-duplication) and the alert was stored.

    Notifiers and retraining triggers listen here. Return nothing.
    """


@hookspec
def forgeml_on_features_materialized(view: str, start: str, end: str, rows: int, workspace: Workspace) -> None:
    """A feature view was materialized into the online store for [start, end).

    Called after the watermark was advanced, with ``start`` and ``end`` as ISO 8601 UTC times and
    the number of rows written. Return nothing.
    """


@hookspec
def forgeml_on_dataset_version_registered(dataset_version: DatasetVersion, workspace: Workspace) -> None:
    """A new dataset version was registered; new-data triggers listen here.

    Called after the version was committed. Return nothing.
    """


@hookspec
def forgeml_on_upkeep(workspace: Workspace, now: float) -> None:
    """The scheduler daemon's periodic upkeep: called about once a minute while it runs.

    Run periodic work that is due (retention, compaction) and decide cheaply when it is not; keep
    your own record of the last run. Calls run in a thread beside the scheduling loop, one pass at
    a time; a ForgeError is logged in one line and the scheduler carries on. Return nothing.
    """

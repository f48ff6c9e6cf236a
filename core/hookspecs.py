"""Every hook forgeml offers to plugins, documented; plugins write ``from forgeml import hookimpl``.

Three families, by name:

- ``forgeml_register_*`` contribute implementations by calling ``register(...)``;
- ``forgeml_on_*`` are broadcast events, called after the change they announce was persisted;
- the remaining hooks are decisions (``firstresult``): the first non-None answer wins.

A provider ``register`` callback takes ``register(name, factory, settings=None, description="")``:
``name`` is what plugins.toml selects, ``factory(settings, workspace)`` builds the provider from
its validated settings object (an instance of ``settings``, a dataclass declared with
:func:`forgeml.config.setting` fields) and the open :class:`forgeml.workspace.Workspace`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT = "forgeml"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]


# ============================================================ configuration
@hookspec
def forgeml_register_settings(register: Register) -> None:
    """Declare a plain settings section of plugins.toml.

    Called once when a workspace's configuration is loaded, before it is validated.
    Call ``register(section, settings_cls)`` where ``section`` is a dotted table name such as
    ``"scheduler"`` and ``settings_cls`` is a dataclass whose fields carry defaults and docs.
    Return nothing.
    """


# ============================================================ storage providers
@hookspec
def forgeml_register_metadata_stores(register: Register) -> None:
    """Offer metadata stores (contract: :class:`forgeml.contracts.MetadataStore`).

    Called when a workspace opens its metadata store; ``[storage.metadata] plugin`` picks one by
    name. Call ``register(name, factory, settings=None, description="")``. Return nothing.
    """


@hookspec
def forgeml_register_artifact_stores(register: Register) -> None:
    """Offer artifact stores (contract: :class:`forgeml.contracts.ArtifactStore`).

    Called when a workspace opens its artifact store; ``[storage.artifacts] plugin`` picks one.
    Call ``register(name, factory, settings=None, description="")``. Return nothing.
    """


@hookspec
def forgeml_register_offline_stores(register: Register) -> None:
    """Offer offline feature stores (contract: :class:`forgeml.contracts.OfflineStore`).

    Called when the feature store needs history; ``[storage.offline] plugin`` picks one.
    Call ``register(name, factory, settings=None, description="")``. Return nothing.
    """


@hookspec
def forgeml_register_online_stores(register: Register) -> None:
    """Offer online feature stores (contract: :class:`forgeml.contracts.OnlineStore`).

    Called when serving or materialization needs the latest values; ``[storage.online] plugin``
    picks one. Call ``register(name, factory, settings=None, description="")``. Return nothing.
    """


@hookspec
def forgeml_register_vector_stores(register: Register) -> None:
    """Offer vector stores for embedding features (contract: :class:`forgeml.contracts.VectorStore`).

    Called when an embedding view is written or searched; ``[storage.vector] plugin`` picks one.
    Call ``register(name, factory, settings=None, description="")``. Return nothing.
    """


@hookspec
def forgeml_register_stream_sources(register: Register) -> None:
    """Offer event streams that feed window feature views (contract: :class:`forgeml.contracts.EventStream`).

    Called when ``forgeml features stream`` starts or events are published to a stream; each
    ``[streams.NAME]`` table of plugins.toml names its provider with ``plugin = "..."`` and a
    ``StreamSource(NAME)`` in a view reads it. Call ``register(name, factory, settings=None,
    description="")``. Return nothing.
    """


# ============================================================ compute and scheduling
@hookspec
def forgeml_register_executors(register: Register) -> None:
    """Offer compute executors (contract: :class:`forgeml.contracts.Executor`).

    Called when a job targets compute; each ``[compute.targets.NAME]`` table names its executor
    with ``plugin = "..."``. Call ``register(name, factory, settings=None, description="")``.
    Return nothing.
    """


@hookspec
def forgeml_register_gpu_inventories(register: Register) -> None:
    """Offer GPU inventories (contract: :class:`forgeml.contracts.GpuInventory`).

    Called when the scheduler or ``forgeml doctor`` asks which GPUs exist; ``[scheduler.inventory]
    plugin`` picks one (NVML by default; a declared fake for tests). Call
    ``register(name, factory, settings=None, description="")``. Return nothing.
    """


@hookspec
def forgeml_register_placement_policies(register: Register) -> None:
    """Offer job placement policies (contract: :class:`forgeml.contracts.PlacementPolicy`).

    Called when the scheduler starts; ``[scheduler.policy] plugin`` picks one. Call
    ``register(name, factory, settings=None, description="")``. Return nothing.
    """


@hookspec(firstresult=True)
def forgeml_classify_failure(job: Any, exit_code: int | None, log_tail: str) -> str | None:
    """Decide whether a failed job attempt is worth retrying.

    Called by the scheduler when an attempt ends unsuccessfully, with the job, its exit code
    (negative for a signal, None when the process vanished) and the last lines of its log.
    Return ``"transient"`` to retry with backoff, ``"permanent"`` to fail now, or None to let
    other plugins (and finally the built-in policy) decide.
    """


# ============================================================ serving and models
@hookspec
def forgeml_register_runtimes(register: Register) -> None:
    """Offer model runtimes, one per flavor (contract: :class:`forgeml.contracts.ModelRuntime`).

    Called when a model is registered, loaded for serving, or used in batch inference.
    Call ``register(flavor, factory, settings=None, description="")``. Return nothing.
    """


@hookspec
def forgeml_register_gates(register: Register) -> None:
    """Offer promotion gates (contract: :class:`forgeml.contracts.PromotionGate`).

    Called when a promotion evaluates the gates configured for a model in plugins.toml.
    Call ``register(name, factory, settings=None, description="")``; the factory receives the
    gate's table from plugins.toml validated against ``settings``. Return nothing.
    """


# ============================================================ monitoring
@hookspec
def forgeml_register_monitors(register: Register) -> None:
    """Offer drift and quality tests (contract: :class:`forgeml.contracts.Monitor`).

    Called when a drift report or an expectation suite runs. Call
    ``register(name, factory, settings=None, description="")``. Return nothing.
    """


@hookspec
def forgeml_register_notifiers(register: Register) -> None:
    """Offer alert notifiers (contract: :class:`forgeml.contracts.Notifier`).

    Called when an alert is delivered to the notifiers configured in plugins.toml. Call
    ``register(name, factory, settings=None, description="")``. Return nothing.
    """


# ============================================================ people-facing extension points
@hookspec
def forgeml_register_commands(cli: Any) -> None:
    """Add commands or command groups to the ``forgeml`` CLI.

    Called when the CLI starts, with the root :class:`click.Group`; call ``cli.add_command(...)``.
    Return nothing.
    """


@hookspec
def forgeml_register_screens(register: Register) -> None:
    """Add screens to the terminal UI.

    Called when ``forgeml tui`` starts. Call ``register(key, title, screen_factory)`` where
    ``key`` is the keyboard shortcut and ``screen_factory()`` returns a Textual ``Screen``.
    Return nothing.
    """


# ============================================================ events
@hookspec
def forgeml_on_job_state_changed(job: Any, old_state: str | None, new_state: str, workspace: Any) -> None:
    """A job moved between states (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED).

    Called after the transition was committed to the metadata store, with the job record, the
    previous state (None on submission), the new state and the workspace. Return nothing.
    """


@hookspec
def forgeml_on_run_finished(run: Any, workspace: Any) -> None:
    """A tracked run ended (FINISHED, FAILED or KILLED).

    Called after the run's end status and last metrics were flushed. Return nothing.
    """


@hookspec
def forgeml_on_model_version_registered(model_version: Any, workspace: Any) -> None:
    """A new model version was registered.

    Called after the version and its artifacts were stored. Return nothing.
    """


@hookspec
def forgeml_on_model_stage_changed(
    model_version: Any, old_stage: str | None, new_stage: str, reason: str, workspace: Any
) -> None:
    """A model version moved between stages (STAGING, CANDIDATE, PRODUCTION, ARCHIVED).

    Called after the transition and its audit record were committed; serving hot-swaps on it.
    Return nothing.
    """


@hookspec
def forgeml_on_alert_fired(alert: Any, workspace: Any) -> None:
    """An alert rule fired (after de-duplication) and the alert was stored.

    Notifiers and retraining triggers listen here. Return nothing.
    """


@hookspec
def forgeml_on_features_materialized(view: str, start: Any, end: Any, rows: int, workspace: Any) -> None:
    """A feature view was materialized into the online store for [start, end).

    Called after the watermark was advanced, with the number of rows written. Return nothing.
    """


@hookspec
def forgeml_on_dataset_version_registered(dataset_version: Any, workspace: Any) -> None:
    """A new dataset version was registered; new-data triggers listen here.

    Called after the version was committed. Return nothing.
    """

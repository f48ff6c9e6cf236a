"""The one table of provider layers, and the settings sections core declares for itself.

Each :class:`Layer` says how plugins offer an implementation (the ``forgeml_register_<name>`` hook,
generated in :mod:`forgeml.hookspecs`), what they implement (a Protocol in :mod:`forgeml.contracts`),
how a workspace picks one (a plugins.toml section and its default plugin) and which conformance suite
in :mod:`forgeml.testing` proves an implementation. The plugin manager, the configuration validator,
the default plugins.toml, ``forgeml doctor`` and the docs test all read this table, so adding a layer
is adding one entry to ``LAYERS`` (plus its contract and its suite).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from forgeml import contracts as c


@dataclass(frozen=True)
class Layer:
    """One provider layer: its hook, contract, plugins.toml section, default plugin and conformance suite."""

    name: str
    """Registry key and hook suffix: plugins implement ``forgeml_register_<name>``."""
    noun: str
    """One provider in words, for messages: "online store"."""
    contract: type
    """The Protocol every provider implements."""
    suite: str
    """The conformance suite in ``forgeml.testing`` that every provider runs."""
    offers: str
    """What the hook offers, completing "Offer ...": "online feature stores"."""
    called: str
    """When core calls the hook, for its docstring."""
    section: str | None = None
    """The plugins.toml table selecting a provider with ``plugin = "..."``; None when chosen elsewhere."""
    default: str | None = None
    """The plugin a workspace uses when its section is silent."""
    doc: str = ""
    """The comment above the section in the default plugins.toml."""
    named: bool = False
    """The section holds ``[SECTION.NAME]`` tables, each choosing its own provider (compute targets, streams)."""
    entry: str = ""
    """What one ``[SECTION.NAME]`` table is called in messages: "compute target"."""
    guarded: bool = False
    """A plugin's exception from a provider method reaches the user as a PluginError naming the plugin
    (:mod:`forgeml.guarded`); off where the store converts its own errors on a hot path (metadata)."""

    @property
    def hook(self) -> str:
        """The name of the hook that offers providers of this layer."""
        return f"forgeml_register_{self.name}"


LAYERS: tuple[Layer, ...] = (
    Layer("metadata_stores", "metadata store", c.MetadataStore, "MetadataStoreSuite",
          "metadata stores", "Called when a workspace opens its metadata store.",
          "storage.metadata", "sqlite", "Metadata store: runs, jobs, models, features, datasets, alerts, audit."),
    Layer("artifact_stores", "artifact store", c.ArtifactStore, "ArtifactStoreSuite",
          "artifact stores", "Called when a workspace opens its artifact store.",
          "storage.artifacts", "fsspec", "Artifact store: content-addressed files (models, logs, diffs).", guarded=True),
    Layer("offline_stores", "offline store", c.OfflineStore, "OfflineStoreSuite",
          "offline feature stores", "Called when the feature store needs history.",
          "storage.offline", "duckdb", "Offline feature store: date-partitioned Parquet history for training sets.",
          guarded=True),
    Layer("online_stores", "online store", c.OnlineStore, "OnlineStoreSuite",
          "online feature stores", "Called when serving or materialization needs the latest values.",
          "storage.online", "sqlite", "Online feature store: the latest value per entity for serving.", guarded=True),
    Layer("vector_stores", "vector store", c.VectorStore, "VectorStoreSuite",
          "vector stores for embedding features", "Called when an embedding view is written or searched.",
          "storage.vector", "lancedb", "Vector store: embedding features and nearest-neighbour search.", guarded=True),
    Layer("stream_sources", "stream source", c.EventStream, "EventStreamSuite",
          "event streams that feed window feature views",
          "Called when ``forgeml features stream`` starts or events are published to a stream; a "
          "``StreamSource(NAME)`` in a view reads the ``[streams.NAME]`` table's stream.",
          "streams", None, "Event streams, one [streams.NAME] table each.", named=True, entry="stream"),
    Layer("executors", "executor", c.Executor, "ExecutorSuite",
          "compute executors", "Called when a job targets compute.",
          "compute.targets", "local", "Compute targets, one [compute.targets.NAME] table each.", named=True,
          entry="compute target", guarded=True),
    Layer("gpu_inventories", "GPU inventory", c.GpuInventory, "GpuInventorySuite",
          "GPU inventories", "Called when the scheduler or ``forgeml doctor`` asks which GPUs exist.",
          "scheduler.inventory", "nvml", "GPU inventory the scheduler places jobs on (nvml reads the real GPUs)."),
    Layer("placement_policies", "placement policy", c.PlacementPolicy, "PlacementPolicySuite",
          "job placement policies", "Called when the scheduler starts.",
          "scheduler.policy", "default", "Placement policy: which pending job starts where."),
    Layer("runtimes", "runtime", c.ModelRuntime, "ModelRuntimeSuite",
          "model runtimes, one per flavor",
          "Called when a model is registered, loaded for serving, or used in batch inference; the flavor "
          "recorded with each model version picks one, and ``name`` is the flavor."),
    Layer("gates", "gate", c.PromotionGate, "PromotionGateSuite",
          "promotion gates",
          "Called when a promotion evaluates the gates a model's ``[registry.models.NAME]`` table lists; the "
          "factory receives the gate's entry validated against ``settings``."),
    Layer("monitors", "monitor", c.Monitor, "MonitorSuite",
          "drift and quality tests", "Called when a drift report or an expectation suite runs."),
    Layer("notifiers", "notifier", c.Notifier, "NotifierSuite",
          "alert notifiers",
          "Called when an alert is delivered to the notifiers configured as ``[monitoring.notifiers.NAME]`` tables.",
          guarded=True),
    Layer("annotation_backends", "annotation backend", c.AnnotationBackend, "AnnotationBackendSuite",
          "annotation backends where people label items",
          "Called when ``forgeml label`` sends tasks to people or pulls their annotations.",
          "labeling.backend", "local",
          "Annotation backend: where people label items (local: the terminal UI; label_studio: a Label Studio server)."),
    Layer("query_strategies", "query strategy", c.QueryStrategy, "QueryStrategySuite",
          "active-learning query strategies",
          "Called when ``forgeml label next --strategy NAME`` chooses the next items to label."),
    Layer("retrievers", "retrieval source", c.Retriever, "RetrieverSuite",
          "candidate sources of recommenders",
          "Called when a recommender of ``[serving.recommenders.NAME]`` builds the sources its ``sources`` list "
          "names; the factory receives the source's entry validated against ``settings``."),
    Layer("rerankers", "re-ranking rule", c.Reranker, "RerankerSuite",
          "re-ranking rules of recommenders",
          "Called when a recommender of ``[serving.recommenders.NAME]`` builds the rules its ``rerank`` list "
          "names; the factory receives the rule's entry validated against ``settings``."),
)

LAYER: Mapping[str, Layer] = {layer.name: layer for layer in LAYERS}
"""Every layer by name."""

SECTIONS: Mapping[str, Layer] = {layer.section: layer for layer in LAYERS if layer.section and not layer.named}
"""The plugins.toml sections that choose one provider, by section."""

NAMED_SECTIONS: Mapping[str, Layer] = {layer.section: layer for layer in LAYERS if layer.section and layer.named}
"""The plugins.toml sections whose ``[SECTION.NAME]`` tables each choose a provider, by section."""

DEFAULT_TARGET: str = LAYER["executors"].default or ""
"""The compute target every workspace has (named after the default executor) and jobs go to by default."""

# Plain sections core's services read, as section -> "module:class"; imported when a workspace's
# configuration is validated, not by ``import forgeml``.
CORE_SECTIONS: Mapping[str, str] = {
    "scheduler": "forgeml.jobs.settings:SchedulerSettings",
    "tracking": "forgeml.tracking.settings:TrackingSettings",
    "registry": "forgeml.registry.settings:RegistrySettings",
    "serving": "forgeml.serving.settings:ServingSettings",
    "server": "forgeml.server.settings:ServerSettings",
    "monitoring": "forgeml.monitoring.settings:MonitoringSettings",
    "pipelines": "forgeml.pipelines.settings:PipelinesSettings",
    "tuning": "forgeml.tuning.settings:TuningSettings",
    "features": "forgeml.features.settings:FeaturesSettings",
    "privacy": "forgeml.privacy.settings:PrivacySettings",
}

# Each service layer that stores artifact digests answers which ones it points at, as "module:function"
# taking the workspace; ``forgeml doctor`` asks every one of them instead of reading their tables.
ARTIFACT_REFERENCES: Mapping[str, str] = {
    "tracking": "forgeml.tracking.schema:artifact_references",
    "registry": "forgeml.registry.schema:artifact_references",
    "datasets": "forgeml.datasets.schema:artifact_references",
    "pipelines": "forgeml.pipelines.schema:artifact_references",
}

# The registry records which datasets and feature views each model version used. Layers below it
# (datasets' lineage) read that through this "module:function", not its tables and not an import.
MODEL_VERSIONS = "forgeml.registry.store:all_versions"

CORE = "forgeml"
"""Who declares core's own sections, where a plugin's name would be shown."""


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def core_sections() -> dict[str, type]:
    """Return core's own settings sections: section -> settings dataclass."""
    return {section: _load(target) for section, target in CORE_SECTIONS.items()}


def model_versions(metadata: Any, *columns: str) -> list[dict[str, Any]]:
    """Return the given columns of every registered model version, as the registry's store reads them."""
    return list(_load(MODEL_VERSIONS)(metadata, *columns))


def artifact_referencers() -> dict[str, Callable[[Any], set[str]]]:
    """Return each service layer's function listing the artifact digests it points at, by layer."""
    return {layer: _load(target) for layer, target in ARTIFACT_REFERENCES.items()}

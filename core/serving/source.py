"""Where served models come from: a registry URI resolved to a loaded, described model version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from forgeml.serving.signature import Signature


@dataclass
class ServedModel:
    """One loaded model version with everything serving needs to feed it."""

    uri: str
    name: str
    version: int
    model: Any  # forgeml.contracts.LoadedModel
    signature: Signature
    feature_refs: list[str] = field(default_factory=list)
    entity_keys: list[str] = field(default_factory=list)
    flavor: str = ""
    warm_ms: float = float("inf")  # one-row predict time measured at warm-up
    warm_batch: tuple[int, float] = (1, float("inf"))  # (rows, ms) of a full batch at warm-up
    training_stats: dict[str, Any] = field(default_factory=dict)  # mean (numbers) or mode per training column
    profile: Any = None  # InputProfile: what training saw, for the response's warnings

    def cost_ms(self, rows: int) -> float:
        """Estimate a batch's predict time from the warm-up timings (linear between 1 row and a full batch)."""
        full, full_ms = self.warm_batch
        if rows <= 1 or full <= 1:
            return self.warm_ms * max(rows, 1)
        return self.warm_ms + (full_ms - self.warm_ms) * (rows - 1) / (full - 1)

    @property
    def feature_columns(self) -> dict[str, str]:
        """Map each signature input fed from the online store to its "view:feature" reference."""
        out: dict[str, str] = {}
        for ref in self.feature_refs:
            name = ref.split(":", 1)[1] if ":" in ref else ref
            out[name] = ref
        return out

    @property
    def request_columns(self) -> list[str]:
        """Return the signature inputs an entity request must carry itself (not looked up)."""
        fed = self.feature_columns
        return [c.name for c in self.signature.inputs if c.name not in fed and c.name not in self.entity_keys]

    def sample_row(self) -> dict[str, Any]:
        """Return a synthetic row that fits the signature, for warming the model up."""
        sample = {"number": 0.0, "integer": 0, "string": "", "boolean": False}
        return {c.name: sample.get(c.json_type, 0.0) for c in self.signature.inputs}


class ModelSource(Protocol):
    """Resolves model URIs; serving polls ``version_of`` cheaply and calls ``load`` on a change."""

    def version_of(self, uri: str) -> int:
        """Return the version a URI points at now."""

    def load(self, uri: str, device: str | None = None) -> ServedModel:
        """Resolve a URI and load that version."""


def parse_uri(uri: str) -> tuple[str, str]:
    """Split a served model's ``name@ref`` with the registry's parser; serving requires the ref."""
    from forgeml.registry.models import parse_uri as parse_model_uri

    return parse_model_uri(uri, require_ref=True)


def _listify(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


class RegistrySource:
    """Models from forgeml's registry: ``resolve`` for the cheap poll, ``load_model`` to load."""

    def __init__(self, workspace: Any = None):
        self.workspace = workspace

    def version_of(self, uri: str) -> int:
        """Return the version a registry URI points at now."""
        from forgeml.registry import resolve

        return int(resolve(uri, workspace=self.workspace).version)

    def load(self, uri: str, device: str | None = None) -> ServedModel:
        """Resolve the URI once, then load exactly that version so the pair cannot tear."""
        from forgeml.registry import load_model, resolve
        from forgeml.registry.statistics import read_statistics, typical_values

        mv = resolve(uri, workspace=self.workspace)
        model = load_model(mv, device=device, workspace=self.workspace)
        served = describe(uri, mv, model)
        stats = read_statistics(mv, self.workspace)
        served.training_stats = typical_values(stats)
        from forgeml.serving.input_checks import InputProfile

        profile = InputProfile(stats, ", ".join(mv.datasets))
        served.profile = profile if profile else None
        return served


def describe(uri: str, mv: Any, model: Any) -> ServedModel:
    """Build the serving description of a registry ModelVersion and its loaded model."""
    return ServedModel(
        uri=uri,
        name=str(mv.name),
        version=int(mv.version),
        model=model,
        signature=Signature.parse(getattr(mv, "signature", None)),
        feature_refs=_listify(getattr(mv, "feature_views", None)),
        entity_keys=_listify(getattr(mv, "entity_keys", None)),
        flavor=str(getattr(mv, "flavor", "")),
    )


def fetch_online_features(workspace: Any, served: ServedModel, entity_rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Return the model's online features for entity rows, column-wise, named by feature."""

    store = _feature_store(workspace)
    refs = served.feature_refs
    result = store.get_online_features(list(entity_rows), refs)
    columns = _columns_of(result)
    out: dict[str, list[Any]] = {}
    for ref in refs:
        view, _, feat = ref.partition(":")
        for candidate in (feat, ref, f"{view}__{feat}"):
            if candidate in columns:
                out[feat or view] = columns[candidate]
                break
    return out


def _feature_store(workspace: Any) -> Any:
    from forgeml.features import store_for

    return store_for(workspace)


def _columns_of(result: Any) -> dict[str, list[Any]]:
    """Turn what get_online_features returns (OnlineFeatures, Arrow table, DataFrame) into columns."""
    if hasattr(result, "to_pydict"):
        return result.to_pydict()
    if hasattr(result, "columns") and hasattr(result, "to_dict"):
        return {str(c): result[c].tolist() for c in result.columns}
    if hasattr(result, "to_dict"):
        return result.to_dict()
    if hasattr(result, "to_arrow"):
        return result.to_arrow().to_pydict()
    return dict(result)

"""Feature definitions in Python: entities, sources, feature views and on-demand views, Feast-style."""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from forgeml.errors import ValidationError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SCALAR_DTYPES = ("int32", "int64", "float32", "float64", "bool", "string", "timestamp")
DTYPE_ALIASES = {"int": "int64", "float": "float64", "double": "float64", "str": "string", "boolean": "bool",
                 "Int64": "int64", "Int32": "int32", "Float64": "float64", "Float32": "float32",
                 "String": "string", "Bool": "bool", "UnixTimestamp": "timestamp"}
EMBEDDING_RE = re.compile(r"^embedding\[(\d+)\]$")
LIST_RE = re.compile(r"^list\[(int32|int64|float32|float64|bool|string|timestamp)\]$")


def check_name(kind: str, name: str) -> str:
    """Return name when it is a plain identifier, else raise a ValidationError saying so."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(f"{kind} name {name!r} must be an identifier: letters, digits and _, not starting "
                              f"with a digit")
    return name


def Embedding(dim: int) -> str:  # noqa: N802 - reads like a type, as in Feast's Array(Float32)
    """Return the dtype of a fixed-size float32 embedding vector of dim dimensions."""
    if not isinstance(dim, int) or dim <= 0:
        raise ValidationError(f"Embedding(dim): dim must be a positive integer, got {dim!r}")
    return f"embedding[{dim}]"


def normalize_dtype(dtype: Any) -> str:
    """Return the canonical dtype name for a string alias, a Python type or an embedding dtype."""
    if isinstance(dtype, type):
        dtype = {int: "int64", float: "float64", str: "string", bool: "bool"}.get(dtype, dtype.__name__)
    name = DTYPE_ALIASES.get(str(dtype), str(dtype))
    if name in SCALAR_DTYPES or EMBEDDING_RE.match(name) or LIST_RE.match(name):
        return name
    raise ValidationError(f"unknown feature dtype {dtype!r}; use one of {', '.join(SCALAR_DTYPES)}, list[dtype] or "
                          f"Embedding(dim)")


def embedding_dim(dtype: str) -> int | None:
    """Return the dimension of an embedding dtype, or None for scalar dtypes."""
    m = EMBEDDING_RE.match(dtype)
    return int(m.group(1)) if m else None


def arrow_type(dtype: str) -> Any:
    """Return the pyarrow type that stores a dtype."""
    import pyarrow as pa

    dim = embedding_dim(dtype)
    if dim is not None:
        return pa.list_(pa.float32(), dim)
    listed = LIST_RE.match(dtype)
    if listed:
        return pa.list_(arrow_type(listed.group(1)))
    return {"int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(), "float64": pa.float64(),
            "bool": pa.bool_(), "string": pa.string(), "timestamp": pa.timestamp("us", tz="UTC")}[dtype]


def _seconds(value: timedelta | float | int | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not isinstance(value, int | float) or value <= 0:
        raise ValidationError(f"{what} must be a positive timedelta or number of seconds, got {value!r}")
    return float(value)


# ---------------------------------------------------------------- entities and features
@dataclass(frozen=True)
class Entity:
    """Something features describe (a user, a driver): its name, join keys and key dtype."""

    name: str
    join_keys: tuple[str, ...] = ()
    dtype: str = "int64"
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    pii: bool = False  # the join keys identify a person: kept out of logs and artifacts, erased by forget

    def __post_init__(self) -> None:
        check_name("entity", self.name)
        keys = (self.join_keys,) if isinstance(self.join_keys, str) else tuple(self.join_keys or (self.name,))
        for key in keys:
            check_name(f"entity {self.name!r} join key", key)
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "dtype", normalize_dtype(self.dtype))

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        return {"name": self.name, "join_keys": list(self.join_keys), "dtype": self.dtype,
                "description": self.description, "tags": dict(self.tags), **({"pii": True} if self.pii else {})}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Entity:
        """Rebuild an entity from its registry description."""
        return cls(spec["name"], tuple(spec["join_keys"]), spec["dtype"], spec.get("description", ""),
                   dict(spec.get("tags", {})), bool(spec.get("pii", False)))


@dataclass(frozen=True)
class Feature:
    """One feature column of a view: name, dtype, a description and whether it holds personal data."""

    name: str
    dtype: Any = "float64"
    description: str = ""
    pii: bool = False  # personal data: kept out of prediction logs, run artifacts and alerts unless allowed

    def __post_init__(self) -> None:
        check_name("feature", self.name)
        object.__setattr__(self, "dtype", normalize_dtype(self.dtype))

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        return {"name": self.name, "dtype": self.dtype, "description": self.description,
                **({"pii": True} if self.pii else {})}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Feature:
        """Rebuild a feature from its registry description."""
        return cls(spec["name"], spec["dtype"], spec.get("description", ""), bool(spec.get("pii", False)))


Field = Feature  # Feast's name for the same thing


# ---------------------------------------------------------------- sources
@dataclass(frozen=True)
class FileSource:
    """Parquet or CSV files: one file, a folder (read recursively), a glob, or any fsspec URL."""

    path: str
    timestamp_field: str = "event_timestamp"
    file_format: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        fmt = self.file_format or ("csv" if str(self.path).lower().endswith((".csv", ".csv.gz")) else "parquet")
        if fmt not in ("parquet", "csv"):
            raise ValidationError(f"FileSource {self.path!r}: file_format must be 'parquet' or 'csv', got {fmt!r}")
        object.__setattr__(self, "file_format", fmt)
        object.__setattr__(self, "path", str(self.path))

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        return {"kind": "file", "path": self.path, "timestamp_field": self.timestamp_field,
                "file_format": self.file_format, "name": self.name}

    @property
    def label(self) -> str:
        """A name for lineage."""
        return self.name or self.path


@dataclass(frozen=True)
class SqlSource:
    """A DuckDB query whose rows are the source (it may read files with read_parquet etc.)."""

    query: str
    timestamp_field: str = "event_timestamp"
    name: str = ""

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        return {"kind": "sql", "query": self.query, "timestamp_field": self.timestamp_field, "name": self.name}

    @property
    def label(self) -> str:
        """A name for lineage."""
        return self.name or f"sql:{hashlib.sha256(self.query.encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class PushSource:
    """Rows arrive through push(); their history lives in the offline store, optionally after a batch source."""

    name: str
    batch_source: FileSource | SqlSource | None = None
    timestamp_field: str = "event_timestamp"

    def __post_init__(self) -> None:
        check_name("push source", self.name)
        if self.batch_source is not None:
            object.__setattr__(self, "timestamp_field", self.batch_source.timestamp_field)

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        return {"kind": "push", "name": self.name, "timestamp_field": self.timestamp_field,
                "batch_source": self.batch_source.to_spec() if self.batch_source else None}

    @property
    def label(self) -> str:
        """A name for lineage."""
        return f"push:{self.name}"


@dataclass(frozen=True)
class StreamSource:
    """Events read from a stream named in plugins.toml (``[streams.NAME]``); history from a batch source.

    ``forgeml features stream`` consumes the stream into the online store. Events it applies are also
    appended to the offline store (de-duplicated by stream position), next to ``batch_source``.
    """

    name: str
    batch_source: FileSource | SqlSource | None = None
    timestamp_field: str = "event_timestamp"

    def __post_init__(self) -> None:
        check_name("stream source", self.name)
        if self.batch_source is not None:
            object.__setattr__(self, "timestamp_field", self.batch_source.timestamp_field)

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        return {"kind": "stream", "name": self.name, "timestamp_field": self.timestamp_field,
                "batch_source": self.batch_source.to_spec() if self.batch_source else None}

    @property
    def label(self) -> str:
        """A name for lineage."""
        return f"stream:{self.name}"


Source = FileSource | SqlSource | PushSource | StreamSource


def source_from_spec(spec: dict[str, Any] | None) -> Source | None:
    """Rebuild a source from its registry description."""
    if spec is None:
        return None
    kind = spec["kind"]
    if kind == "file":
        return FileSource(spec["path"], spec["timestamp_field"], spec["file_format"], spec.get("name", ""))
    if kind == "sql":
        return SqlSource(spec["query"], spec["timestamp_field"], spec.get("name", ""))
    if kind == "stream":
        return StreamSource(spec["name"], source_from_spec(spec.get("batch_source")), spec["timestamp_field"])
    return PushSource(spec["name"], source_from_spec(spec.get("batch_source")), spec["timestamp_field"])


# ---------------------------------------------------------------- transformations
def python_ref(fn: Callable[..., Any]) -> dict[str, Any]:
    """Describe a Python function so another process can import it and a diff can see code changes."""
    try:
        code = inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(getattr(fn, "__code__", None), "co_code", b"").hex()
    module = getattr(fn, "__module__", "") or ""
    # functions from a definitions file loaded by path are found again through that file
    file = inspect.getsourcefile(fn) if module.startswith("forgeml_definitions_") else None
    ref = {"module": module, "qualname": fn.__qualname__, "file": file,
           "code_sha256": hashlib.sha256(code.encode() if isinstance(code, str) else code).hexdigest()}
    FUNCTIONS[function_key(ref)] = fn
    return ref


# Functions seen in this process by reference, so lambdas and functions of __main__ resolve here too.
FUNCTIONS: dict[str, Callable[..., Any]] = {}


def function_key(ref: dict[str, Any]) -> str:
    """Return the key of a function reference in FUNCTIONS."""
    return f"{ref['module']}:{ref['qualname']}:{ref['code_sha256']}"


@dataclass(frozen=True)
class Transformation:
    """The one transformation of a view: DuckDB SQL over the relation `source`, or a vectorized function."""

    sql: str | None = None
    function: Callable[..., Any] | None = field(default=None, compare=False)
    mode: str = "pandas"  # the function takes and returns a pandas DataFrame ("pandas") or an Arrow table ("arrow")
    ref: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.sql is None) == (self.function is None and self.ref is None):
            raise ValidationError("a transformation is either SQL text or a Python function, not both or neither")
        if self.mode not in ("pandas", "arrow"):
            raise ValidationError(f"transformation mode must be 'pandas' or 'arrow', got {self.mode!r}")
        if self.function is not None and self.ref is None:
            object.__setattr__(self, "ref", python_ref(self.function))

    def callable(self) -> Callable[..., Any]:
        """Return the Python function, importing it from its reference when this process has not seen it."""
        if self.function is None:
            from forgeml.features.registry import resolve_function

            object.__setattr__(self, "function", resolve_function(self.ref))
        return self.function

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        if self.sql is not None:
            return {"sql": self.sql}
        return {"python": self.ref, "mode": self.mode}


def transformation_of(value: Any, mode: str = "pandas") -> Transformation | None:
    """Accept SQL text, a callable or a Transformation (or None) for a view's transformation."""
    if value is None or isinstance(value, Transformation):
        return value
    if isinstance(value, str):
        return Transformation(sql=value)
    if callable(value):
        return Transformation(function=value, mode=mode)
    raise ValidationError(f"transformation must be SQL text or a function, got {type(value).__name__}")


# ---------------------------------------------------------------- views
def _as_features(features: Sequence[Any], owner: str) -> tuple[Feature, ...]:
    out = []
    for f in features:
        if isinstance(f, Feature):
            out.append(f)
        elif isinstance(f, tuple) and len(f) == 2:
            out.append(Feature(f[0], f[1]))
        elif isinstance(f, str):
            out.append(Feature(f))
        else:
            raise ValidationError(f"{owner}: a feature is Feature(name, dtype), (name, dtype) or a name; got {f!r}")
    names = [f.name for f in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValidationError(f"{owner}: feature {dupes[0]!r} is declared twice")
    if not out:
        raise ValidationError(f"{owner}: declare at least one feature")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class FeatureView:
    """Features of one or more entities from one source, with TTL, freshness SLA and an optional transformation."""

    name: str
    entities: Sequence[Entity] | Entity = ()
    features: Sequence[Any] = ()
    source: Source | None = None
    ttl: timedelta | float | None = None
    owner: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    freshness_sla: timedelta | float | None = None
    transformation: Any = None
    transformation_mode: str = "pandas"
    online: bool = True
    timestamp_field: str | None = None
    entity: Entity | None = None  # shorthand for entities=[entity]
    schema: Sequence[Any] = ()  # Feast's spelling of features
    aggregations: Sequence[Any] = ()  # Aggregation(...) values: the features are then windows over events
    allowed_lateness: timedelta | float | None = 3600.0  # online, events older than their key's newest by more are dropped

    def __post_init__(self) -> None:
        check_name("feature view", self.name)
        where = f"feature view {self.name!r}"
        entities = self.entities
        if isinstance(entities, Entity):
            entities = [entities]
        entities = tuple(entities) + ((self.entity,) if self.entity is not None else ())
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise ValidationError(f"{where}: give entities=[Entity(...)] (at least one)")
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "aggregations", tuple(self.aggregations))
        if self.aggregations:
            from forgeml.features.aggregations import window_features

            if self.features or self.schema or self.transformation is not None:
                raise ValidationError(f"{where}: a view with aggregations derives its features from them; drop "
                                      f"features=/schema=/transformation=")
            derived = [Feature(w.name, w.aggregation.output_dtype) for w in window_features(self.aggregations)]
            object.__setattr__(self, "features", tuple(derived))
        object.__setattr__(self, "features", _as_features(list(self.features) or list(self.schema), where))
        if self.source is None:
            object.__setattr__(self, "source", PushSource(self.name))
        if not isinstance(self.source, FileSource | SqlSource | PushSource | StreamSource):
            raise ValidationError(f"{where}: source must be a FileSource, SqlSource, PushSource or StreamSource")
        if isinstance(self.source, StreamSource) and not self.aggregations:
            raise ValidationError(f"{where}: a StreamSource feeds window aggregations; declare aggregations=")
        lateness = self.allowed_lateness
        object.__setattr__(self, "allowed_lateness", 0.0 if lateness in (0, 0.0) else
                           _seconds(lateness, f"{where}: allowed_lateness"))
        object.__setattr__(self, "ttl", _seconds(self.ttl, f"{where}: ttl"))
        object.__setattr__(self, "freshness_sla", _seconds(self.freshness_sla, f"{where}: freshness_sla"))
        object.__setattr__(self, "transformation", transformation_of(self.transformation, self.transformation_mode))
        object.__setattr__(self, "timestamp_field", self.timestamp_field or self.source.timestamp_field)
        clash = set(self.join_keys) & set(self.feature_names)
        if clash:
            raise ValidationError(f"{where}: {sorted(clash)[0]!r} is both a join key and a feature")

    @property
    def join_keys(self) -> tuple[str, ...]:
        """Every entity's join keys, in order."""
        return tuple(k for e in self.entities for k in e.join_keys)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The feature names, in declaration order."""
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> Feature:
        """Return one feature by name."""
        for f in self.features:
            if f.name == name:
                return f
        from forgeml.errors import unknown_name

        raise unknown_name(f"feature of view {self.name!r}", name, self.feature_names)

    @property
    def pii_columns(self) -> tuple[str, ...]:
        """The join keys of PII entities and the features tagged ``pii``."""
        keys = tuple(k for e in self.entities if e.pii for k in e.join_keys)
        return keys + tuple(f.name for f in self.features if f.pii)

    @property
    def embedding_features(self) -> tuple[Feature, ...]:
        """The features whose dtype is an embedding."""
        return tuple(f for f in self.features if embedding_dim(f.dtype) is not None)

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry (window keys only for window views)."""
        return {"name": self.name, "entities": [e.name for e in self.entities],
                "features": [f.to_spec() for f in self.features], "source": self.source.to_spec(),
                "ttl": self.ttl, "owner": self.owner, "description": self.description, "tags": dict(self.tags),
                "freshness_sla": self.freshness_sla, "online": self.online, "timestamp_field": self.timestamp_field,
                "transformation": self.transformation.to_spec() if self.transformation else None,
                **({"aggregations": [a.to_spec() for a in self.aggregations],
                    "allowed_lateness": self.allowed_lateness} if self.aggregations else {})}

    @property
    def windowed(self) -> bool:
        """Whether the features are window aggregations over events."""
        return bool(self.aggregations)


@dataclass(frozen=True)
class RequestSource:
    """Values that arrive with the request (entity_df columns or entity_rows keys), typed."""

    name: str
    schema: Sequence[Any] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "schema", _as_features(self.schema, f"request source {self.name!r}"))


@dataclass(frozen=True, eq=False)
class OnDemandFeatureView:
    """Features computed at retrieval time from request data plus stored features, offline and online alike."""

    name: str
    sources: Sequence[FeatureView | RequestSource] = ()
    features: Sequence[Any] = ()
    transformation: Any = None
    mode: str = "pandas"
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("on-demand feature view", self.name)
        where = f"on-demand feature view {self.name!r}"
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "features", _as_features(self.features, where))
        t = transformation_of(self.transformation, self.mode)
        if t is None or t.sql is not None and "source" not in t.sql:
            raise ValidationError(f"{where}: give transformation=a function (or SQL over the relation `source`)")
        object.__setattr__(self, "transformation", t)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The computed feature names."""
        return tuple(f.name for f in self.features)

    @property
    def request_fields(self) -> tuple[str, ...]:
        """The request-data columns the transformation reads."""
        return tuple(f.name for s in self.sources if isinstance(s, RequestSource) for f in s.schema)

    @property
    def source_views(self) -> tuple[str, ...]:
        """The names of the stored views the transformation reads."""
        return tuple(s.name for s in self.sources if isinstance(s, FeatureView))

    def to_spec(self) -> dict[str, Any]:
        """Return the JSON-ready description stored in the registry."""
        return {"name": self.name, "features": [f.to_spec() for f in self.features],
                "views": list(self.source_views),
                "request": [{"name": s.name, "schema": [f.to_spec() for f in s.schema]}
                            for s in self.sources if isinstance(s, RequestSource)],
                "transformation": self.transformation.to_spec(), "description": self.description,
                "owner": self.owner, "tags": dict(self.tags)}

"""One recommender's table in plugins.toml ([serving.recommenders.NAME]) and the sources and rules it names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from forgeml.config import setting
from forgeml.errors import ConfigError

EXAMPLES = {"source": "ann, cooccurrence, popularity, content", "rule": "suppress_purchased, diversity, sponsored"}


@dataclass
class RecommenderSettings:
    """One recommender: retrieval sources, a ranking model and re-ranking rules ([serving.recommenders.NAME])."""

    sources: list[dict[str, Any]] = setting(
        [], "Retrieval sources, e.g. [{ source = \"ann\", view = \"item_emb\", user_vector = \"user_emb:vector\", "
            "k = 200 }, { source = \"popularity\", feature = \"popular:items\", k = 100 }]; each may set name, k "
            "and timeout_ms.")
    model: str = setting("", "Ranking model URI (name@production); empty: candidates keep their retrieval scores.")
    rerank: list[dict[str, Any]] = setting(
        [], "Re-ranking rules applied in order, e.g. [{ rule = \"suppress_purchased\", feature = "
            "\"user_history:purchased\" }, { rule = \"diversity\", attribute = \"category\", max_per_value = 2 }].")
    user_key: str = setting("user_id", "Join key of the user entity (the request's \"user\" is looked up under it).")
    item_key: str = setting("item_id", "Join key of the item entity.")
    features: list[str] = setting(
        [], "Extra \"view:feature\" references fetched for every candidate (attributes the rules read); the ranking "
            "model's registered features are always fetched.")
    available: str = setting("", "A boolean item feature (\"view:feature\"); candidates whose value is false are "
                                 "dropped. Empty: every item is available.")
    recent: str = setting("", "A list feature keyed by user (\"view:feature\") giving recent items, newest first, "
                              "when the request names none.")
    n: int = setting(10, "Items returned when the request does not say.")
    max_candidates: int = setting(500, "Most merged candidates passed to ranking.")
    budget_ms: float = setting(40.0, "Time budget of retrieval: sources not done by then are left out of the merge.")
    item_cache_s: float = setting(30.0, "Item features (views keyed by the item alone) are held in memory and "
                                        "read again once this many seconds old, so a change reaches answers "
                                        "within it; 0: read them from the online store on every request.", low=0)
    rerank_window: int = setting(100, "Re-ranking rules see this many of the best-ranked candidates (at least the "
                                      "request's n); the rest follow unchanged. 0: every candidate.", low=0)
    rank_timeout_ms: float = setting(0.0, "Give up on ranking after this many ms and answer from the fallback "
                                          "(0: wait).")
    fallback: str = setting("", "Name of the source answering, in its own order, when ranking or every source "
                                "fails (e.g. the popularity source); empty: the first popularity source.")


@dataclass
class SourceSpec:
    """One configured retrieval source: its name, provider, validated settings, k and time limit."""

    name: str
    plugin: str
    provider: Any
    settings: Any
    k: int
    timeout_ms: float


@dataclass
class RuleSpec:
    """One configured re-ranking rule."""

    name: str
    provider: Any
    settings: Any


def _entries(entries: list[Any], field_name: str, key: str, where: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield (where, plugin name, the other keys) of each entry of a sources or rerank list."""
    for i, entry in enumerate(entries):
        at = f"{where} {field_name}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: each entry is an inline table such as {{ {key} = \"<plugin>\", ... }}, "
                              f"got {entry!r}")
        values = dict(entry)
        plugin = values.pop(key, None)
        if not isinstance(plugin, str):
            raise ConfigError(f"{at}: each {key} needs {key} = \"<plugin>\" (one of the registered {field_name} "
                              f"plugins, e.g. {EXAMPLES[key]})")
        yield at, plugin, values


def configured_sources(host: Any, table: RecommenderSettings, where: str) -> list[SourceSpec]:
    """Resolve a recommender's sources to providers with validated settings; one-line ConfigError when wrong."""
    from forgeml.selection import configure

    if not table.sources:
        raise ConfigError(f"{where}: 'sources' is empty; list at least one retrieval source, e.g. "
                          f"sources = [{{ source = \"popularity\", feature = \"popular:items\" }}]")
    out: list[SourceSpec] = []
    for at, plugin, values in _entries(table.sources, "sources", "source", where):
        name = values.pop("name", plugin)
        k = values.pop("k", 100)
        timeout_ms = values.pop("timeout_ms", 0.0)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{at}: name must be non-empty text, got {name!r}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"{at}: k must be a whole number of at least 1, got {k!r}")
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) or timeout_ms < 0:
            raise ConfigError(f"{at}: timeout_ms must be a number of at least 0, got {timeout_ms!r}")
        if any(s.name == name for s in out):
            raise ConfigError(f"{at}: two sources are named {name!r}; give one of them name = \"...\"")
        provider, settings = configure(host, "retrievers", plugin, values, at)
        out.append(SourceSpec(name, plugin, provider, settings, k, float(timeout_ms)))
    if table.fallback and table.fallback not in {s.name for s in out}:
        from forgeml.errors import did_you_mean

        raise ConfigError(f"{where}: fallback {table.fallback!r} names no source"
                          f"{did_you_mean(table.fallback, [s.name for s in out])}; sources: "
                          f"{', '.join(s.name for s in out)}")
    return out


def configured_rules(host: Any, table: RecommenderSettings, where: str) -> list[RuleSpec]:
    """Resolve a recommender's re-ranking rules to providers with validated settings."""
    from forgeml.selection import configure

    out: list[RuleSpec] = []
    for at, name, values in _entries(table.rerank, "rerank", "rule", where):
        provider, settings = configure(host, "rerankers", name, values, at)
        out.append(RuleSpec(name, provider, settings))
    return out


def check_recommenders(host: Any, tables: Mapping[str, RecommenderSettings] | None, prefix: str = "") -> None:
    """Check every recommender's sources, rules and references; raise a one-line ConfigError on the first fault."""
    for name, table in (tables or {}).items():
        where = f"{prefix}[serving.recommenders.{name}]"
        configured_sources(host, table, where)
        configured_rules(host, table, where)
        for field_name in ("available", "recent"):
            ref = getattr(table, field_name)
            if ref and ":" not in ref:
                raise ConfigError(f"{where}: {field_name} must be a \"view:feature\" reference, got {ref!r}")
        for ref in table.features:
            if ":" not in ref:
                raise ConfigError(f"{where}: features must be \"view:feature\" references, got {ref!r}")
        if table.model:
            from forgeml.errors import ValidationError
            from forgeml.registry.models import parse_uri

            try:
                parse_uri(table.model, require_ref=True)
            except ValidationError as e:
                raise ConfigError(f"{where}: model: {e}") from None

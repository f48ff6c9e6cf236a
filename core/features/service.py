"""FeatureStore: training sets (point in time), online reads, push, materialization, freshness, nearest."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from forgeml.contracts import FeatureRequest
from forgeml.errors import NotFoundError, StorageError, ValidationError, unknown_name
from forgeml.features.definitions import FeatureView, OnDemandFeatureView, PushSource
from forgeml.features.registry import Change, FeatureRegistry
from forgeml.features.retrieval import OnlineFeatures, Plan, make_plan
from forgeml.features.status import StatusMixin

REFRESH_S = 2.0  # how often a long-lived store checks the registry for definitions applied elsewhere


def _to_arrow(rows: Any, what: str) -> Any:
    import pyarrow as pa

    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if hasattr(rows, "to_arrow") and not hasattr(rows, "iloc"):
        return rows.to_arrow()
    if hasattr(rows, "iloc"):
        return pa.Table.from_pandas(rows, preserve_index=False)
    if isinstance(rows, Mapping):
        return pa.table(dict(rows))
    if isinstance(rows, Sequence) and not isinstance(rows, str):
        return pa.Table.from_pylist(list(rows))
    raise ValidationError(f"{what} must be a pandas DataFrame, an Arrow table, a dict of columns or a list of dicts")


class FeatureStore(StatusMixin):
    """The feature store of one workspace: definitions from the registry, data in the configured stores."""

    def __init__(self, workspace: Any = None):
        if workspace is None:
            from forgeml.workspace import current

            workspace = current()
        self.workspace = workspace
        self.registry = FeatureRegistry(workspace)
        self._lock = threading.Lock()
        self._checked = 0.0
        self._generation: float | None = None
        self._entities: dict[str, Any] = {}
        self._views: dict[str, FeatureView] = {}
        self._odfvs: dict[str, OnDemandFeatureView] = {}
        self._plans: dict[tuple[Any, ...], Plan] = {}
        self._tile_plans: dict[str, Any] = {}
        self._writers: dict[str, Any] = {}

    # ------------------------------------------------------------ stores
    @property
    def offline(self) -> Any:
        """The offline store."""
        return self.workspace.offline_store

    @property
    def online(self) -> Any:
        """The online store."""
        return self.workspace.online_store

    @property
    def vectors(self) -> Any:
        """The vector store."""
        return self.workspace.vector_store

    # ------------------------------------------------------------ definitions
    def apply(self, objects: Iterable[Any]) -> list[Change]:
        """Register definitions; breaking changes get a new version, reported in the returned changes."""
        changes = self.registry.apply(list(objects))
        self.refresh(force=True)
        return changes

    def plan(self, objects: Iterable[Any]) -> list[Change]:
        """Return what apply would change, without changing anything."""
        return self.registry.plan(list(objects))

    def refresh(self, force: bool = False) -> None:
        """Reload definitions when the registry changed (checked at most every REFRESH_S seconds)."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_S:
            return
        with self._lock:
            self._checked = now
            generation = self.registry.generation()
            if force or generation != self._generation:
                self._entities, self._views, self._odfvs = self.registry.load_all()
                self._plans.clear()
                self._generation = generation

    def get_feature_view(self, name: str) -> FeatureView:
        """Return a stored feature view by name."""
        self.refresh()
        if name not in self._views:
            self.refresh(force=True)
            if name not in self._views:
                raise unknown_name("feature view", name, self._views)
        return self._views[name]

    def list_feature_views(self) -> list[FeatureView]:
        """Return every feature view."""
        self.refresh()
        return list(self._views.values())

    def _plan(self, features: Sequence[str], full_feature_names: bool) -> Plan:
        self.refresh()
        key = (tuple(features), full_feature_names)
        plan = self._plans.get(key)
        if plan is None:
            try:
                plan = make_plan(features, self._views, self._odfvs, full_feature_names)
            except NotFoundError:
                self.refresh(force=True)  # maybe applied by another process a moment ago
                plan = make_plan(features, self._views, self._odfvs, full_feature_names)
            self._plans[key] = plan
        return plan

    # ------------------------------------------------------------ offline retrieval
    def get_historical_features(self, entity_df: Any, features: Sequence[str], full_feature_names: bool = False,
                                timestamp_field: str = "event_timestamp") -> Any:
        """Return entity_df with each feature's value as of each row's time (null outside TTL); rows kept in order.

        A pandas DataFrame in gives a DataFrame out; an Arrow table gives an Arrow table.
        """
        import pyarrow as pa

        from forgeml.features.transform import run_on_demand, view_relation

        as_pandas = not isinstance(entity_df, pa.Table)
        table = _to_arrow(entity_df, "entity_df")
        plan = self._plan(features, full_feature_names)
        if timestamp_field not in table.column_names:
            raise ValidationError(f"entity_df has no {timestamp_field!r} column; add each row's event time "
                                  f"(or pass timestamp_field=)")
        requests = []
        for part in plan.parts:
            view = part.view
            for key in view.join_keys:
                if key not in table.column_names:
                    raise ValidationError(f"entity_df lacks join key column {key!r} needed by view {view.name!r}; "
                                          f"columns: {', '.join(table.column_names)}")
            clash = [o for o in part.outputs if o in table.column_names]
            if clash:
                raise ValidationError(f"entity_df already has a column {clash[0]!r}; rename it or pass "
                                      f"full_feature_names=True")
            if view.windowed:
                continue
            requests.append(FeatureRequest(view.name, view_relation(view, self.offline, self.workspace.root), view.join_keys,
                                           tuple(part.features), tuple(part.outputs), view.timestamp_field,
                                           view.ttl))
        result = self.offline.point_in_time_join(table, requests, timestamp_field)
        result = self._append_windows(result, plan, timestamp_field)
        result = self._conform_outputs(result, plan)
        for od in plan.on_demand:
            inputs = self._on_demand_inputs(od.view, result, plan)
            computed = run_on_demand(od.view, inputs, self.offline)
            for feature, out in zip(od.features, od.outputs):
                result = result.append_column(out, computed.column(feature))
        hidden = [o for p in plan.parts for o, r in zip(p.outputs, p.returned) if not r]
        if hidden:
            result = result.drop_columns(hidden)
        return result.to_pandas() if as_pandas else result

    def _append_windows(self, result: Any, plan: Plan, timestamp_field: str) -> Any:
        """Append the window aggregations of windowed views, computed as of each row's time."""
        windowed = [p for p in plan.parts if p.view.windowed]
        if not windowed:
            return result
        from forgeml.features.window_offline import historical_windows
        from forgeml.times import timestamp_micros

        micros = timestamp_micros(result.column(timestamp_field), f"entity_df column {timestamp_field!r}")
        for part in windowed:
            computed = historical_windows(part.view, part.features, result, micros, self.offline, self.workspace.root)
            for feature, out in zip(part.features, part.outputs):
                result = result.append_column(out, computed.column(feature))
        return result

    def _conform_outputs(self, result: Any, plan: Plan) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        from forgeml.features.definitions import arrow_type

        for part in plan.parts:
            for feature, out in zip(part.features, part.outputs):
                target = arrow_type(part.view.feature(feature).dtype)
                col = result.column(out)
                if col.type != target:
                    try:
                        col = pc.cast(col, target, safe=True)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                        raise ValidationError(
                            f"feature {part.view.name}:{feature} is declared {part.view.feature(feature).dtype} "
                            f"but its source holds {col.type}; fix the source or the declared dtype ({e})") from e
                    result = result.set_column(result.column_names.index(out), out, col)
        return result

    def _on_demand_inputs(self, odfv: OnDemandFeatureView, result: Any, plan: Plan) -> Any:
        import pyarrow as pa

        columns = {}
        for name in odfv.request_fields:
            if name not in result.column_names:
                raise ValidationError(f"on-demand view {odfv.name!r} needs request column {name!r}; add it to the "
                                      f"entity rows")
            columns[name] = result.column(name)
        for part in plan.parts:
            if part.view.name in odfv.source_views:
                for feature, out in zip(part.features, part.outputs):
                    columns[feature] = result.column(out)
        return pa.table(columns)

    # ------------------------------------------------------------ online retrieval
    def get_online_features(self, entity_rows: Any, features: Sequence[str],
                            full_feature_names: bool = False) -> OnlineFeatures:
        """Return the latest value of each feature per entity row (None when absent or older than TTL)."""
        plan = self._plan(features, full_feature_names)
        rows = _entity_rows(entity_rows)
        now_us = time.time() * 1e6
        online = self.online
        values: dict[str, list[Any]] = {}
        event_us: dict[str, list[int | None]] = {}
        entities: dict[str, list[Any]] = {}
        for part in plan.parts:
            view = part.view
            join_keys = view.join_keys
            try:
                if len(join_keys) == 1:
                    key = join_keys[0]
                    keys = [(row[key],) for row in rows]
                else:
                    keys = [tuple(row[k] for k in join_keys) for row in rows]
            except KeyError as e:
                raise ValidationError(f"entity rows lack join key {e.args[0]!r} needed by view {view.name!r}") from None
            for k in join_keys:
                if k not in entities:
                    entities[k] = [row[k] for row in rows]
            if view.windowed:
                cols, ts_col = self._read_windows(view, keys, part.features, int(now_us))
            else:
                cols, ts_col = _latest_values(online.read_rows(view.name, keys), part.features, view.ttl, now_us)
            instants = part.instants
            if instants is None:
                instants = part.instants = [j for j, f in enumerate(part.features)
                                            if view.feature(f).dtype == "timestamp"]
            for j in instants:  # stored as epoch µs
                cols[j] = [None if v is None else _datetime(v) for v in cols[j]]
            for j, out in enumerate(part.outputs):
                values[out] = cols[j]
                event_us[out] = ts_col
        for od in plan.on_demand:
            self._online_on_demand(od, rows, values, event_us, plan)
        return OnlineFeatures(entities, values, event_us, plan.order)

    def _read_windows(self, view: FeatureView, keys: list[tuple[Any, ...]], features: list[str],
                      now_us: int) -> tuple[list[list[Any]], list[int | None]]:
        from forgeml.features.window_online import read_window_rows

        return read_window_rows(view, self.tile_plan(view), self.online, keys, features, now_us)

    def tile_plan(self, view: FeatureView) -> Any:
        """Return the compiled tile plan of a window view (made once per definition)."""
        from forgeml.features.tiles import TilePlan

        held = self._tile_plans.get(view.name)
        if held is None or held.view is not view:
            held = self._tile_plans[view.name] = TilePlan.of(view)
        return held

    def _online_on_demand(self, od: Any, rows: list[dict[str, Any]], values: dict[str, list[Any]],
                          event_us: dict[str, list[int | None]], plan: Plan) -> None:
        import pyarrow as pa

        from forgeml.features.definitions import arrow_type
        from forgeml.features.transform import run_on_demand

        columns: dict[str, Any] = {}
        for f in (f for s in od.view.sources if not isinstance(s, FeatureView) for f in s.schema):
            if any(f.name not in row for row in rows):
                raise ValidationError(f"on-demand view {od.view.name!r} needs request value {f.name!r} in every "
                                      f"entity row")
            columns[f.name] = pa.array([row[f.name] for row in rows], arrow_type(f.dtype))
        for part in plan.parts:
            if part.view.name in od.view.source_views:
                for feature, out in zip(part.features, part.outputs):
                    columns[feature] = pa.array(values[out], arrow_type(part.view.feature(feature).dtype))
        computed = run_on_demand(od.view, pa.table(columns), self.offline)
        for feature, out in zip(od.features, od.outputs):
            values[out] = computed.column(feature).to_pylist()

    # ------------------------------------------------------------ streaming
    def push(self, view: str, rows: Any, to: str = "online_and_offline", bad_rows: str = "refuse") -> int:
        """Transform rows once, then write them to the online store and append them to the offline store.

        For a window view, ``bad_rows="dead_letter"`` sets rows that cannot be cast to its schema aside
        in the view's dead letters (with the reason) and applies the rest; the default refuses the push.
        """
        if to not in ("online_and_offline", "online", "offline"):
            raise ValidationError(f"push(to=...) must be 'online_and_offline', 'online' or 'offline', got {to!r}")
        if bad_rows not in ("refuse", "dead_letter"):
            raise ValidationError(f"push(bad_rows=...) must be 'refuse' or 'dead_letter', got {bad_rows!r}")
        from forgeml.auth.service import require

        require("features.push", workspace=self.workspace, subject=f"features/{view}")
        fv = self.get_feature_view(view)
        if not isinstance(fv.source, PushSource):
            raise ValidationError(f"view {view!r} reads from {fv.source.label}; push only to views whose source is a "
                                  f"PushSource")
        from forgeml.features.transform import transform_pushed

        raw = _to_arrow(rows, "pushed rows")
        if raw.num_rows == 0:
            return 0
        if fv.windowed:
            return self._push_events(fv, raw, to, bad_rows)
        if bad_rows != "refuse":
            raise ValidationError(f"view {view!r} has no aggregations: bad_rows='dead_letter' applies to window views")
        self._refuse_future_rows(fv, raw)
        table = transform_pushed(fv, raw, self.offline)
        self._refuse_future_rows(fv, table)
        if to != "online":
            self.offline.write(fv.name, table, fv.timestamp_field)
        if to != "offline" and fv.online:
            self._write_online(fv, table)
        self._record_write(fv, table, pushed=table.num_rows)
        return table.num_rows

    def _refuse_future_rows(self, fv: FeatureView, raw: Any) -> None:
        """Refuse a push holding an event time beyond now plus the configured clock skew."""
        latest = latest_event_time(fv, raw)
        if latest is None:
            return
        limit, skew = future_limit(self.workspace)
        if latest > limit:
            raise ValidationError(f"push to {fv.name!r}: event time {latest.isoformat()} is more than {skew:g}s in "
                                  f"the future (it would pin the online value); fix the clock or the timestamps, "
                                  "or raise [features].max_future_skew_s")

    def publish(self, stream: str, rows: Any) -> int:
        """Append events to a stream declared in plugins.toml; its stream processor applies them."""
        table = _to_arrow(rows, "published rows")
        if table.num_rows == 0:
            return 0
        count = self.workspace.stream(stream).publish(table)
        if count != table.num_rows:
            raise StorageError(f"stream {stream!r} reported {count} records appended for {table.num_rows} rows")
        return count

    def _push_events(self, fv: FeatureView, raw: Any, to: str, bad_rows: str) -> int:
        """Append pushed events offline and fold them into the view's online tiles."""
        from forgeml.features.window_online import WindowWriter, conform_events

        where = f"push to {fv.name!r}"
        if bad_rows == "dead_letter":
            from forgeml.features.dead_letters import DeadLetters, split_castable

            events, dead = split_castable(fv, raw, where)
            self._refuse_future_rows(fv, events if events is not None else raw.slice(0, 0))
            if dead:
                DeadLetters(self.workspace, fv.name).write("push", dead)
            if events is None:
                return 0
        else:
            events = conform_events(fv, raw, where)
            self._refuse_future_rows(fv, events)  # after the cast: text times are read as times too
        if to != "online":
            self.offline.write(fv.name, events, fv.timestamp_field)
        if to != "offline" and fv.online:
            writer = self._writers.get(fv.name)
            if writer is None or writer.view is not fv:
                writer = self._writers[fv.name] = WindowWriter(fv, self.online)
            writer.apply(events)
        self._record_write(fv, events, pushed=events.num_rows)
        return events.num_rows

    def _write_online(self, fv: FeatureView, table: Any) -> int:
        written = self.online.write(fv.name, table, fv.join_keys, fv.timestamp_field)
        for feature in fv.embedding_features:
            self.vectors.upsert(f"{fv.name}__{feature.name}", table, feature.name, fv.join_keys)
        return written

    # ------------------------------------------------------------ materialization
    def materialize(self, start: Any = None, end: Any = None, views: Sequence[str] | None = None,
                    progress: Callable[[str, int, int], None] | None = None,
                    batch_rows: int = 100_000) -> list[dict[str, Any]]:
        """Copy each view's newest value per entity in [start, end) online; start defaults to its watermark."""
        from forgeml.features.materialize import materialize_views

        self.refresh(force=True)
        chosen = [self.get_feature_view(v) for v in views] if views else [
            v for v in self._views.values() if v.online and not v.windowed]
        windowed = [v for v in chosen if v.windowed]
        if windowed:
            raise ValidationError(f"view {windowed[0].name!r} holds window aggregations; rebuild its online state "
                                  f"with `forgeml features backfill {windowed[0].name}`")
        return materialize_views(self, chosen, start, end, progress, batch_rows)

    def backfill(self, view: str) -> dict[str, Any]:
        """Rebuild a window view's online tiles from its offline events."""
        from forgeml.features.streaming import backfill

        return backfill(self, self.get_feature_view(view))

    def compact(self, view: str, min_files: int = 2) -> dict[str, Any]:
        """Rewrite a view's small offline files (one per push or stream batch) into one file per date."""
        from dataclasses import asdict

        if isinstance(min_files, bool) or not isinstance(min_files, int) or min_files < 1:
            raise ValidationError(f"min_files must be a whole number of at least 1, got {min_files!r}")
        fv = self.get_feature_view(view)
        compact = getattr(self.offline, "compact", None)
        if compact is None:
            raise ValidationError(f"the offline store ({type(self.offline).__name__}) cannot compact tables")
        if not self.offline.has_table(fv.name):
            raise ValidationError(f"view {view!r} has no offline rows to compact")
        return asdict(compact(fv.name, min_files=min_files))

    # ------------------------------------------------------------ embeddings
    def nearest(self, view: str, vector: Sequence[float], k: int = 10, filter: str | None = None,
                feature: str | None = None) -> Any:
        """Return the k entities of a view whose embedding is nearest to vector (Arrow table with _distance)."""
        fv = self.get_feature_view(view)
        embeddings = fv.embedding_features
        if not embeddings:
            raise ValidationError(f"view {view!r} has no embedding feature; declare one with Feature(name, "
                                  f"Embedding(dim))")
        chosen = fv.feature(feature) if feature else embeddings[0]
        from forgeml.features.definitions import embedding_dim

        dim = embedding_dim(chosen.dtype)
        if len(vector) != dim:
            raise ValidationError(f"nearest({view!r}): the query vector has {len(vector)} dimensions, "
                                  f"{view}:{chosen.name} has {dim}")
        return self.vectors.search(f"{fv.name}__{chosen.name}", vector, k, filter=filter, vector_column=chosen.name)

    # ------------------------------------------------------------ lineage
    def record_lineage(self, src_kind: str, src: str, dst_kind: str, dst: str) -> None:
        """Record that src feeds dst in the lineage graph."""
        self.registry.record_lineage(src_kind, src, dst_kind, dst)

    def lineage(self, kind: str, name: str) -> dict[str, list[dict[str, str]]]:
        """Return every edge upstream and downstream of a node."""
        return self.registry.lineage(kind, name)


def _latest_values(stored: list[Any], features: list[str], ttl: float | None,
                   now_us: float) -> tuple[list[list[Any]], list[int | None]]:
    if ttl is not None:
        ttl_us = ttl * 1e6
        stored = [None if hit is None or now_us - hit[0] > ttl_us else hit for hit in stored]
    # one comprehension per feature: several times faster than filling columns cell by cell
    ts_col: list[int | None] = [None if hit is None else hit[0] for hit in stored]
    cols = [[None if hit is None else hit[1].get(feature) for hit in stored] for feature in features]
    return cols, ts_col


def _datetime(micros: int) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _entity_rows(entity_rows: Any) -> list[dict[str, Any]]:
    if isinstance(entity_rows, list):
        return entity_rows
    if isinstance(entity_rows, Mapping):
        names = list(entity_rows)
        return [dict(zip(names, vals)) for vals in zip(*(entity_rows[n] for n in names))]
    if hasattr(entity_rows, "to_pylist"):
        return entity_rows.to_pylist()
    if hasattr(entity_rows, "to_dict"):
        return entity_rows.to_dict("records")
    raise ValidationError("entity_rows must be a list of dicts, a dict of columns, a DataFrame or an Arrow table")


_stores: weakref.WeakKeyDictionary[Any, FeatureStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def store_for(workspace: Any = None) -> FeatureStore:
    """Return the FeatureStore of a workspace (default: the current one), made once per workspace."""
    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    with _stores_lock:
        store = _stores.get(workspace)
        if store is None:
            store = _stores[workspace] = FeatureStore(workspace)
        return store


def future_limit(workspace: Any) -> tuple[Any, float]:
    """Return the latest event time a write may carry (now plus [features].max_future_skew_s) and the skew."""
    import datetime as dt

    skew = workspace.config.section("features").max_future_skew_s
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew), skew


def latest_event_time(fv: FeatureView, table: Any) -> Any:
    """Return the latest event time in a table as an aware datetime (None when it has none to read)."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.compute as pc

    column = fv.timestamp_field
    if column not in table.column_names or not pa.types.is_timestamp(table.schema.field(column).type):
        return None  # conform() reports a missing or mistyped timestamp column with its own message
    latest = pc.max(table.column(column)).as_py()
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=dt.UTC)
    return latest

"""Freshness: each view's last update against its SLA, kept in the registry's features_state table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from forgeml.features import store as persisted


@dataclass
class ViewStatus:
    """One view's freshness: newest event time stored, last write, watermark, and whether it breaks its SLA."""

    view: str
    version: int
    freshness_sla_s: float | None
    last_event: datetime | None
    last_write: datetime | None
    watermark: datetime | None
    age_s: float | None
    stale: bool
    rows_materialized: int
    rows_pushed: int

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON-ready values."""
        out = dict(self.__dict__)
        for key in ("last_event", "last_write", "watermark"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def _dt(micros: int | None) -> datetime | None:
    return None if micros is None else datetime.fromtimestamp(micros / 1e6, tz=UTC)


class StatusMixin:
    """Bookkeeping of writes and the freshness report; mixed into FeatureStore."""

    registry: Any

    def watermark_us(self, view: str) -> int | None:
        """Return the end of the last materialized window of a view (epoch µs), or None."""
        row = persisted.view_state(self.registry.store, view)
        return row["watermark_us"] if row else None

    def _record_write(self, view: Any, table: Any, pushed: int = 0, materialized: int = 0,
                      watermark_us: int | None = None) -> None:
        import pyarrow.compute as pc

        newest = None
        if table.num_rows:
            newest = pc.max(pc.cast(table.column(view.timestamp_field), "int64")).as_py()
        if persisted.bump_view_state(self.registry.store, view.name, newest, pushed, materialized, watermark_us,
                                     time.time()):
            return
        # the view's first write: read, combine and write in one serialised transaction, as another
        # process may be writing its first row at the same time
        with self.registry.store.transaction() as tx:
            held = persisted.view_state(tx, view.name)
            if held is None:
                persisted.put_view_state(tx, view.name, {
                    "watermark_us": watermark_us, "last_event_us": newest, "last_write_at": time.time(),
                    "rows_materialized": materialized, "rows_pushed": pushed}, new=True)
                return
            events = [v for v in (held["last_event_us"], newest) if v is not None]
            persisted.put_view_state(tx, view.name, {
                "watermark_us": held["watermark_us"] if watermark_us is None else watermark_us,
                "last_event_us": max(events) if events else None, "last_write_at": time.time(),
                "rows_materialized": held["rows_materialized"] + materialized,
                "rows_pushed": held["rows_pushed"] + pushed}, new=False)

    def status(self, now: datetime | None = None) -> list[ViewStatus]:
        """Return every view's freshness; a view with an SLA is stale when its newest value is older than it."""
        self.refresh(force=True)  # type: ignore[attr-defined]
        now_s = (now or datetime.now(UTC)).timestamp()
        state = persisted.all_view_states(self.registry.store)
        out = []
        for item in self.registry.list("view"):
            name, spec = item["name"], item["spec"]
            row = state.get(name, {})
            last_event = row.get("last_event_us")
            age = None if last_event is None else now_s - last_event / 1e6
            sla = spec.get("freshness_sla")
            stale = sla is not None and (age is None or age > sla)
            write_at = row.get("last_write_at")
            out.append(ViewStatus(
                view=name, version=item["version"], freshness_sla_s=sla, last_event=_dt(last_event),
                last_write=None if write_at is None else datetime.fromtimestamp(write_at, tz=UTC),
                watermark=_dt(row.get("watermark_us")), age_s=age, stale=stale,
                rows_materialized=row.get("rows_materialized", 0), rows_pushed=row.get("rows_pushed", 0)))
        return out

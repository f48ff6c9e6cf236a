"""Freshness: each view's last update against its SLA, kept in the registry's features_state table."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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
        rows = self.registry.store.query("SELECT watermark_us FROM features_state WHERE view = ?", (view,))
        return rows[0]["watermark_us"] if rows else None

    def _record_write(self, view: Any, table: Any, pushed: int = 0, materialized: int = 0,
                      watermark_us: int | None = None) -> None:
        import pyarrow.compute as pc

        newest = None
        if table.num_rows:
            newest = pc.max(pc.cast(table.column(view.timestamp_field), "int64")).as_py()
        # read, combine and write in one serialised transaction: portable, and no write is lost to a race
        with self.registry.store.transaction() as tx:
            rows = tx.query("SELECT watermark_us, last_event_us, rows_materialized, rows_pushed FROM features_state"
                            " WHERE view = ?", (view.name,))
            if not rows:
                tx.execute("INSERT INTO features_state (view, watermark_us, last_event_us, last_write_at,"
                           " rows_materialized, rows_pushed) VALUES (?, ?, ?, ?, ?, ?)",
                           (view.name, watermark_us, newest, time.time(), materialized, pushed))
                return
            held = rows[0]
            events = [v for v in (held["last_event_us"], newest) if v is not None]
            tx.execute("UPDATE features_state SET watermark_us = ?, last_event_us = ?, last_write_at = ?,"
                       " rows_materialized = ?, rows_pushed = ? WHERE view = ?",
                       (held["watermark_us"] if watermark_us is None else watermark_us,
                        max(events) if events else None, time.time(), held["rows_materialized"] + materialized,
                        held["rows_pushed"] + pushed, view.name))

    def status(self, now: datetime | None = None) -> list[ViewStatus]:
        """Return every view's freshness; a view with an SLA is stale when its newest value is older than it."""
        self.refresh(force=True)  # type: ignore[attr-defined]
        now_s = (now or datetime.now(UTC)).timestamp()
        state = {r["view"]: r for r in self.registry.store.query("SELECT * FROM features_state")}
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

"""Retention for stream data: old pushed and streamed events in the offline store, idle window state online.

Events of views fed by pushes or streams (and of window views) land in the offline store by date;
``stream_events_days`` removes whole days older than the limit. Window views keep one tile-state
document per entity online; tiles older than the longest window are already dropped as events
arrive, so what lingers is the state of entities that stopped sending events: ``window_state_days``
removes the state of entities no event has updated for that long.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DAY_S = 86400.0


def _stream_views(ws: Any) -> list[Any]:
    """Return the feature views whose rows are events pushed or streamed in, or window aggregations."""
    if not ws.metadata.applied_migrations("features"):
        return []
    from forgeml.features.definitions import PushSource, StreamSource
    from forgeml.features.registry import FeatureRegistry

    views = FeatureRegistry(ws).load_all()[1].values()
    return [v for v in views if v.windowed or isinstance(v.source, PushSource | StreamSource)]


def expire_stream_data(ws: Any, now: float, events_days: int, state_days: int, report: Any) -> None:
    """Remove event days and idle window states past their limits (only list them on a dry run)."""
    from forgeml.features.tiles import state_view

    views = _stream_views(ws)
    if not views:
        return
    if events_days:
        offline = ws.offline_store
        before = dt.datetime.fromtimestamp(now - events_days * DAY_S, dt.UTC).date().isoformat()
        if not hasattr(offline, "expire"):
            report.unsupported.append(f"offline store {type(offline).__name__} cannot expire old events")
        else:
            for v in views:
                days = offline.expire(v.name, before, dry_run=report.dry_run)
                report.stream_event_days += [f"{v.name}/date={d}" for d in days]
    windowed = [v for v in views if v.windowed]
    if state_days and windowed:
        online = ws.online_store
        cutoff_us = int((now - state_days * DAY_S) * 1_000_000)
        if not hasattr(online, "expire"):
            report.unsupported.append(f"online store {type(online).__name__} cannot expire idle window state")
            return
        for v in windowed:
            n = online.expire(state_view(v.name), cutoff_us, dry_run=report.dry_run)
            if n:
                report.window_states[v.name] = n


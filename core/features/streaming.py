"""Stream processing for window views: poll a consumer group, log, apply idempotently, commit; and backfill.

A batch goes through three steps: poll records; append them to the offline store with their stream
positions (only for streams without a batch source, whose history must come from somewhere) and, in
the meantime, fold them into the entities' tiles, which remember the last offset applied per
partition, and write the tiles; once both are done, commit the offsets. A crash anywhere replays the uncommitted
records: the offline copy is de-duplicated by position when read, and the tiles skip what they have
applied, so after a kill -9 nothing is counted twice and nothing is missed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeml.buffering import Beside
from forgeml.errors import ValidationError
from forgeml.features.dead_letters import DeadLetters, split_castable
from forgeml.features.definitions import FeatureView, StreamSource
from forgeml.features.window_online import OFFSET, PARTITION, ApplyCounts, WindowWriter, conform_events

log = logging.getLogger("forgeml.features")
OFFLINE_WRITE_WAIT_S = 600.0
BESIDE_FROM = 2_000  # events from which the offline append runs in a thread of its own
# Most records applied and committed at once. A poll returns what has arrived, so a small trickle is applied
# as it comes; under a backlog, each commit (tiles of every touched entity, a Parquet file) serves more events.
BATCH = 50_000


@dataclass
class StreamStatus:
    """What a view's stream processor has done, kept in ``.forgeml/streams/VIEW.json``."""

    view: str
    stream: str
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    future: int = 0  # events beyond now + [features].max_future_skew_s, set aside (logged, never applied)
    dead_letters: int = 0  # records that could not be cast to the view's schema, kept in VIEW.dead.jsonl
    batches: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    updated_at: float = 0.0
    pid: int = 0


def status_path(workspace: Any, view: str) -> Path:
    """Return the file holding a view's stream status."""
    return workspace.dot / "streams" / f"{view}.json"


def read_status(workspace: Any, view: str, stream: str = "") -> StreamStatus:
    """Return a view's stream status (zeros when its processor never ran)."""
    path = status_path(workspace, view)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return StreamStatus(view, stream)
    return StreamStatus(**{k: v for k, v in data.items() if k in StreamStatus.__dataclass_fields__})


def _write_status(workspace: Any, status: StreamStatus) -> None:
    path = status_path(workspace, status.view)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(status)))
    os.replace(tmp, path)


def stream_views(store: Any, names: Sequence[str] = ()) -> list[FeatureView]:
    """Return the named views (default: every view fed by a StreamSource), checking each is one."""
    views = [store.get_feature_view(n) for n in names] if names else [
        v for v in store.list_feature_views() if isinstance(v.source, StreamSource)]
    for view in views:
        if not isinstance(view.source, StreamSource):
            raise ValidationError(f"view {view.name!r} is not fed by a stream; give it source=StreamSource(NAME)")
    return views


class StreamProcessor:
    """Consumes one window view's stream into its online tiles (the view's single writer)."""

    def __init__(self, store: Any, view: FeatureView, batch_size: int = BATCH, poll_timeout_s: float = 0.5):
        self.store = store
        self.view = view
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.stream = store.workspace.stream(view.source.name)
        self.consumer = self.stream.consumer(view.name)
        self.writer = WindowWriter(view, store.online, cache=True)
        self.log_offline = view.source.batch_source is None
        self.status = read_status(store.workspace, view.name, view.source.name)
        self.dead = DeadLetters(store.workspace, view.name)
        self.status.pid = os.getpid()
        self.compact_after = int(store.workspace.config.section("features").compact_after_files or 0)
        self.files_added = 0
        self.compactor: threading.Thread | None = None

    def step(self) -> ApplyCounts | None:
        """Process one polled batch; return its counts, or None when nothing arrived in time."""
        records = self.consumer.poll(self.batch_size, self.poll_timeout_s)
        if records.num_rows == 0:
            return None
        source = self.view.source.name
        polled, dead = split_castable(self.view, records, f"stream {source!r}")
        if dead:
            written = self.dead.write(source, dead)
            self.status.dead_letters += written
            log.warning("stream %r -> view %r: %d record(s) could not be cast and went to %s (first: %s)",
                        source, self.view.name, len(dead), self.dead.path, dead[0][1])
        counts = ApplyCounts()
        future = 0
        if polled is not None:
            events, future = self._set_aside_future(polled)
            if self.log_offline and events.num_rows >= BESIDE_FROM:
                # a big batch's Parquet append (Arrow, mostly without the GIL) runs beside the fold into the
                # tiles: the two are independent, and both are done before the commit
                offline = self.store.offline
                logged = Beside(lambda: offline.write(self.view.name, events, self.view.timestamp_field),
                                "forgeml-stream-offline-log")
                counts = self.writer.apply(events)
                logged.result(OFFLINE_WRITE_WAIT_S, f"view {self.view.name!r}: the offline append")
                self._maybe_compact()
            elif self.log_offline:  # a few events: a thread would cost more than it saves
                self.store.offline.write(self.view.name, events, self.view.timestamp_field)
                self._maybe_compact()
                counts = self.writer.apply(events)
            else:
                counts = self.writer.apply(events)
        # positions come from every polled record: the set-aside and dead-lettered ones are committed too
        grouped = records.select([PARTITION, OFFSET]).group_by(PARTITION).aggregate([(OFFSET, "max")])
        positions = dict(zip(grouped.column(PARTITION).to_pylist(), grouped.column(f"{OFFSET}_max").to_pylist()))
        self.consumer.commit(positions)
        status = self.status
        status.applied += counts.applied
        status.duplicates += counts.duplicates
        status.late += counts.late
        status.future += future
        status.batches += 1
        status.positions.update(positions)
        status.updated_at = time.time()
        _write_status(self.store.workspace, status)
        return counts

    def _set_aside_future(self, events: Any) -> tuple[Any, int]:
        """Drop events beyond now plus the clock skew a push allows, as a push refuses them: applied, one
        would pin the online value. Dropped rather than refused, so one bad clock cannot stall the stream;
        they are counted in the status and logged, and committed with the rest."""
        import pyarrow.compute as pc

        from forgeml.features.service import future_limit, latest_event_time

        latest = latest_event_time(self.view, events)
        limit, skew = future_limit(self.store.workspace)
        if latest is None or latest <= limit:
            return events, 0
        column = events.column(self.view.timestamp_field)
        keep = pc.less_equal(column, pc.cast(limit, column.type))
        kept = events.filter(keep)
        dropped = events.num_rows - kept.num_rows
        log.warning("stream %r -> view %r: set aside %d event(s) more than %gs in the future (latest %s); "
                    "fix the producer's clock or raise [features].max_future_skew_s",
                    self.view.source.name, self.view.name, dropped, skew, latest.isoformat())
        return kept, dropped

    def _maybe_compact(self) -> None:
        """Compact the view's offline table in a background thread once enough batch files have piled up."""
        self.files_added += 1
        if not self.compact_after or self.files_added < self.compact_after or not hasattr(self.store.offline, "compact"):
            return
        if self.compactor is not None and self.compactor.is_alive():
            return
        self.files_added = 0

        def run() -> None:
            try:
                done = self.store.offline.compact(self.view.name)
                log.info("view %r: compacted offline files %d -> %d", self.view.name, done.files_before,
                         done.files_after)
            except Exception as e:  # a failed compaction loses nothing; the stream goes on and tries again later
                log.warning("view %r: offline compaction failed: %s", self.view.name, e)

        self.compactor = threading.Thread(target=run, name=f"compact-{self.view.name}", daemon=True)
        self.compactor.start()

    def close(self) -> None:
        """Close the consumer (uncommitted records stay due) and wait for a running compaction."""
        self.consumer.close()
        if self.compactor is not None:
            self.compactor.join(timeout=600)


def run_streams(store: Any, names: Sequence[str] = (), until_idle: bool = False, batch_size: int = BATCH,
                poll_timeout_s: float = 0.5, should_stop: Callable[[], bool] = lambda: False,
                report: Callable[[StreamStatus], None] | None = None) -> list[StreamStatus]:
    """Run the views' stream processors round-robin until should_stop() (or, with until_idle, all are idle)."""
    views = stream_views(store, names)
    if not views:
        raise ValidationError("no view is fed by a stream; declare one with source=StreamSource(NAME) and apply it")
    processors = [StreamProcessor(store, v, batch_size, poll_timeout_s) for v in views]
    try:
        while not should_stop():
            busy = False
            for p in processors:
                if p.step() is not None:
                    busy = True
                    if report:
                        report(p.status)
            if until_idle and not busy:
                break
    finally:
        for p in processors:
            p.close()
    return [p.status for p in processors]


def backfill(store: Any, view: FeatureView, now_us: int | None = None, chunk_rows: int = 200_000) -> dict[str, Any]:
    """Rebuild a window view's online tiles from its offline events (those any window can still reach)."""
    from forgeml.features.aggregations import window_features
    from forgeml.features.definitions import arrow_type
    from forgeml.features.tiles import state_view
    from forgeml.features.window_offline import POSITION, event_relation
    from forgeml.sql import quote_ident

    if not view.windowed:
        raise ValidationError(f"view {view.name!r} has no aggregations; use materialize for it")
    now_us = now_us if now_us is not None else int(time.time() * 1_000_000)
    reach = max(w.window_us + w.hop_us for w in window_features(view.aggregations))
    since = now_us - reach - int((view.allowed_lateness or 0) * 1_000_000)
    offline = store.offline
    positions: dict[str, int] = {}
    if isinstance(view.source, StreamSource) and offline.has_table(view.name):
        part, off = (quote_ident(c) for c in POSITION)
        rows = offline.query(f"SELECT {part} AS p, max({off}) AS o FROM {offline.table_relation(view.name)} "
                             f"GROUP BY {part}")
        positions = dict(zip(rows.column("p").to_pylist(), rows.column("o").to_pylist()))
    store.online.delete_view(state_view(view.name))
    writer = WindowWriter(view, store.online, cache=True)
    relation = event_relation(view, offline, store.workspace.root)
    total = ApplyCounts()
    if relation is not None:
        ts = quote_ident(view.timestamp_field)
        events = offline.query(f"SELECT * FROM {relation} WHERE epoch_us(CAST({ts} AS TIMESTAMPTZ)) >= {since} "
                               f"ORDER BY {ts}")
        for start in range(0, events.num_rows, chunk_rows):
            chunk = conform_events(view, events.slice(start, chunk_rows), f"backfill {view.name!r}")
            total.add(writer.apply(chunk))
    writer.settle_positions(positions, [arrow_type(e.dtype) for e in view.entities for _ in e.join_keys])
    return {"view": view.name, "events": total.applied, "entities": len(writer.cache or {}), "positions": positions}


def supervise(root: Path, names: Sequence[str], batch_size: int, should_stop: Callable[[], bool],
              report: Callable[[str], None], max_backoff_s: float = 30.0) -> int:
    """Run the stream worker as a child process, restarting it with backoff when it dies; return its last code."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "forgeml.features.streaming", "--batch", str(batch_size), *names]
    env = {**os.environ, "FORGEML_HOME": str(root)}
    backoff = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv, env=env)
        while child.poll() is None:
            if should_stop():
                child.terminate()
                try:
                    return child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    return child.wait()
            time.sleep(0.2)
        if child.returncode == 0 or should_stop():
            return child.returncode
        if time.monotonic() - started > 60:
            backoff = 1.0  # it ran a good while: a fresh failure, not a crash loop
        report(f"stream worker exited with code {child.returncode}; restarting in {backoff:.0f}s "
               f"(it resumes from the committed offsets)")
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not should_stop():
            time.sleep(0.2)
        backoff = min(backoff * 2, max_backoff_s)


def main(argv: Sequence[str] | None = None) -> int:
    """The stream worker process: run the named views' processors until SIGTERM (exit 0) or an error."""
    import argparse
    import signal
    import sys

    from forgeml.errors import ForgeError
    from forgeml.features.service import store_for

    parser = argparse.ArgumentParser(prog="python -m forgeml.features.streaming")
    parser.add_argument("views", nargs="*")
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--until-idle", action="store_true")
    args = parser.parse_args(argv)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    try:
        run_streams(store_for(), args.views, until_idle=args.until_idle, batch_size=args.batch,
                    should_stop=lambda: bool(stopping))
    except ForgeError as e:
        print(f"forgeml stream worker: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

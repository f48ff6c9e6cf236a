"""Tracking persistence: every SQL statement on the tracking tables, parameterized, in one place."""

from __future__ import annotations

import json
import math
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from forgeml.errors import ConfigError, NotFoundError, ValidationError
from forgeml.tracking.records import ArtifactRecord, Run
from forgeml.tracking.schema import MIGRATION_SET, MIGRATIONS
from forgeml.tracking.settings import TrackingSettings
from forgeml.tracking.values import read_value
from forgeml.tracking.writer import MetricWriter, Point

RUN_COLUMNS = "id, name, experiment, status, start_time, end_time, parent_id, job_id, deleted, context"

_UPSERT_LATEST = (
    "INSERT INTO tracking_latest_metrics (run, key, value, step, ts) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (run, key) DO UPDATE SET value = excluded.value, step = excluded.step, ts = excluded.ts "
    "WHERE excluded.step > tracking_latest_metrics.step "
    "OR (excluded.step = tracking_latest_metrics.step AND excluded.ts >= tracking_latest_metrics.ts)"
)


_SNAPSHOT_TABLES = {"params": "tracking_params", "metrics": "tracking_latest_metrics", "tags": "tracking_tags"}


def numeric_shadow(value: Any) -> float | None:
    """Return a param's value as a number when it is one (for numeric comparison in search), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    return None if math.isnan(number) else number


def param_text(value: Any) -> str:
    """Return the text form a param is stored as."""
    return value if isinstance(value, str) else str(value)


def latest_of(points: Iterable[Point]) -> list[tuple[int, str, float, int, float]]:
    """Reduce points to the latest (highest step, then newest) per (run, key), as upsert rows."""
    best: dict[tuple[str, str], Point] = {}
    for p in points:
        k = (p[0], p[1])
        old = best.get(k)
        if old is None or p[2] > old[2] or (p[2] == old[2] and p[3] >= old[3]):
            best[k] = p
    return [(p[0], p[1], p[4], p[2], p[3]) for p in best.values()]


class TrackingStore:
    """The tracking tables of one workspace's metadata store, plus its metric writer."""

    def __init__(self, workspace: Any):
        self.workspace = workspace
        self.db = workspace.metadata_for(MIGRATION_SET, MIGRATIONS)
        try:
            self.settings: TrackingSettings = workspace.config.section("tracking")
        except ConfigError:  # the tracking plugin may be disabled: its section is then unknown
            self.settings = TrackingSettings()
        self.writer = MetricWriter(self.write_points, self.settings.flush_interval_s)
        self._seqs: dict[str, int] = {}

    # ------------------------------------------------------------ runs
    def insert_run(self, run: Run) -> int:
        """Insert a new run row with its params and tags; return its seq."""
        with self.db.transaction() as tx:
            seq = tx.execute(
                f"INSERT INTO tracking_runs ({RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
                (run.id, run.name, run.experiment, run.status, run.start_time, run.end_time, run.parent_id,
                 run.job_id, int(run.deleted), json.dumps(run.context, default=str)),
            ).scalar()
            self._params(tx, seq, run.params)
            self._tags(tx, seq, run.tags)
            self.refresh_snapshots(tx, [seq], ("params", "tags"))
        self._seqs[run.id] = seq
        return seq

    def seq(self, run_id: str) -> int:
        """Return the integer seq child tables use for a run id (cached: it never changes)."""
        seq = self._seqs.get(run_id)
        if seq is None:
            rows = self.db.query("SELECT seq FROM tracking_runs WHERE id = ?", (run_id,))
            if not rows:
                raise NotFoundError(f"run {run_id!r} does not exist; list runs with `forgeml runs ls`")
            seq = self._seqs[run_id] = rows[0]["seq"]
        return seq

    def update_run(self, run_id: str, **values: Any) -> None:
        """Set attribute columns of a run (status, end_time, name, context, job_id)."""
        allowed = {"status", "end_time", "name", "context", "job_id", "parent_id"}
        unknown = set(values) - allowed
        if unknown:
            raise ValidationError(f"cannot update run attribute(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "context" in values:
            values["context"] = json.dumps(values["context"], default=str)
        assignments = ", ".join(f"{k} = ?" for k in values)
        if self.db.execute(f"UPDATE tracking_runs SET {assignments} WHERE id = ?", (*values.values(), run_id)) == 0:
            raise NotFoundError(f"run {run_id!r} does not exist")

    def run_exists(self, run_id: str) -> bool:
        """Return whether a run with exactly this id exists."""
        return bool(self.db.query("SELECT 1 FROM tracking_runs WHERE id = ?", (run_id,)))

    def resolve_id(self, ref: str) -> str:
        """Return the full id for a run id or a unique prefix of one (at least 4 characters)."""
        ref = str(ref).strip()
        if self.run_exists(ref):
            return ref
        if len(ref) >= 4 and all(c in "0123456789abcdef" for c in ref.lower()):
            rows = self.db.query("SELECT id FROM tracking_runs WHERE id >= ? AND id < ? LIMIT 2",
                                 (ref.lower(), ref.lower() + "g"))
            if len(rows) == 1:
                return rows[0]["id"]
            if len(rows) > 1:
                raise ValidationError(f"run id prefix {ref!r} is ambiguous; give more characters")
        raise NotFoundError(f"run {ref!r} does not exist; list runs with `forgeml runs ls`")

    def get_run(self, ref: str) -> Run:
        """Return a run with its params, tags, latest metrics and inputs."""
        run_id = self.resolve_id(ref)
        row = self.db.query(f"SELECT seq, {RUN_COLUMNS} FROM tracking_runs WHERE id = ?", (run_id,))[0]
        run = self._run_from_row(row)
        seq = self._seqs.setdefault(run_id, row["seq"])
        run.params = {r["key"]: r["value"] for r in self.db.query(
            "SELECT key, value FROM tracking_params WHERE run = ? ORDER BY key", (seq,))}
        run.tags = {r["key"]: r["value"] for r in self.db.query(
            "SELECT key, value FROM tracking_tags WHERE run = ? ORDER BY key", (seq,))}
        run.metrics = {r["key"]: read_value(r["value"]) for r in self.db.query(
            "SELECT key, value FROM tracking_latest_metrics WHERE run = ? ORDER BY key", (seq,))}
        run.inputs = [{"kind": r["kind"], "ref": r["ref"]} for r in self.db.query(
            "SELECT kind, ref FROM tracking_inputs WHERE run = ? ORDER BY kind, ref", (seq,))]
        return run

    @staticmethod
    def _run_from_row(row: Mapping[str, Any]) -> Run:
        return Run(id=row["id"], name=row["name"], experiment=row["experiment"], status=row["status"],
                   start_time=row["start_time"], end_time=row["end_time"], parent_id=row["parent_id"],
                   job_id=row["job_id"], deleted=bool(row["deleted"]), context=json.loads(row["context"] or "{}"))

    def children(self, run_id: str) -> list[str]:
        """Return the ids of a run's direct child runs, oldest first."""
        rows = self.db.query("SELECT id FROM tracking_runs WHERE parent_id = ? ORDER BY start_time", (run_id,))
        return [r["id"] for r in rows]

    def set_deleted(self, run_ids: Sequence[str], deleted: bool) -> int:
        """Mark runs deleted (hidden from search) or restore them; return how many changed."""
        with self.db.transaction() as tx:
            n = 0
            for run_id in run_ids:
                n += tx.execute("UPDATE tracking_runs SET deleted = ?, deleted_at = ? WHERE id = ?",
                                (int(deleted), time.time() if deleted else None, run_id)).rowcount
        return n

    def purge(self, run_ids: Sequence[str]) -> int:
        """Delete runs and their child rows in one transaction; return how many runs went."""
        seqs = [self.seq(r) for r in run_ids]
        with self.db.transaction() as tx:
            for table in ("tracking_params", "tracking_tags", "tracking_metrics", "tracking_latest_metrics",
                          "tracking_artifacts", "tracking_inputs"):
                tx.executemany(f"DELETE FROM {table} WHERE run = ?", [(seq,) for seq in seqs])
            tx.executemany("DELETE FROM tracking_runs WHERE seq = ?", [(seq,) for seq in seqs])
        for run_id in run_ids:
            self._seqs.pop(run_id, None)
        return len(seqs)

    def experiments(self) -> list[dict[str, Any]]:
        """Return each experiment with its run count and newest start time."""
        return self.db.query(
            "SELECT experiment, COUNT(*) AS runs, MAX(start_time) AS last_start FROM tracking_runs "
            "WHERE deleted = 0 GROUP BY experiment ORDER BY experiment")

    def has_key(self, kind: str, key: str) -> bool:
        """Return whether any run has this param, metric or tag (kind: params, metrics or tags)."""
        return bool(self.db.query(f"SELECT 1 AS found FROM {_SNAPSHOT_TABLES[kind]} WHERE key = ? LIMIT 1", (key,)))

    def keys(self, kind: str) -> list[str]:
        """Return every param, metric or tag key any run has, sorted."""
        return [row["key"] for row in self.db.query(f"SELECT DISTINCT key FROM {_SNAPSHOT_TABLES[kind]} ORDER BY key")]

    # ------------------------------------------------------------ params, tags, inputs, artifacts
    @staticmethod
    def _params(tx: Any, seq: int, params: Mapping[str, Any]) -> None:
        if params:
            tx.executemany(
                "INSERT INTO tracking_params (run, key, value, num) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run, key) DO UPDATE SET value = excluded.value, num = excluded.num",
                [(seq, str(k), param_text(v), numeric_shadow(v)) for k, v in params.items()],
            )

    @staticmethod
    def _tags(tx: Any, seq: int, tags: Mapping[str, Any]) -> None:
        if tags:
            tx.executemany(
                "INSERT INTO tracking_tags (run, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (run, key) DO UPDATE SET value = excluded.value",
                [(seq, str(k), param_text(v)) for k, v in tags.items()],
            )

    @staticmethod
    def refresh_snapshots(tx: Any, seqs: Iterable[int], which: Iterable[str]) -> None:
        """Rewrite the runs' JSON snapshots of params, metrics and/or tags from their rows."""
        seqs = sorted(seqs)
        if not seqs:
            return
        marks = ", ".join("?" for _ in seqs)
        for kind in which:
            # built here, not by the database's JSON functions (which differ per database, print floats
            # with 15 digits and infinities as invalid JSON): a value read back must be the value logged
            snapshots: dict[int, dict[str, Any]] = {seq: {} for seq in seqs}
            for seq, key, value in tx.execute(f"SELECT run, key, value FROM {_SNAPSHOT_TABLES[kind]} "
                                              f"WHERE run IN ({marks}) ORDER BY run, key", seqs).fetchall():
                snapshots[seq][key] = read_value(value) if kind == "metrics" else value
            tx.executemany(f"UPDATE tracking_runs SET {kind}_json = ? WHERE seq = ?",
                           [(json.dumps(snapshot), seq) for seq, snapshot in snapshots.items()])

    def write_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Store params (a later value for the same key replaces the earlier one)."""
        seq = self.seq(run_id)
        with self.db.transaction() as tx:
            self._params(tx, seq, params)
            self.refresh_snapshots(tx, [seq], ("params",))

    def write_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Store tags."""
        seq = self.seq(run_id)
        with self.db.transaction() as tx:
            self._tags(tx, seq, tags)
            self.refresh_snapshots(tx, [seq], ("tags",))

    def add_inputs(self, run_id: str, inputs: Iterable[tuple[str, str]]) -> None:
        """Record references to what a run read: (kind, ref) such as ("dataset", "name@v3")."""
        seq, now = self.seq(run_id), time.time()
        with self.db.transaction() as tx:
            tx.insert_or_ignore("tracking_inputs", ("run", "kind", "ref", "created_at"),
                                [(seq, kind, ref, now) for kind, ref in inputs])

    def add_artifact(self, run_id: str, path: str, digest: str, size: int) -> ArtifactRecord:
        """Record a stored object under a path of the run (replacing an earlier one at that path)."""
        record = ArtifactRecord(run_id, path, digest, size, time.time())
        self.db.execute(
            "INSERT INTO tracking_artifacts (run, path, digest, size, created_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (run, path) DO UPDATE SET digest = excluded.digest, size = excluded.size, "
            "created_at = excluded.created_at",
            (self.seq(run_id), record.path, record.digest, record.size, record.created_at),
        )
        return record

    def remove_artifact(self, run_id: str, path: str) -> None:
        """Forget the artifact at a path of the run (its object stays until gc finds it unreferenced)."""
        self.db.execute("DELETE FROM tracking_artifacts WHERE run = ? AND path = ?", (self.seq(run_id), path))

    def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """Return a run's artifacts ordered by path."""
        rows = self.db.query("SELECT path, digest, size, created_at FROM tracking_artifacts "
                             "WHERE run = ? ORDER BY path", (self.seq(run_id),))
        return [ArtifactRecord(run_id=run_id, **r) for r in rows]

    # ------------------------------------------------------------ metrics
    def write_points(self, points: Sequence[Point]) -> None:
        """Append metric points (run seq, key, step, ts, value) and advance the latest values, in one transaction."""
        with self.db.transaction() as tx:
            tx.insert_rows("tracking_metrics", ("run", "key", "step", "ts", "value"), points)
            latest = latest_of(points)
            tx.executemany(_UPSERT_LATEST, latest)
            self.refresh_snapshots(tx, {row[0] for row in latest}, ("metrics",))

    def metric_history(self, run_id: str, key: str | None = None) -> list[tuple[str, int, float, float]]:
        """Return (key, step, ts, value) rows of a run, one key or all, ordered by key and step."""
        sql = "SELECT key, step, ts, value FROM tracking_metrics WHERE run = ?"
        params: tuple[Any, ...] = (self.seq(run_id),)
        if key is not None:
            sql += " AND key = ?"
            params += (key,)
        sql += " ORDER BY key, step, ts"
        return [(r["key"], r["step"], r["ts"], read_value(r["value"])) for r in self.db.query(sql, params)]

    def count_points(self, run_id: str, key: str | None = None) -> int:
        """Return how many metric points a run has stored (one key or all)."""
        sql = "SELECT COUNT(*) AS n FROM tracking_metrics WHERE run = ?"
        params: tuple[Any, ...] = (self.seq(run_id),)
        if key is not None:
            sql += " AND key = ?"
            params += (key,)
        return self.db.query(sql, params)[0]["n"]


_STORES: weakref.WeakKeyDictionary[Any, TrackingStore] = weakref.WeakKeyDictionary()


def tracking_store(workspace: Any) -> TrackingStore:
    """Return the workspace's tracking store, opened (and migrated) once per process."""
    store = _STORES.get(workspace)
    if store is None:
        store = _STORES.setdefault(workspace, TrackingStore(workspace))
    return store

"""Tracking persistence: every statement on the tracking tables, as SQLAlchemy Core expressions, in one place.

sqlalchemy is imported inside the methods: ``import forgeml`` must not load it. Two statements are not
built here: metric points go through the contract's bulk ``insert_rows`` (COPY on PostgreSQL), and a
run search runs the SQL that the search language's compiler (``forgeml.tracking.search``) writes.
"""

from __future__ import annotations

import functools
import json
import math
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from forgeml.errors import ConfigError, NotFoundError, ValidationError
from forgeml.tracking.records import RUNNING, ArtifactRecord, Run
from forgeml.tracking.schema import MIGRATION_SET, MIGRATIONS, tables
from forgeml.tracking.settings import TrackingSettings
from forgeml.tracking.values import read_value
from forgeml.tracking.writer import MetricWriter, Point

RUN_COLUMNS = ("id", "name", "experiment", "status", "start_time", "end_time", "parent_id", "job_id", "deleted",
               "context")
_SNAPSHOT_TABLES = {"params": "tracking_params", "metrics": "tracking_latest_metrics", "tags": "tracking_tags"}
_CHILD_TABLES = ("tracking_params", "tracking_tags", "tracking_metrics", "tracking_latest_metrics",
                 "tracking_artifacts", "tracking_inputs")
# a newer point (higher step, or the same step logged later) replaces the latest value, an older one not
_NEWER_POINT = ("excluded.step > tracking_latest_metrics.step"
                " OR (excluded.step = tracking_latest_metrics.step AND excluded.ts >= tracking_latest_metrics.ts)")


def _t(name: str) -> Any:
    return tables()[name]


# Statements on the paths every run lookup takes are built once with bind parameters: building a
# Core expression costs more than running it.
@functools.cache
def _seq_by_id() -> Any:
    import sqlalchemy as sa

    runs = _t("tracking_runs")
    return sa.select(runs.c.seq).where(runs.c.id == sa.bindparam("run_id"))


@functools.cache
def _run_by_id() -> Any:
    import sqlalchemy as sa

    runs = _t("tracking_runs")
    return sa.select(runs.c.seq, *(runs.c[c] for c in RUN_COLUMNS)).where(runs.c.id == sa.bindparam("run_id"))


@functools.cache
def _key_values_of(table: str) -> Any:
    import sqlalchemy as sa

    t = _t(table)
    return sa.select(t.c.key, t.c.value).where(t.c.run == sa.bindparam("seq")).order_by(t.c.key)


@functools.cache
def _insert_run() -> Any:
    import sqlalchemy as sa

    runs = _t("tracking_runs")
    return sa.insert(runs).returning(runs.c.seq)


@functools.cache
def _snapshot_rows(kind: str) -> Any:
    import sqlalchemy as sa

    t = _t(_SNAPSHOT_TABLES[kind])
    return (sa.select(t.c.run, t.c.key, t.c.value).where(t.c.run.in_(sa.bindparam("seqs", expanding=True)))
            .order_by(t.c.run, t.c.key))


@functools.cache
def _snapshot_update(kind: str) -> Any:
    import sqlalchemy as sa

    runs = _t("tracking_runs")
    return sa.update(runs).where(runs.c.seq == sa.bindparam("run_seq")).values(
        {f"{kind}_json": sa.bindparam("snapshot")})


@functools.cache
def _inputs_of() -> Any:
    import sqlalchemy as sa

    i = _t("tracking_inputs")
    return sa.select(i.c.kind, i.c.ref).where(i.c.run == sa.bindparam("seq")).order_by(i.c.kind, i.c.ref)


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
    @staticmethod
    def _run_values(run: Run) -> dict[str, Any]:
        return {"name": run.name, "experiment": run.experiment, "status": run.status, "start_time": run.start_time,
                "end_time": run.end_time, "parent_id": run.parent_id, "job_id": run.job_id,
                "deleted": int(run.deleted), "context": json.dumps(run.context, default=str)}

    def insert_run(self, run: Run) -> int:
        """Insert a new run row with its params and tags; return its seq."""
        with self.db.transaction() as tx:
            seq = tx.execute(_insert_run(), {"id": run.id, **self._run_values(run)}).scalar()
            self._params(tx, seq, run.params)
            self._tags(tx, seq, run.tags)
            self.refresh_snapshots(tx, [seq], ("params", "tags"))
        self._seqs[run.id] = seq
        return seq

    def seq(self, run_id: str) -> int:
        """Return the integer seq child tables use for a run id (cached: it never changes)."""
        seq = self._seqs.get(run_id)
        if seq is None:
            seq = self._seq_of(self.db, run_id)
            if seq is None:
                raise NotFoundError(f"run {run_id!r} does not exist; list runs with `forgeml runs ls`")
            self._seqs[run_id] = seq
        return seq

    @staticmethod
    def _seq_of(db: Any, run_id: str) -> int | None:
        rows = db.query(_seq_by_id(), {"run_id": run_id})
        return rows[0]["seq"] if rows else None

    def update_run(self, run_id: str, **values: Any) -> None:
        """Set attribute columns of a run (status, end_time, name, context, job_id)."""
        import sqlalchemy as sa

        allowed = {"status", "end_time", "name", "context", "job_id", "parent_id"}
        unknown = set(values) - allowed
        if unknown:
            raise ValidationError(f"cannot update run attribute(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if "context" in values:
            values["context"] = json.dumps(values["context"], default=str)
        runs = _t("tracking_runs")
        if self.db.execute(sa.update(runs).where(runs.c.id == run_id).values(**values)) == 0:
            raise NotFoundError(f"run {run_id!r} does not exist")

    def end_if_running(self, run_id: str, status: str, end_time: float) -> bool:
        """End a run that is still RUNNING with ``status``; return whether it was still running."""
        import sqlalchemy as sa

        runs = _t("tracking_runs")
        return bool(self.db.execute(sa.update(runs).where(runs.c.id == run_id, runs.c.status == RUNNING)
                                    .values(status=status, end_time=end_time)))

    def running_without_job(self) -> list[dict[str, Any]]:
        """Return id, start_time and context of every RUNNING run that no job owns."""
        import sqlalchemy as sa

        runs = _t("tracking_runs")
        return self.db.query(sa.select(runs.c.id, runs.c.start_time, runs.c.context)
                             .where(runs.c.status == RUNNING, runs.c.job_id.is_(None)))

    def ended_before(self, cutoff: float) -> list[str]:
        """Return the ids of runs that ended (and are not RUNNING) before ``cutoff``, oldest end first."""
        import sqlalchemy as sa

        runs = _t("tracking_runs")
        return [r["id"] for r in self.db.query(
            sa.select(runs.c.id).where(runs.c.end_time.is_not(None), runs.c.end_time < cutoff,
                                       runs.c.status != RUNNING).order_by(runs.c.end_time))]

    def runs_with_input(self, kind: str, name: str) -> list[dict[str, Any]]:
        """Return run_id, ref and used_at of every input of ``kind`` named ``name`` or ``name@...``, oldest first."""
        import sqlalchemy as sa

        i, runs = _t("tracking_inputs"), _t("tracking_runs")
        return self.db.query(
            sa.select(runs.c.id.label("run_id"), i.c.ref, i.c.created_at.label("used_at"))
            .select_from(i.join(runs, runs.c.seq == i.c.run))
            .where(i.c.kind == kind, sa.or_(i.c.ref == name, sa.func.substr(i.c.ref, 1, len(name) + 1) == name + "@"))
            .order_by(i.c.created_at))

    def run_exists(self, run_id: str) -> bool:
        """Return whether a run with exactly this id exists."""
        return self._seq_of(self.db, run_id) is not None

    def resolve_id(self, ref: str) -> str:
        """Return the full id for a run id or a unique prefix of one (at least 4 characters)."""
        import sqlalchemy as sa

        ref = str(ref).strip()
        if self.run_exists(ref):
            return ref
        if len(ref) >= 4 and all(c in "0123456789abcdef" for c in ref.lower()):
            runs = _t("tracking_runs")
            rows = self.db.query(sa.select(runs.c.id).where(runs.c.id >= ref.lower(), runs.c.id < ref.lower() + "g")
                                 .limit(2))
            if len(rows) == 1:
                return rows[0]["id"]
            if len(rows) > 1:
                raise ValidationError(f"run id prefix {ref!r} is ambiguous; give more characters")
        raise NotFoundError(f"run {ref!r} does not exist; list runs with `forgeml runs ls`")

    def get_run(self, ref: str) -> Run:
        """Return a run with its params, tags, latest metrics and inputs."""
        run_id = self.resolve_id(ref)
        row = self.db.query(_run_by_id(), {"run_id": run_id})[0]
        run = self._run_from_row(row)
        seq = self._seqs.setdefault(run_id, row["seq"])
        run.params = {r["key"]: r["value"] for r in self._key_values("tracking_params", seq)}
        run.tags = {r["key"]: r["value"] for r in self._key_values("tracking_tags", seq)}
        run.metrics = {r["key"]: read_value(r["value"]) for r in self._key_values("tracking_latest_metrics", seq)}
        run.inputs = [{"kind": r["kind"], "ref": r["ref"]} for r in self.db.query(_inputs_of(), {"seq": seq})]
        return run

    def _key_values(self, table: str, seq: int) -> list[dict[str, Any]]:
        return self.db.query(_key_values_of(table), {"seq": seq})

    @staticmethod
    def _run_from_row(row: Mapping[str, Any]) -> Run:
        return Run(id=row["id"], name=row["name"], experiment=row["experiment"], status=row["status"],
                   start_time=row["start_time"], end_time=row["end_time"], parent_id=row["parent_id"],
                   job_id=row["job_id"], deleted=bool(row["deleted"]), context=json.loads(row["context"] or "{}"))

    def children(self, run_id: str) -> list[str]:
        """Return the ids of a run's direct child runs, oldest first."""
        import sqlalchemy as sa

        runs = _t("tracking_runs")
        return [r["id"] for r in self.db.query(sa.select(runs.c.id).where(runs.c.parent_id == run_id)
                                               .order_by(runs.c.start_time))]

    def set_deleted(self, run_ids: Sequence[str], deleted: bool) -> int:
        """Mark runs deleted (hidden from search) or restore them; return how many changed."""
        import sqlalchemy as sa

        runs = _t("tracking_runs")
        with self.db.transaction() as tx:
            n = 0
            for run_id in run_ids:
                n += tx.execute(sa.update(runs).where(runs.c.id == run_id).values(
                    deleted=int(deleted), deleted_at=time.time() if deleted else None)).rowcount
        return n

    @staticmethod
    def _clear(tx: Any, seqs: Sequence[int]) -> None:
        """Delete the params, tags, metrics, artifacts and inputs of runs (their run rows stay)."""
        import sqlalchemy as sa

        for table in _CHILD_TABLES:
            t = _t(table)
            tx.execute(sa.delete(t).where(t.c.run.in_(list(seqs))))

    def purge(self, run_ids: Sequence[str]) -> int:
        """Delete runs and their child rows in one transaction; return how many runs went."""
        import sqlalchemy as sa

        seqs = [self.seq(r) for r in run_ids]
        runs = _t("tracking_runs")
        with self.db.transaction() as tx:
            self._clear(tx, seqs)
            tx.execute(sa.delete(runs).where(runs.c.seq.in_(seqs)))
        for run_id in run_ids:
            self._seqs.pop(run_id, None)
        return len(seqs)

    def experiments(self) -> list[dict[str, Any]]:
        """Return each experiment with its run count and newest start time."""
        import sqlalchemy as sa

        runs = _t("tracking_runs")
        return self.db.query(sa.select(runs.c.experiment, sa.func.count().label("runs"),
                                       sa.func.max(runs.c.start_time).label("last_start"))
                             .where(runs.c.deleted == 0).group_by(runs.c.experiment).order_by(runs.c.experiment))

    def has_key(self, kind: str, key: str) -> bool:
        """Return whether any run has this param, metric or tag (kind: params, metrics or tags)."""
        import sqlalchemy as sa

        t = _t(_SNAPSHOT_TABLES[kind])
        return bool(self.db.query(sa.select(sa.literal(1).label("found")).select_from(t).where(t.c.key == key)
                                  .limit(1)))

    def keys(self, kind: str) -> list[str]:
        """Return every param, metric or tag key any run has, sorted."""
        import sqlalchemy as sa

        t = _t(_SNAPSHOT_TABLES[kind])
        return [row["key"] for row in self.db.query(sa.select(t.c.key).distinct().order_by(t.c.key))]

    def search_rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run the SQL the search language's compiler wrote for a query; return its rows."""
        return self.db.rows(sql, params)

    # ------------------------------------------------------------ params, tags, inputs, artifacts
    @staticmethod
    def _params(tx: Any, seq: int, params: Mapping[str, Any]) -> None:
        tx.upsert("tracking_params", ("run", "key", "value", "num"),
                  [(seq, str(k), param_text(v), numeric_shadow(v)) for k, v in params.items()], keys=("run", "key"))

    @staticmethod
    def _tags(tx: Any, seq: int, tags: Mapping[str, Any]) -> None:
        tx.upsert("tracking_tags", ("run", "key", "value"), [(seq, str(k), param_text(v)) for k, v in tags.items()],
                  keys=("run", "key"))

    @staticmethod
    def refresh_snapshots(tx: Any, seqs: Iterable[int], which: Iterable[str]) -> None:
        """Rewrite the runs' JSON snapshots of params, metrics and/or tags from their rows."""
        seqs = sorted(seqs)
        if not seqs:
            return
        for kind in which:
            # built here, not by the database's JSON functions (which differ per database, print floats
            # with 15 digits and infinities as invalid JSON): a value read back must be the value logged
            snapshots: dict[int, dict[str, Any]] = {seq: {} for seq in seqs}
            for seq, key, value in tx.execute(_snapshot_rows(kind), {"seqs": seqs}).fetchall():
                snapshots[seq][key] = read_value(value) if kind == "metrics" else value
            tx.executemany(_snapshot_update(kind),
                           [{"run_seq": seq, "snapshot": json.dumps(snapshot)} for seq, snapshot in snapshots.items()])

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
        with self.db.transaction() as tx:
            tx.upsert("tracking_artifacts", ("run", "path", "digest", "size", "created_at"),
                      [(self.seq(run_id), record.path, record.digest, record.size, record.created_at)],
                      keys=("run", "path"))
        return record

    def remove_artifact(self, run_id: str, path: str) -> None:
        """Forget the artifact at a path of the run (its object stays until gc finds it unreferenced)."""
        import sqlalchemy as sa

        a = _t("tracking_artifacts")
        self.db.execute(sa.delete(a).where(a.c.run == self.seq(run_id), a.c.path == path))

    def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """Return a run's artifacts ordered by path."""
        import sqlalchemy as sa

        a = _t("tracking_artifacts")
        rows = self.db.query(sa.select(a.c.path, a.c.digest, a.c.size, a.c.created_at)
                             .where(a.c.run == self.seq(run_id)).order_by(a.c.path))
        return [ArtifactRecord(run_id=run_id, **r) for r in rows]

    def all_artifacts(self) -> list[dict[str, Any]]:
        """Return every run's artifacts: run (seq), run_id, path and digest, by run and path."""
        import sqlalchemy as sa

        a, runs = _t("tracking_artifacts"), _t("tracking_runs")
        return self.db.query(sa.select(a.c.run, runs.c.id.label("run_id"), a.c.path, a.c.digest)
                             .select_from(a.join(runs, runs.c.seq == a.c.run)).order_by(a.c.run, a.c.path))

    def replace_artifact(self, seq: int, path: str, digest: str, size: int) -> None:
        """Point a run's artifact path at new content (the erasure of a subject's rows)."""
        import sqlalchemy as sa

        a = _t("tracking_artifacts")
        self.db.execute(sa.update(a).where(a.c.run == seq, a.c.path == path)
                        .values(digest=digest, size=size, created_at=time.time()))

    def artifact_digests(self) -> set[str]:
        """Return every digest a run's artifact points at."""
        import sqlalchemy as sa

        a = _t("tracking_artifacts")
        return {r["digest"] for r in self.db.query(sa.select(a.c.digest).distinct())}

    # ------------------------------------------------------------ metrics
    def write_points(self, points: Sequence[Point]) -> None:
        """Append metric points (run seq, key, step, ts, value) and advance the latest values, in one transaction."""
        with self.db.transaction() as tx:
            tx.insert_rows("tracking_metrics", ("run", "key", "step", "ts", "value"), points)
            latest = latest_of(points)
            tx.upsert("tracking_latest_metrics", ("run", "key", "value", "step", "ts"), latest, keys=("run", "key"),
                      where=_NEWER_POINT)
            self.refresh_snapshots(tx, {row[0] for row in latest}, ("metrics",))

    def _points(self, run_id: str, key: str | None, *columns: Any) -> Any:
        import sqlalchemy as sa

        m = _t("tracking_metrics")
        statement = sa.select(*columns).where(m.c.run == self.seq(run_id))
        return statement.where(m.c.key == key) if key is not None else statement

    def metric_history(self, run_id: str, key: str | None = None) -> list[tuple[str, int, float, float]]:
        """Return (key, step, ts, value) rows of a run, one key or all, ordered by key and step."""
        m = _t("tracking_metrics")
        statement = self._points(run_id, key, m.c.key, m.c.step, m.c.ts, m.c.value).order_by(m.c.key, m.c.step, m.c.ts)
        return [(r["key"], r["step"], r["ts"], read_value(r["value"])) for r in self.db.query(statement)]

    def count_points(self, run_id: str, key: str | None = None) -> int:
        """Return how many metric points a run has stored (one key or all)."""
        import sqlalchemy as sa

        return self.db.query(self._points(run_id, key, sa.func.count().label("n")))[0]["n"]

    # ------------------------------------------------------------ import
    def import_run(self, run: Run, points: Sequence[Point], artifacts: Sequence[tuple[str, str, int]],
                   inputs: Sequence[tuple[str, str]]) -> None:
        """Write an exported run as it was, replacing any run with its id (whose seq is kept: others cache it)."""
        import sqlalchemy as sa

        runs = _t("tracking_runs")
        with self.db.transaction() as tx:
            seq = self._seq_of(tx, run.id)
            if seq is not None:
                self._clear(tx, [seq])
                tx.execute(sa.update(runs).where(runs.c.seq == seq).values(**self._run_values(run)))
            else:
                seq = tx.execute(_insert_run(), {"id": run.id, **self._run_values(run)}).scalar()
            points = [(seq, *p[1:]) for p in points]
            self._params(tx, seq, run.params)
            self._tags(tx, seq, run.tags)
            tx.insert_rows("tracking_metrics", ("run", "key", "step", "ts", "value"), points)
            tx.insert_rows("tracking_latest_metrics", ("run", "key", "value", "step", "ts"), latest_of(points))
            tx.insert_rows("tracking_artifacts", ("run", "path", "digest", "size", "created_at"),
                           [(seq, *a, run.start_time) for a in artifacts])
            tx.insert_or_ignore("tracking_inputs", ("run", "kind", "ref", "created_at"),
                                [(seq, kind, ref, run.start_time) for kind, ref in inputs])
            self.refresh_snapshots(tx, [seq], ("params", "metrics", "tags"))
        self._seqs[run.id] = seq


_STORES: weakref.WeakKeyDictionary[Any, TrackingStore] = weakref.WeakKeyDictionary()


def tracking_store(workspace: Any) -> TrackingStore:
    """Return the workspace's tracking store, opened (and migrated) once per process."""
    store = _STORES.get(workspace)
    if store is None:
        store = _STORES.setdefault(workspace, TrackingStore(workspace))
    return store

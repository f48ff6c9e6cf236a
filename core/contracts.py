"""Typed contracts each provider plugin implements; core talks to layers only through these."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

Params = Sequence[Any] | Mapping[str, Any]


# ---------------------------------------------------------------- metadata store
# The metadata contract, which any relational database reachable through SQLAlchemy can implement.
#
# Statements. A statement is either a SQLAlchemy Core expression (``select``, ``insert``, ...; its
# params a mapping, or a list of mappings for executemany) or a string of *portable SQL*: SQL that
# SQLite (3.35+) and PostgreSQL (13+) both run unchanged, with ``?`` positional or ``:name`` named
# bind parameters. Portable SQL means: standard SELECT/INSERT/UPDATE/DELETE, JOINs, GROUP BY,
# COALESCE, CASE, ``INSERT ... ON CONFLICT (cols) DO NOTHING / DO UPDATE SET c = excluded.c``,
# ``INSERT ... RETURNING col``, ``LIMIT ?``. Not portable (never sent through the contract):
# ``INSERT OR IGNORE/REPLACE``, ``AUTOINCREMENT``, ``lastrowid``, ``PRAGMA``, ``GLOB``, ``IFNULL``,
# ``json_*`` functions, ``CROSS JOIN ... ON``, two-argument ``MAX``/``MIN``, string concatenation of
# numbers, comparisons between TEXT and numbers. The ``insert_or_ignore`` and ``upsert`` helpers
# build the conflict clauses for a caller.
#
# Tables. Each layer declares its tables with ``sqlalchemy.Table`` in the one persistence module of
# that layer and creates them from a migration's ``apply``; column types are the portable ones
# (Text, BigInteger, Double, LargeBinary; an autoincrementing id is BigInteger with an Integer
# variant on SQLite so that it stays the rowid). sqlalchemy is imported inside functions only:
# ``import forgeml`` must not load it.
#
# Values. Times are stored as float seconds since the epoch (UTC); booleans as 0/1 integers; JSON
# as TEXT; NaN floats are stored as NULL by every store. What a store returns for a column is the
# Python type of its declared type (int, float, str, bytes, None).
#
# Transactions. ``transaction()`` is a write transaction serialised against every other writer of
# the same database (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock), so a
# read-then-write inside it sees no concurrent change; nested use joins the outer transaction.
# Statements outside a transaction each commit on their own.
#
# Errors. Every driver or SQLAlchemy error leaves a store as a StorageError (``from`` the original);
# a unique or foreign-key violation as its subclass ConflictError. Core never catches a driver's
# exceptions and never opens a driver connection itself.
@dataclass(frozen=True)
class Migration:
    """One numbered schema step of a migration set; never edited once released.

    ``sql`` holds portable DDL statements separated by ``;``; ``apply(tx)`` runs Python against the
    open Transaction (for example ``metadata.create_all(tx.connection)``). Both run in the same
    transaction as the step's record, so a failed step leaves nothing behind on either database.
    """

    number: int
    name: str
    sql: str = ""
    apply: Callable[[Any], None] | None = None



def declared_tables(*declares: Callable[[Any], Any]) -> Callable[[], Any]:
    """Return a layer's ``tables()``: its ``sqlalchemy.Table`` objects by name, declared on the first call."""
    import functools

    @functools.cache
    def tables() -> Any:
        import sqlalchemy as sa  # loads on first use, not when the layer is imported

        metadata = sa.MetaData()
        for declare in declares:
            metadata = declare(metadata)
        return metadata.tables

    return tables


def creating(declare: Callable[[Any], Any]) -> Callable[[Any], None]:
    """Return a migration step's ``apply`` that creates the tables ``declare(metadata)`` declares."""

    def apply(tx: Any) -> None:
        import sqlalchemy as sa

        # inside the step's open transaction, so a failed step leaves nothing behind
        declare(sa.MetaData()).create_all(tx.connection, checkfirst=False)

    return apply

class Result(Protocol):
    """What a statement returns: the part of SQLAlchemy's CursorResult every store supports."""

    rowcount: int

    def fetchall(self) -> Sequence[Any]:
        """Return the remaining rows as tuples (SQLAlchemy Row objects)."""

    def fetchone(self) -> Any:
        """Return the next row, or None."""

    def scalar(self) -> Any:
        """Return the first column of the first row, or None."""


class Transaction(Protocol):
    """A write transaction: statements run together or not at all."""

    dialect: str
    connection: Any  # sqlalchemy.engine.Connection: Core expressions and create_all run on it

    def execute(self, statement: Any, params: Params = ()) -> Result:
        """Run one statement (portable SQL or a Core expression) and return its result."""

    def executemany(self, statement: Any, rows: Sequence[Params]) -> int:
        """Run one statement for many parameter rows; return the rows affected."""

    def query(self, statement: Any, params: Params = ()) -> list[dict[str, Any]]:
        """Run a SELECT inside the transaction and return rows as dicts."""

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Append many rows the fastest way the database offers (executemany, COPY); return how many."""

    def insert_or_ignore(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows, skipping those that violate a unique key; return how many were inserted."""

    def upsert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], keys: Sequence[str],
               update: Sequence[str] | None = None, where: str = "") -> int:
        """Insert rows, or on a conflict over ``keys`` overwrite ``update`` (default: the other columns).

        ``where`` is an optional portable condition on ``excluded`` and the table deciding whether the
        existing row is overwritten.
        """


@runtime_checkable
class MetadataStore(Protocol):
    """Relational metadata (runs, jobs, models, features, audit) shared by many processes."""

    url: str
    dialect: str  # the SQLAlchemy dialect name: "sqlite", "postgresql", ...

    @property
    def engine(self) -> Any:
        """The store's SQLAlchemy Engine (for tools such as pandas.read_sql and reflection)."""

    def migrate(self, migration_set: str, migrations: Sequence[Migration]) -> list[str]:
        """Apply the set's migrations not yet recorded; return the names applied."""

    def applied_migrations(self, migration_set: str) -> list[int]:
        """Return the numbers of the set's migrations already applied."""

    def execute(self, statement: Any, params: Params = ()) -> int:
        """Run one write statement in its own transaction; return the rows affected."""

    def executemany(self, statement: Any, rows: Sequence[Params]) -> int:
        """Run one write statement for many rows in one transaction; return the rows affected."""

    def query(self, statement: Any, params: Params = ()) -> list[dict[str, Any]]:
        """Run a SELECT and return rows as dicts."""

    def rows(self, statement: Any, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a SELECT and return rows as plain tuples (cheaper than dicts on large results)."""

    def stream(self, statement: Any, params: Params = (), batch: int = 5000) -> Iterator[list[tuple[Any, ...]]]:
        """Run a SELECT and yield its rows in lists of up to ``batch`` (for tables too big for memory)."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Open a write transaction that commits on success and rolls back on error."""

    def identities_copied(self, tables: Sequence[str]) -> None:
        """Move autoincrement counters past the highest ids after rows were copied in with their ids."""

    def close(self) -> None:
        """Release connections held by this process."""


# ---------------------------------------------------------------- artifact store
@dataclass(frozen=True)
class ArtifactInfo:
    """One stored object: its sha256 hex digest and size in bytes."""

    digest: str
    size: int


@runtime_checkable
class ArtifactStore(Protocol):
    """Content-addressed blobs: identical bytes are stored once and verified on read.

    Its conformance suite (:class:`forgeml.testing.ArtifactStoreSuite`) enforces: sha256 addressing;
    identical bytes stored once; unknown digests raise NotFoundError; damaged or truncated objects raise
    CorruptObjectError; a non-digest string is a ForgeError; a new instance over the same root sees every
    object; an object stored by one process is read by another. A store may also offer
    ``delete(digest) -> bool`` (remove an object; whether it was stored): erasure and retention purge
    bytes through it and refuse to claim success without it.
    """

    root: str

    def put_bytes(self, data: bytes) -> str:
        """Store bytes and return their sha256 hex digest."""

    def put_file(self, path: str | Path) -> str:
        """Store a file's contents and return their sha256 hex digest."""

    def get_bytes(self, digest: str) -> bytes:
        """Return an object's bytes, raising CorruptObjectError when they do not match the digest."""

    def get_file(self, digest: str, dest: str | Path) -> Path:
        """Copy an object to dest, verified, and return dest."""

    def open(self, digest: str) -> BinaryIO:
        """Open an object for streaming reads; reading to the end verifies it."""

    def exists(self, digest: str) -> bool:
        """Return whether an object with this digest is stored."""

    def list(self) -> Iterator[ArtifactInfo]:
        """Yield every stored object."""


# ---------------------------------------------------------------- feature storage
@dataclass(frozen=True)
class FeatureRequest:
    """One feature view's part of a point-in-time join.

    ``relation`` is contract SQL (DuckDB's dialect) yielding the view's rows (a stored table's
    ``table_relation``, a table function such as ``read_parquet(...)`` or a parenthesized query) or an
    Arrow table; ``features`` are its columns, returned under
    ``output_names``; ``ttl_s`` None means values never expire.
    """

    name: str
    relation: Any
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    output_names: tuple[str, ...]
    timestamp_field: str
    ttl_s: float | None = None


@dataclass(frozen=True)
class WindowAggregate:
    """One feature of a WindowRequest: ``function`` (count, sum, mean, min, max, stddev, count_distinct,
    approx_count_distinct, last_n, first, last) of event ``column`` over a window of ``window_us`` aligned to
    ``hop_us``; ``n`` is last_n's length (approx_count_distinct's lg_k); the feature is returned as column
    ``name``. A store returns approx_count_distinct as the list of distinct non-null values per row (times as
    epoch µs); core turns it into the sketch's estimate."""

    name: str
    function: str
    column: str | None
    window_us: int
    hop_us: int
    n: int = 0


@dataclass(frozen=True)
class WindowRequest:
    """A window-aggregation view's part of a point-in-time join, described without SQL for each engine to compile.

    ``relation`` (contract SQL or an Arrow table) yields the events: ``join_keys``, ``timestamp_field`` and
    the ``columns`` aggregates read, each cast to its dtype (``(column, dtype)`` pairs, forgeml dtype names).
    For an entity row with keys k at time t (epoch µs), an aggregate covers the events whose keys equal k (a
    null key matching null, as in a window partition) and whose time lies in ``[start, t]``, both ends
    included, with ``start = floor((t - window_us) / hop_us) * hop_us``; events with a null time count
    nowhere. count counts events; sum, mean and stddev (sample) are float64 and null without values;
    count_distinct is exact; min, max, first and last keep the column's dtype; first/last are the oldest /
    newest non-null value, events at one instant ordered by value; last_n is the ``n`` newest non-null values,
    newest first, in the same order (an empty list when none).
    """

    relation: Any
    join_keys: tuple[str, ...]
    timestamp_field: str
    columns: tuple[tuple[str, str], ...]
    aggregates: tuple[WindowAggregate, ...]


@runtime_checkable
class OfflineStore(Protocol):
    """Append-only, date-partitioned history of feature rows, queried for point-in-time joins.

    The SQL this contract speaks (``query``, ``table_relation``, FeatureRequest relations) is DuckDB's dialect:
    core writes it once, and a store on another engine translates it (the Spark store parses it with sqlglot and
    prints Spark SQL, mapping stored tables, Arrow tables and file scans to views of its own). The point-in-time
    join is each store's own code, built for its engine from the requests.

    Its conformance suite (:class:`forgeml.testing.OfflineStoreSuite`) enforces: rows survive a reopen and
    are read by other processes; int64/float/bool/text/timestamps round-trip with NaN kept apart from
    null; any time zone is stored as the UTC instant; ``read`` is [start, end); the point-in-time join
    keeps entity order, never uses a later value and honours TTL; missing columns, naive timestamps and
    bad SQL raise ForgeError.

    Optional: ``window_join(entity_rows, times_us, request: WindowRequest) -> pa.Table`` computes a window
    request's aggregates as of each entity row (``entity_rows`` holds the join keys, ``times_us`` each row's
    time in epoch µs) and returns one column per aggregate, one row per entity row, in order. A store
    without it gets the request compiled to contract SQL (a DuckDB window query) and run through ``query``.

    Optional: ``expire(table, before_day, dry_run=False) -> list[str]`` removes (or lists) a table's
    date partitions of days before ``before_day`` (YYYY-MM-DD); retention (``[privacy.retention] stream_events_days``) uses
    it and names a store without it.
    """

    def write(self, table: str, data: pa.Table, timestamp_field: str) -> int:
        """Append rows to a named table, partitioned by the date of timestamp_field; return rows written."""

    def read(self, table: str, start: Any = None, end: Any = None, columns: Sequence[str] | None = None,
             timestamp_field: str = "event_timestamp") -> pa.Table:
        """Return a table's rows with timestamps in [start, end)."""

    def has_table(self, table: str) -> bool:
        """Return whether any rows were written to a table."""

    def table_relation(self, table: str) -> str:
        """Return a relation in the contract's SQL naming a stored table, for FROM clauses and FeatureRequests."""

    def query(self, sql: str, tables: Mapping[str, pa.Table] | None = None) -> pa.Table:
        """Run contract SQL (with Arrow tables registered under the given names) and return the result."""

    def register_filesystem_for(self, url: str) -> None:
        """Make the engine able to read an fsspec URL (s3://, memory://, ...) named by a file source."""

    def point_in_time_join(self, entity_rows: pa.Table, requests: Sequence[FeatureRequest],
                           timestamp_field: str) -> pa.Table:
        """Join each entity row with the latest feature values at or before its timestamp, within TTL.

        Every entity row is kept, in its order; a feature with no value in its TTL window is null.
        """


@runtime_checkable
class OnlineStore(Protocol):
    """Latest feature values per entity key, read in milliseconds at serving time.

    Keys are tuples of join-key values; a view's rows are stored whole, so a write replaces every
    feature of a key at once, and only when its event timestamp is not older than the stored one.

    Its conformance suite (:class:`forgeml.testing.OnlineStoreSuite`) enforces: values survive a reopen
    and are read by other processes; ``read_rows`` event times are epoch microseconds, UTC; any time zone
    or resolution is one instant; NaN reads as null; bad rows raise ForgeError.

    Optional: ``expire(view, before_us, dry_run=False) -> int`` deletes (or counts) a view's rows
    stored with an event time before ``before_us``; retention (``[privacy.retention] window_state_days``) uses it and names a
    store without it.
    """

    def write(self, view: str, rows: pa.Table, key_columns: Sequence[str], timestamp_field: str) -> int:
        """Upsert rows newer than what is stored (the newest row wins per key); return rows written."""

    def read(self, view: str, keys: Sequence[tuple[Any, ...]], features: Sequence[str]) -> pa.Table:
        """Return the stored features (null when absent) plus an ``_event_timestamp`` column, one row per key."""

    def read_rows(self, view: str, keys: Sequence[tuple[Any, ...]]) -> list[tuple[int, dict[str, Any]] | None]:
        """Hot path: per key, (event time in epoch microseconds, feature values by name), or None when absent."""

    def delete_view(self, view: str) -> int:
        """Remove every stored row of a view; return the rows removed."""


@runtime_checkable
class VectorStore(Protocol):
    """Embeddings with nearest-neighbour search.

    Its conformance suite (:class:`forgeml.testing.VectorStoreSuite`) enforces: nearest first with a non-
    decreasing ``_distance``; at most k rows; filters apply; upsert replaces by key; rows survive a reopen
    and are found by other processes; ``rows`` finds exactly the matching rows; ``optimize`` keeps every
    row; a missing vector column, k <= 0 or an unknown table raise ForgeError.
    """

    def upsert(self, table: str, data: pa.Table, vector_column: str, key_columns: Sequence[str]) -> int:
        """Insert or replace rows by key; return rows written."""

    def search(self, table: str, vector: Sequence[float], k: int, filter: str | None = None,
               vector_column: str | None = None) -> pa.Table:
        """Return the k nearest rows with a _distance column, optionally filtered by a SQL predicate."""

    def count(self, table: str) -> int:
        """Return the rows stored in a table (0 when it does not exist)."""

    def rows(self, table: str, filter: str, limit: int) -> pa.Table:
        """Return up to limit rows matching a SQL predicate, found exactly (by key lookups, not nearest search)."""

    def optimize(self, table: str, cleanup_older_than_s: float | None = None) -> dict[str, Any]:
        """Compact a table and bring its index up to date; return figures of what changed (rows among them)."""


# ---------------------------------------------------------------- personal data
@dataclass(frozen=True)
class Subject:
    """One data subject to find or erase: the key column that identifies them and its value.

    ``value`` is compared as text with each stored value of ``column`` (so ``42`` and ``"42"`` are the
    same subject). ``views`` maps each online view that may hold the subject to its join keys: online
    stores address rows by view and key, not by column. ``erasure`` is the id of the erasure record
    being made, for stores that keep lineage (dataset versions name the erasure that made them).
    """

    column: str
    value: str
    views: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    erasure: str = ""

    def matches_key(self, join_keys: Sequence[str], key: tuple[Any, ...]) -> bool:
        """Return whether an entity key of a view with these join keys belongs to the subject."""
        return self.column in join_keys and str(key[list(join_keys).index(self.column)]) == self.value


@dataclass(frozen=True)
class Holding:
    """Where a subject's data was found (or erased): the place, a location in it, and how many rows."""

    place: str
    location: str
    rows: int


@runtime_checkable
class SubjectStore(Protocol):
    """What a store implements so ``forgeml forget`` can find and erase one subject's rows in it.

    Erasure is physical: after ``erase_subject`` returns, the subject's values are in none of the
    store's files or tables, old file versions and free database pages included. Rows of other
    subjects stay byte-for-byte equal in value. Its rules are checked by the ``test_erases_one_subject``
    test of the offline, online and vector store suites.
    """

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return every location holding the subject's rows (empty when none)."""

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Remove every row of the subject, durably and physically; return what was removed."""


@runtime_checkable
class SubjectEraser(SubjectStore, Protocol):
    """A place outside the stores that keeps personal data (prediction logs, dataset snapshots, ...).

    Plugins offer erasers through ``forgeml_register_erasers``; ``forget`` runs every one.
    """

    name: str


# ---------------------------------------------------------------- event streams
@runtime_checkable
class StreamConsumer(Protocol):
    """One consumer group's cursor over an event stream, Kafka-style: poll, apply, commit.

    Delivery is at least once: records polled but not committed are delivered again after the
    consumer is reopened (after a crash, say), starting from the group's committed offsets. Each
    record belongs to a partition (a string) and has an integer offset that grows within it.
    """

    def poll(self, max_records: int, timeout_s: float) -> pa.Table:
        """Return up to max_records records after those already delivered (empty table after timeout_s).

        The table holds the event columns (typed, or strings the caller casts) plus ``_partition``
        (string) and ``_offset`` (int64); within a partition, records come in offset order. A record
        that cannot be decoded (bytes that are not UTF-8, say) must not fail the poll: it comes with a
        non-null ``_error`` (string) saying why, its fields shown as best they can be, and the caller
        sets it aside. The column may be absent when every record decoded.
        """

    def commit(self, positions: Mapping[str, int]) -> None:
        """Mark every record of each partition up to and including its offset as processed by the group."""

    def committed(self) -> dict[str, int]:
        """Return the group's committed offset per partition (partitions never committed are absent)."""

    def close(self) -> None:
        """Release the connection; uncommitted records stay due for the next consumer of the group."""


@runtime_checkable
class EventStream(Protocol):
    """An append-only stream of events: producers publish, consumer groups read it independently."""

    def publish(self, rows: pa.Table) -> int:
        """Append rows as records (one per row) and return how many were appended."""

    def consumer(self, group: str) -> StreamConsumer:
        """Open the named consumer group's cursor (created at the start of the stream on first use)."""

    def close(self) -> None:
        """Release connections held by this process."""


# ---------------------------------------------------------------- compute
@dataclass(frozen=True)
class GpuDevice:
    """One GPU as an inventory sees it right now."""

    index: int
    name: str
    memory_total_mb: int
    memory_free_mb: int
    utilization_pct: float = 0.0
    uuid: str = ""
    power_w: float | None = None
    temperature_c: float | None = None
    processes: tuple[int, ...] = ()


@runtime_checkable
class GpuInventory(Protocol):
    """The GPUs a machine has and how busy they are.

    Its conformance suite (:class:`forgeml.testing.GpuInventorySuite`) enforces: GpuDevice values with
    unique indices and UUIDs, 0 <= free <= total memory, utilization in 0..100, and the same GPUs on every
    call.

    An optional attribute ``host_wide`` (True when absent) says the devices are this machine's real
    GPUs, which every forgeml scheduler on the host shares through host-wide leases; set it False for
    GPUs that exist only in one workspace's view.
    """

    def devices(self) -> list[GpuDevice]:
        """Return every visible GPU; an empty list means CPU mode."""


@dataclass
class LaunchRequest:
    """What an executor needs to start one attempt of a job."""

    job_id: str
    attempt: int
    argv: list[str]
    env: dict[str, str]
    workdir: str
    log_path: str
    gpus: list[int] = field(default_factory=list)
    cpus: float | None = None
    memory_mb: int | None = None
    timeout_s: float | None = None
    spec: Any = None
    # variables of env that plugins.toml reads secrets from: an executor on another machine forwards
    # them although they come from this process's environment, and keeps them out of shared files
    secrets: tuple[str, ...] = ()


@dataclass
class ExecutionStatus:
    """An executor's view of a launched attempt."""

    state: str  # "running", "succeeded", "failed", "cancelled", "lost"
    exit_code: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class HealthCheck:
    """One line of a health report: what was checked, whether it passed, and details."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Capacity:
    """What a target offers jobs in total: CPU cores and memory in MiB."""

    cpus: float
    memory_mb: int


@runtime_checkable
class Executor(Protocol):
    """Launches, polls, cancels and reads logs of job attempts on some compute.

    Two flags tell the scheduler what kind of target it is:

    - ``beside_workspace``: attempts run on this machine, inherit the scheduler's environment, see the
      workspace's files (a script's path is checked before submission) and write their log at
      ``LaunchRequest.log_path``; False when they run elsewhere and :meth:`logs` fetches the log.
    - ``places_gpus``: the workspace's placement policy gives this target's jobs GPUs from the
      workspace's GPU inventory (pinned through ``CUDA_VISIBLE_DEVICES``) and counts their CPUs and
      memory against :meth:`capacity`; False when the target places its own jobs (a batch system, a
      cluster, remote hosts) and a job is launched as soon as it is due.

    Subclass this Protocol to inherit the defaults of the members after ``check``.

    Its conformance suite (:class:`forgeml.testing.ExecutorSuite`) enforces: ``launch`` returns a string
    handle at once; the attempt runs detached with its env and workdir, output in the log; ``poll`` gives
    succeeded/0 or failed with the exit code; ``logs`` from an offset gives each byte once; ``cancel``
    stops it within the grace period; a new instance or another process follows an old handle; an unknown
    handle raises ForgeError.
    """

    name: str
    beside_workspace: bool = False
    places_gpus: bool = False

    def launch(self, request: LaunchRequest) -> str:
        """Start an attempt detached and return a handle that survives a restart of forgeml."""
        ...

    def poll(self, handle: str) -> ExecutionStatus:
        """Return the attempt's current status."""
        ...

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        """Stop the attempt: SIGTERM (or the target's equivalent), then kill after grace_s."""
        ...

    def logs(self, handle: str, offset: int = 0) -> tuple[str, int]:
        """Return log text from byte offset and the new offset."""
        ...

    def check(self) -> list[HealthCheck]:
        """Verify connectivity, GPUs and queue state of the target."""
        ...

    def kill(self, handle: str) -> None:
        """Stop the attempt now, without a grace period (its delayed kill died with an earlier scheduler)."""
        self.cancel(handle, 0)

    def capacity(self) -> Capacity | None:
        """Return the CPUs and memory jobs may use in total here, or None when the target counts its own."""
        return None

    def python(self) -> str | None:
        """Return the interpreter that runs script jobs here; None means the scheduler's own."""
        return None if self.beside_workspace else "python"

    def describe(self) -> str:
        """Return where the target points, in a few words (``forgeml targets list``)."""
        return ""

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Call callback when an attempt this process launched ends, so the scheduler looks at once."""
        return None

    def recover(self, log_path: str) -> str | None:
        """Return the handle of an attempt launched with this log path whose handle was never recorded."""
        return None

    def process(self, handle: str) -> tuple[int, float] | None:
        """Return the local process (pid, start time) holding the attempt's GPUs, for host-wide GPU leases."""
        return None


@runtime_checkable
class PlacementPolicy(Protocol):
    """Decides which pending jobs start now and on which GPUs.

    The values are defined in :mod:`forgeml.jobs.placement`: ``pending`` are ``JobRequest``s,
    ``gpus`` are ``GpuSlot``s (each device with what running jobs hold on it), ``resources`` is a
    ``Resources`` (CPU, memory, running jobs); the result is a list of ``Placement``s, where a
    placement with ``preempt`` names running jobs to stop first.

    Its conformance suite (:class:`forgeml.testing.PlacementPolicySuite`) enforces: every plan passes
    :func:`forgeml.jobs.plans.plan_problems` (the scheduler refuses one that does not, naming the policy):
    existing GPUs, the count, type and memory asked for, no exclusive GPU shared, CPU and memory within
    what is free, preemption only of running, preemptible, lower-priority jobs; a job that fits an idle
    machine is started and the higher priority wins the last GPU.
    """

    def place(self, pending: Sequence[Any], gpus: Sequence[Any], resources: Any) -> list[Any]:
        """Return placements for the jobs that should start now, never oversubscribing a GPU."""


# ---------------------------------------------------------------- serving
@runtime_checkable
class LoadedModel(Protocol):
    """A model ready to predict.

    Optional: an attribute ``matrix_columns`` (a list of column names) says that ``predict`` also
    takes a plain 2-D numpy array with those columns in that order; serving and batch inference then
    skip building a DataFrame. Without it, or set to None, ``predict`` gets a DataFrame or Arrow table.
    """

    def predict(self, inputs: Any) -> Any:
        """Predict for a batch (pandas DataFrame or Arrow table) and return an array of outputs."""


@runtime_checkable
class ModelRuntime(Protocol):
    """One model flavor: how to save, load and run it.

    Its conformance suite (:class:`forgeml.testing.ModelRuntimeSuite`) enforces: the saved folder alone is
    enough: another process loads it and predicts the same outputs; DataFrame, Arrow and
    ``matrix_columns`` inputs agree, one output per row; a folder of another flavor raises ForgeError.
    """

    flavor: str

    def save(self, model: Any, path: Path) -> None:
        """Write the model into the folder at path."""

    def load(self, path: Path, device: str | None = None) -> LoadedModel:
        """Load the model from the folder at path onto device (None lets the runtime choose)."""


# ---------------------------------------------------------------- monitoring
@dataclass
class MonitorResult:
    """One drift or quality test of one column."""

    test: str
    column: str
    statistic: float
    p_value: float | None
    effect_size: float | None
    drifted: bool
    severity: str = "none"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CategoricalSample:
    """A categorical column as counts over the categories shared by the reference and the current sample."""

    counts: Any  # 1-D float numpy array, one count per category
    categories: tuple[str, ...]


@runtime_checkable
class Monitor(Protocol):
    """A drift or quality test comparing a current sample with a reference.

    What ``compare`` receives depends on the column kind: ``"numeric"`` columns arrive as 1-D float64
    numpy arrays sorted ascending with nulls and NaNs removed; ``"categorical"`` ones as
    :class:`CategoricalSample` (both samples share one category list); ``"embedding"`` ones as 2-D
    float numpy arrays (rows x dimensions); ``"paired"`` ones (training-serving skew) as two aligned
    1-D object arrays, the offline recomputation as reference and the served values as current, one
    entry per request row, nulls kept as None. Implementations must be thread-safe: a report compares
    several columns at once.

    Its conformance suite (:class:`forgeml.testing.MonitorSuite`) enforces: a well-formed MonitorResult
    (its name, the column, a finite statistic, p-value in [0, 1] or None, severity none when not drifted);
    no drift between samples of one distribution, drift on a shifted one; deterministic and thread-safe;
    tiny samples give a result or a ForgeError.
    """

    name: str
    kinds: tuple[str, ...]  # column kinds it applies to: "numeric", "categorical", "embedding", "paired"

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Compare two samples of one column and return the result."""


@runtime_checkable
class Notifier(Protocol):
    """Delivers an alert somewhere a person will see it.

    ``alert`` is the stored alert as plain JSON-able values: id, rule, metric, subject, value,
    threshold, severity, message, fired_at (ISO 8601 UTC), pipeline (or None) and details.

    Its conformance suite (:class:`forgeml.testing.NotifierSuite`) enforces: every field arrives
    unchanged, once, in order; a failed delivery raises ForgeError.
    """

    name: str

    def notify(self, alert: Mapping[str, Any]) -> None:
        """Deliver one alert; raise ForgeError when delivery failed."""


@dataclass
class GateResult:
    """The verdict of one promotion gate."""

    gate: str
    passed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class PromotionGate(Protocol):
    """Decides whether a model version may move to a stage.

    Its conformance suite (:class:`forgeml.testing.PromotionGateSuite`) enforces: a GateResult with a bool
    verdict, the gate's name, a message saying why and JSON-serializable details; the verdict depends on
    the context only.
    """

    name: str

    def check(self, context: Any) -> GateResult:
        """Evaluate the gate for a promotion and return its verdict."""


# ---------------------------------------------------------------- recommendation
@dataclass
class RecommendQuery:
    """What a retrieval source or a re-ranking rule sees of one recommendation request."""

    user: Any
    """The user's id (the value of the recommender's user key); None for an anonymous request."""
    recent: list[Any] = field(default_factory=list)
    """Items the user interacted with lately, newest first (from the request or the online store)."""
    context: dict[str, Any] = field(default_factory=dict)
    """Request context (device, hour, page...) passed to the ranking model as features."""
    exclude: set[Any] = field(default_factory=set)
    """Items never to return (already shown, blocked by the caller)."""
    n: int = 10
    """How many items the caller wants."""
    features: dict[str, Any] = field(default_factory=dict)
    """The user's features read once for the request, by "view:feature" reference: those the ranking model,
    the sources and the rules declare (``user_features``); a source or rule reads its own when absent."""


@dataclass
class Candidate:
    """One item on its way through a recommender: where it came from, its scores and its looked-up features."""

    item: Any
    score: float
    """The latest score: the source's at retrieval, the ranking model's after ranking, adjusted by rules."""
    source: str
    """The retrieval source that found it first."""
    sources: list[str] = field(default_factory=list)
    """Every source that found it."""
    features: dict[str, Any] = field(default_factory=dict)
    """Item features fetched for ranking (category, price, created_at...), by feature name."""


@runtime_checkable
class Retriever(Protocol):
    """A candidate source of a recommender: nearest neighbours, co-occurrence lists, popularity, content.

    Its conformance suite (:class:`forgeml.testing.RetrieverSuite`) enforces: at most k (item, score)
    pairs, best first, without duplicates or excluded items; the top of a larger k starts with a smaller
    k's answer; a user or items it knows nothing about give an empty list, not an error.

    Optional: ``inline`` (true when answers come from memory: the recommender then calls the source in
    the request's own thread, without a time-budget cut) and ``user_features`` (user-keyed "view:feature"
    references read with the request's user features and passed in ``query.features``).
    """

    name: str

    def retrieve(self, query: RecommendQuery, k: int) -> list[tuple[Any, float]]:
        """Return up to k (item, score) pairs for the query, highest score first."""


@runtime_checkable
class Reranker(Protocol):
    """A business rule applied to ranked candidates: suppress purchased items, diversify, sponsored slots.

    Its conformance suite (:class:`forgeml.testing.RerankerSuite`) enforces: a list of the given
    candidates (none invented, none repeated), the input list left as it was, and the same answer for
    the same input. A rule sees the recommender's best ``rerank_window`` candidates. Optional:
    ``user_features``, as for a retriever.
    """

    name: str

    def rerank(self, query: RecommendQuery, candidates: list[Candidate]) -> list[Candidate]:
        """Return the candidates reordered (or some dropped), best first; the input list is not changed."""


# ---------------------------------------------------------------- annotation backends
@dataclass
class AnnotationTask:
    """One item sent to people for a label: its key in the label set, what they see, and a model's pre-label."""

    key: str
    data: dict[str, Any]
    prediction: str | None = None
    score: float | None = None
    model: str | None = None


@dataclass
class Annotation:
    """One label a person gave an item in a backend, with who gave it and when (epoch seconds, UTC)."""

    key: str
    label: str
    annotator: str
    at: float


@runtime_checkable
class AnnotationBackend(Protocol):
    """Where people label items: a project per label set, tasks in, annotations out.

    Its conformance suite (:class:`forgeml.testing.AnnotationBackendSuite`) enforces: a project made
    from classes and fields accepts tasks whose data keeps every field unchanged; sending a key that is
    already there creates nothing (so a retried send is safe); ``pull`` returns each annotation once
    per change, after the cursor it is given, and the cursor it returns is opaque text or None; labels
    come back exactly as one of the project's classes; unknown projects raise ForgeError.
    """

    name: str

    def create_project(self, title: str, classes: Sequence[str], fields: Sequence[str],
                       instructions: str = "") -> str:
        """Create a project labelling ``fields`` of each item with one of ``classes``; return its id as text."""

    def send_tasks(self, project: str, tasks: Sequence[AnnotationTask]) -> int:
        """Add tasks (with pre-labels where given) whose keys the project lacks; return how many were added."""

    def pull(self, project: str, cursor: str | None = None) -> tuple[list[Annotation], str | None]:
        """Return annotations made or changed after ``cursor`` (all when None), and the cursor to pass next."""


# ---------------------------------------------------------------- active-learning query strategies
@runtime_checkable
class QueryStrategy(Protocol):
    """Chooses which unlabelled items people should label next.

    ``probabilities`` is the current model's class probabilities over the pool, shape (rows, classes);
    ``embeddings`` an optional (rows, dims) float array for strategies that spread a batch out. Its
    conformance suite (:class:`forgeml.testing.QueryStrategySuite`) enforces: exactly ``min(n, rows)``
    distinct row indices in range, the same answer for the same input and seed, and a ForgeError when the
    inputs disagree in rows. Core checks every answer again before sending anything.
    """

    name: str

    def select(self, probabilities: Any, n: int, embeddings: Any = None, seed: int = 0) -> Sequence[int]:
        """Return the row indices of the ``n`` items to label next, most wanted first."""

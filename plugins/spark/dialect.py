"""The offline-store contract's SQL (DuckDB's dialect) translated to Spark SQL with sqlglot.

Core writes its offline SQL once, in DuckDB's dialect; this module parses it into sqlglot's syntax tree
and prints it for Spark, after three rewrites sqlglot leaves to the caller:

- a table the contract names (a stored table's relation, an Arrow table handed to ``query``) becomes the
  temporary view the store registered for it;
- a file scan ``read_parquet('dir/**/*.parquet', ...)`` / ``read_csv(...)`` becomes a view over
  ``spark.read`` of those files (Spark has no such table functions);
- DuckDB's microsecond helpers map to Spark's: ``make_timestamptz(us)`` -> ``timestamp_micros(us)``,
  ``epoch_us(ts)`` -> ``unix_micros(ts)``.

Everything else (``QUALIFY``, casts, quoting, ``UNION ALL BY NAME`` ...) is sqlglot's own DuckDB -> Spark
translation. Constructs with no Spark equivalent (ASOF JOIN, list-valued ``max_by``) fail as a StorageError
from Spark's analyzer; point-in-time joins and window aggregations are the store's own
``point_in_time_join`` and ``window_join``, built with Spark's API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from forgeml.errors import StorageError

FUNCTIONS = {"make_timestamptz": "timestamp_micros", "epoch_us": "unix_micros"}


@dataclass(frozen=True)
class FileScan:
    """A table function reading files: its format (parquet or csv) and the path pattern it names."""

    file_format: str
    pattern: str


def to_spark(sql: str, view_for_table: Callable[[str], str | None],
             view_for_files: Callable[[FileScan], str]) -> str:
    """Return Spark SQL for contract SQL, naming the views the callbacks register for tables and file scans."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError as e:
        raise StorageError(f"invalid SQL for the Spark offline store: {' '.join(str(e).split())}") from e

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table):
            source = node.this
            if isinstance(source, exp.ReadParquet | exp.ReadCSV):
                scan = FileScan("csv" if isinstance(source, exp.ReadCSV) else "parquet", _first_string(source, sql))
                return _renamed(node, view_for_files(scan))
            if isinstance(source, exp.Identifier) and not node.args.get("db"):
                view = view_for_table(source.name)
                if view is not None:
                    return _renamed(node, view)
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in FUNCTIONS:
            return exp.Anonymous(this=FUNCTIONS[str(node.this).lower()], expressions=node.expressions)
        return node

    try:
        return tree.transform(rewrite).sql(dialect="spark")
    except sqlglot.errors.SqlglotError as e:
        raise StorageError(f"cannot translate SQL for Spark: {' '.join(str(e).split())}") from e


def _first_string(function: object, sql: str) -> str:
    from sqlglot import exp

    args = [function.this] if getattr(function, "this", None) is not None else []  # type: ignore[attr-defined]
    args += list(getattr(function, "expressions", []) or [])
    for arg in args:
        if isinstance(arg, exp.Literal) and arg.is_string:
            return str(arg.this)
    raise StorageError(f"a file scan in {sql[:80]!r} names no path as a string literal")


def _renamed(node: object, view: str) -> object:
    from sqlglot import exp

    alias = node.args.get("alias")  # type: ignore[attr-defined]
    return exp.Table(this=exp.to_identifier(view, quoted=True), alias=alias.copy() if alias else None)

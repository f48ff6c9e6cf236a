"""No SQL written in core, the TUI or a plugin relies on one database's dialect (docs/metadata.md).

Every string literal is read with ast and checked for constructs SQLite accepts and PostgreSQL does
not (or the other way round). The metadata stores themselves (storage/, plugins/postgres/) are the
only places that may speak a dialect.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [ROOT / "core", ROOT / "plugins", ROOT / "tui"]
DIALECT_OWNERS = {ROOT / "plugins" / "postgres"}
# the contract's own documentation names what is forbidden
ALLOWED_FILES = {ROOT / "core" / "contracts.py"}

NOT_PORTABLE = {
    r"\bINSERT\s+OR\s+(IGNORE|REPLACE)\b": "INSERT OR IGNORE/REPLACE: use tx.insert_or_ignore / tx.upsert",
    r"\bAUTOINCREMENT\b": "AUTOINCREMENT: declare the table with sqlalchemy.Table and forgeml.sqltypes.ID",
    r"\bjson_(each|extract|group_object|group_array|object|array)\s*\(": "json_* functions are SQLite's",
    r"\bTOTAL\s*\(": "TOTAL() is SQLite's: COALESCE(SUM(x), 0)",
    r"\b(IFNULL|ifnull)\s*\(": "IFNULL is SQLite's: COALESCE",
    r"\bGLOB\b": "GLOB is SQLite's",
    r"\bsqlite_master\b": "sqlite_master: ask applied_migrations() or the engine's inspector",
    r"\bPRAGMA\b": "PRAGMA is SQLite's",
    r"\bCROSS\s+JOIN\b[^\"']*\bON\b": "CROSS JOIN ... ON: use JOIN ... ON",
    r"\?\s+IS\s+NULL\b": "? IS NULL: PostgreSQL cannot type a NULL parameter; build the condition in Python",
    r"\b(MAX|MIN|max|min)\(\s*(coalesce|COALESCE)\(": "two-argument MAX/MIN is SQLite's: CASE WHEN or Python",
    r"\bWITHOUT\s+ROWID\b": "WITHOUT ROWID is SQLite's: sqlite_with_rowid=False on the Table",
    r"\bCREATE\s+TABLE\b[^;]*\bREAL\b": "REAL is a 4-byte float on PostgreSQL: declare sa.Double (or DOUBLE PRECISION)",
}
SQL_HINT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|ON CONFLICT|JOIN)\b")


def _strings(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                           for v in node.values)
            yield node.lineno, text
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _files():
    for folder in SCANNED:
        for path in sorted(folder.rglob("*.py")):
            if path in ALLOWED_FILES or any(owner in path.parents for owner in DIALECT_OWNERS):
                continue
            yield path


def test_sql_outside_the_stores_is_portable() -> None:
    """SQL-looking literals hold none of the constructs only one database accepts."""
    problems = []
    for path in _files():
        for line, text in _strings(path):
            if not SQL_HINT.search(text) and "AUTOINCREMENT" not in text and "PRAGMA" not in text:
                continue
            for pattern, why in NOT_PORTABLE.items():
                if re.search(pattern, text):
                    problems.append(f"{path.relative_to(ROOT)}:{line}: {why}")
    assert not problems, "\n".join(problems)


def test_the_check_finds_what_it_forbids(tmp_path: Path) -> None:
    """A module with SQLite-only SQL is reported (the check itself can fail)."""
    module = tmp_path / "bad.py"
    module.write_text('Q = "SELECT TOTAL(x) FROM t"\nR = f"INSERT OR IGNORE INTO {t} VALUES (?)"\n')
    hits = {why.split(":")[0] for _line, text in _strings(module) for pattern, why in NOT_PORTABLE.items()
            if re.search(pattern, text)}
    assert hits == {"TOTAL() is SQLite's", "INSERT OR IGNORE/REPLACE"}, hits


def test_no_module_outside_the_stores_touches_a_driver() -> None:
    """Only the stores import sqlite3 or psycopg, or read a cursor's lastrowid."""
    found = []
    for path in _files():
        text = path.read_text()
        for needle in ("import sqlite3", "import psycopg", ".lastrowid", "sqlite3."):
            if needle in text:
                found.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not found, found

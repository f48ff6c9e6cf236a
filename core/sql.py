"""Quoting for the SQL text the offline-store contract speaks (DuckDB's dialect): identifiers and literals."""

from __future__ import annotations


def quote_ident(name: str) -> str:
    """Quote an SQL identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote a string literal for DuckDB."""
    return "'" + text.replace("'", "''") + "'"

"""Shared CLI output helpers: JSON for scripts, rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click


def emit_json(value: Any) -> None:
    """Print a value as JSON (dataclasses and paths turned into plain values)."""
    click.echo(json.dumps(value, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print rows as a rich table with the given columns (default: the first row's keys)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    columns = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(str(c))
    for row in rows:
        table.add_row(*["" if row.get(c) is None else escape(str(row.get(c))) for c in columns])
    Console().print(table)

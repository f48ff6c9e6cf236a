"""Shared CLI output helpers: JSON and CSV for scripts, rich tables for people, fitted to the terminal."""

from __future__ import annotations

import csv
import functools
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

FORMATS = ("table", "json", "csv")
_FORMAT_KEY = "forgeml.output_format"


def emit_json(value: Any) -> None:
    """Print a value as JSON (dataclasses and paths turned into plain values)."""
    click.echo(json.dumps(value, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def output_format() -> str:
    """The --format the running command was given ('table' when none, or outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_FORMAT_KEY, "table") if ctx is not None else "table"


def emit_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print rows as CSV with a header line (None as an empty cell)."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, title: str | None = None,
                headers: Mapping[str, str] | None = None, caption: str | None = None) -> None:
    """Print rows as a rich table, or as CSV or JSON when the command was given --format csv or json."""
    columns = list(columns or (rows[0].keys() if rows else []))
    fmt = output_format()
    if fmt == "csv":
        emit_csv(rows, columns)
        return
    if fmt == "json":
        emit_json([{c: row.get(c) for c in columns} for row in rows])
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    headers = headers or {}
    table = Table(title=title, caption=caption, show_lines=False)
    for c in columns:
        header = str(headers.get(c, c))
        # a header is never cut: its column is at least as wide as the header itself
        table.add_column(escape(header), min_width=len(header), overflow="ellipsis")
    for row in rows:
        table.add_row(*["" if row.get(c) is None else escape(str(row.get(c))) for c in columns])
    Console().print(table)


def fit_columns(rows: Sequence[Mapping[str, Any]], fixed: Sequence[str], optional: Sequence[str],
                headers: Mapping[str, str], width: int) -> tuple[list[str], list[str]]:
    """Choose the optional columns that fit beside the fixed ones in `width` characters; return (shown, left out)."""

    def need(column: str) -> int:
        cells = [len(str(headers.get(column, column)))] + [len(str(r.get(column) or "")) for r in rows]
        return max(cells) + 3  # rich's padding and separator

    used = 1 + sum(need(c) for c in fixed)
    shown, left = list(fixed), []
    for column in optional:
        cost = need(column)
        if used + cost <= width:
            shown.append(column)
            used += cost
        else:
            left.append(column)
    return shown, left


def terminal_width() -> int:
    """The width rich will print at (COLUMNS, the terminal, or 80)."""
    from rich.console import Console

    return Console().width


def add_format_options(command: click.Command) -> click.Command:
    """Give a command (and a group's subcommands) that prints JSON a --format table|json|csv option."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_format_options(sub)
        return command
    names = {p.name for p in command.params}
    # a command whose own --format means something else (datasets add: the input file's format) keeps it
    taken = any("--format" in getattr(p, "opts", ()) for p in command.params)
    if taken or "output_format" in names or "as_json" not in names or command.callback is None:
        return command
    callback = command.callback

    @functools.wraps(callback)
    def run(*args: Any, output_format: str | None = None, **kwargs: Any) -> Any:
        use_format(output_format)
        if output_format == "json":
            kwargs["as_json"] = True
        return callback(*args, **kwargs)

    command.callback = run
    command.params.append(format_option_param())
    return command


def format_option_param() -> click.Option:
    """The --format option: table (default), json or csv."""
    return click.Option(["--format", "output_format"], type=click.Choice(FORMATS), default=None,
                        help="Print a table (default), JSON or CSV.")


def use_format(output_format: str | None) -> None:
    """Record the command's --format so that print_table honours it."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and output_format:
        ctx.meta[_FORMAT_KEY] = output_format

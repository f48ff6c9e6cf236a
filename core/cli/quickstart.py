"""`forgeml quickstart`: the whole lifecycle in a new workspace, with a status line per step."""

from __future__ import annotations

import logging
import textwrap
from typing import Any

import click


class StepLogHandler(logging.Handler):
    """Keeps warnings logged during a step, to print them as indented lines under the step's report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep one record as a single line."""
        try:
            message = " ".join(record.getMessage().split())
        except Exception:  # a malformed record must not break the quickstart
            message = str(record.msg)
        self.lines.append(f"{record.levelname.lower()}: {message}")

    def take(self) -> list[str]:
        """Return and forget the lines kept so far."""
        lines, self.lines = self.lines, []
        return lines


@click.command("quickstart")
@click.argument("directory", required=False, default="forgeml-quickstart")
@click.argument("target", required=False)
@click.option("--small", is_flag=True, help="Less data, fewer trials, epochs and requests.")
@click.option("--force", is_flag=True, help="Replace a previous quickstart in DIRECTORY (never other files).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (progress goes to stderr).")
def quickstart_cmd(directory: str, target: str | None, small: bool, force: bool, as_json: bool) -> None:
    """Run the whole lifecycle in a new workspace: data, features, tuning, registry, serving, drift, retraining.

    DIRECTORY (default: forgeml-quickstart) must be new or empty. Everything runs on this machine:
    a GPU when there is one, else the CPU. `forgeml quickstart recsys [DIRECTORY]` builds and serves a
    two-stage recommender instead (default folder forgeml-recsys-quickstart; ./recsys names a folder).
    """
    from rich.console import Console

    from forgeml.cli.output import emit_json
    from forgeml.quickstart import run_quickstart

    console = Console(stderr=as_json, highlight=False)
    status = console.status("starting", spinner="dots")
    status.start()

    # notifiers and libraries log while steps run: their lines go under the step's report, indented,
    # instead of landing in the middle of the status line
    handler = StepLogHandler()

    def progress(event: Any) -> None:
        where = f"[{event.number:>2}/{event.total}]"
        if event.state == "started":
            status.update(f"{where} {event.title} ...")
        elif event.state == "progress":
            status.update(f"{where} {event.title} ... {event.message}")
        elif event.state == "done":
            console.print(f"[green]✓[/] {where} [bold]{event.title}[/] [dim]({event.seconds:.1f}s)[/]")
            console.print(f"          {event.message}", markup=False)
        else:
            console.print(f"[red]✗[/] {where} [bold]{event.title}[/] [dim]({event.seconds:.1f}s)[/]")
        if event.state in ("done", "failed"):
            for line in handler.take():  # wrapped inside the step's indent, so the layout holds at any width
                for part in textwrap.wrap(line, max(20, console.width - 10)):
                    console.print(f"          {part}", markup=False, highlight=False)

    if target is not None and directory != "recsys":
        raise click.UsageError(f"unexpected argument {target!r}; only `forgeml quickstart recsys` takes a folder after it")
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    try:
        if directory == "recsys":
            from forgeml.quickstart.recsys import DEFAULT_DIRECTORY, run_recsys_quickstart

            summary = run_recsys_quickstart(target or DEFAULT_DIRECTORY, "small" if small else "default",
                                            progress=progress, force=force)
        else:
            summary = run_quickstart(directory, "small" if small else "default", progress=progress, force=force)
    finally:
        root_logger.removeHandler(handler)
        status.stop()
    if as_json:
        emit_json(summary.to_dict())
        return
    console.print()
    console.rule(f"[bold]quickstart done in {summary.elapsed_s:.0f}s")
    for line in summary.report():
        console.print(line, markup=False)
    console.print()
    if directory == "recsys":
        console.print(f"Serve it: [bold]cd {summary.directory} && forgeml serve[/] and POST to "
                      "/v1/recommenders/shop/recommend")
        return
    console.print(f"Look around: [bold]cd {summary.directory} && forgeml tui[/] "
                  "(runs, the model in production, the drift alert and the retrained model)")

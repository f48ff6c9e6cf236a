"""`forgeml quickstart`: the whole lifecycle in a new workspace, with a status line per step."""

from __future__ import annotations

from typing import Any

import click


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

    def progress(event: Any) -> None:
        where = f"[{event.number:>2}/{event.total}]"
        if event.state == "started":
            status.update(f"{where} {event.title} ...")
        elif event.state == "done":
            console.print(f"[green]✓[/] {where} [bold]{event.title}[/] [dim]({event.seconds:.1f}s)[/]")
            console.print(f"          {event.message}", markup=False)
        else:
            console.print(f"[red]✗[/] {where} [bold]{event.title}[/] [dim]({event.seconds:.1f}s)[/]")

    if target is not None and directory != "recsys":
        raise click.UsageError(f"unexpected argument {target!r}; only `forgeml quickstart recsys` takes a folder after it")
    try:
        if directory == "recsys":
            from forgeml.quickstart.recsys import DEFAULT_DIRECTORY, run_recsys_quickstart

            summary = run_recsys_quickstart(target or DEFAULT_DIRECTORY, "small" if small else "default",
                                            progress=progress, force=force)
        else:
            summary = run_quickstart(directory, "small" if small else "default", progress=progress, force=force)
    finally:
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

"""Home: GPUs, the queue, recent runs, production models, open alerts and stale feature views."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.widgets import Footer, Header, ProgressBar, Static

from forgeml.tui import data
from forgeml.tui.screens.base import DataScreen


class HomeScreen(DataScreen):
    """The overview a user lands on."""

    refresh_s = 2.0

    def compose(self) -> ComposeResult:
        """Lay out the panels."""
        yield Header()
        with Grid(id="home-grid"):
            with VerticalScroll(id="gpus", classes="panel"):
                yield Static("GPUs", classes="panel-title")
                yield Static("reading…", id="gpu-list")
            yield Static("", id="jobs-panel", classes="panel")
            yield Static("", id="runs-panel", classes="panel")
            yield Static("", id="models-panel", classes="panel")
            yield Static("", id="alerts-panel", classes="panel")
            yield Static("", id="features-panel", classes="panel")
        yield Footer()

    def load(self) -> data.HomeData:
        """Read every panel's data."""
        return data.home(self.ws)

    def show(self, home: data.HomeData) -> None:
        """Fill the panels."""
        gpu_box = self.query_one("#gpus", VerticalScroll)
        for bar in gpu_box.query(ProgressBar):
            bar.remove()
        if not home.gpus:
            self.query_one("#gpu-list", Static).update("No NVIDIA GPU found: CPU mode.\nJobs run on the CPU cores.")
        else:
            self.query_one("#gpu-list", Static).update(
                "\n".join(f"{g['index']}: {g['name']}  {g['util']:.0f}% busy  "
                          f"{g['mem_used']}/{g['mem_total']} MiB" for g in home.gpus))
            for g in home.gpus:
                bar = ProgressBar(total=100, show_eta=False, show_percentage=True)
                gpu_box.mount(bar)
                bar.update(progress=g["util"])
        self._panel("#jobs-panel", "Queue (j)", [f"{j['state']:<9} {j['name']}  gpus {j['gpus']}" for j in home.jobs],
                    "no pending or running jobs")
        self._panel("#runs-panel", "Recent runs (r)", [_run_line(r) for r in home.runs], "no runs yet")
        self._panel("#models-panel", "In production (m)",
                    [f"{m['name']} v{m['version']}  {m['metrics']}" for m in home.production], "no model in production")
        self._panel("#alerts-panel", "Open alerts (s)",
                    [f"[{a['severity']}] {a['rule']}: {a['message']}" for a in home.alerts], "no open alerts")
        self._panel("#features-panel", "Stale feature views (f)", home.stale_views + home.problems,
                    "every feature view is fresh")

    def _panel(self, selector: str, title: str, lines: list[str], empty: str) -> None:
        from rich.markup import escape

        body = "\n".join(escape(line) for line in lines) if lines else f"[dim]{empty}[/dim]"
        self.query_one(selector, Static).update(f"[b]{title}[/b]\n{body}")


def _run_line(run: dict[str, Any]) -> str:
    metrics = ", ".join(f"{k[8:]}={v:.4g}" for k, v in run.items()
                        if k.startswith("metrics.") and isinstance(v, int | float) and v == v)
    return f"{run.get('status', '')[:8]:<8} {run.get('name') or run.get('run_id', '')[:8]}  {metrics[:60]}"

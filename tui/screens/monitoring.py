"""Serving and monitoring: endpoints' latency, drift per feature, experiments, and alerts with acknowledge."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static

from forgeml.tui import data
from forgeml.tui.screens.base import DataScreen, fill

EXPERIMENT_COLUMNS = ["name", "endpoint", "status", "arms", "policy", "holdout", "best", "decision"]
ALERT_COLUMNS = ["id", "severity", "status", "rule", "subject", "value", "seen", "message"]


class MonitoringScreen(DataScreen):
    """What is served, how it behaves, and what fired."""

    refresh_s = 3.0
    BINDINGS = [("a", "acknowledge", "Acknowledge")]

    def __init__(self) -> None:
        super().__init__()
        self.alert_rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        """Endpoints, drift and experiments above, alerts below."""
        yield Header()
        with Vertical():
            yield Static("", id="serving-panel")
            yield DataTable(id="drift-table", zebra_stripes=True)
            yield DataTable(id="experiments-table", zebra_stripes=True)
            yield DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def load(self) -> dict[str, Any]:
        """Read serving stats, drift, experiments and alerts."""
        return {"serving": data.serving_summary(self.ws), "drift": data.drift_rows(self.ws),
                "experiments": data.experiments(self.ws), "alerts": data.alerts(self.ws)}

    def show(self, loaded: dict[str, Any]) -> None:
        """Fill the four panes."""
        lines = [f"{s['model']} v{s['versions']}: {s['requests']} requests, p50 {s['p50_ms']:.1f} ms, "
                 f"p99 {s['p99_ms']:.1f} ms, errors {s['error_rate']:.1%}, arms {s['arms']}"
                 for s in loaded["serving"]]
        self.query_one("#serving-panel", Static).update(
            "[b]Serving (prediction log, last 24h)[/b]\n" + ("\n".join(lines) or "[dim]no predictions logged[/dim]"))
        drift = loaded["drift"]
        fill(self.query_one("#drift-table", DataTable), drift,
             ["model", "column", "test", "statistic", "p_value", "effect_size", "severity"])
        fill(self.query_one("#experiments-table", DataTable), loaded["experiments"], EXPERIMENT_COLUMNS)
        self.alert_rows = loaded["alerts"]
        fill(self.query_one("#alerts-table", DataTable), self.alert_rows, ALERT_COLUMNS)

    def action_acknowledge(self) -> None:
        """Acknowledge the highlighted alert."""
        table = self.query_one("#alerts-table", DataTable)
        if not self.alert_rows:
            return
        alert = self.alert_rows[min(table.cursor_row or 0, len(self.alert_rows) - 1)]
        self.run_action(data.acknowledge, self.ws, int(alert["id"]), done=f"alert {alert['id']} acknowledged")

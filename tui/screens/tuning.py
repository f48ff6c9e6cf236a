"""Tuning: each study's optimization history and parameter importances."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from forgeml.tui import data
from forgeml.tui.screens.base import DataScreen, fill

COLUMNS = ["name", "direction", "n_trials", "best_value", "best_params"]


class TuningScreen(DataScreen):
    """Studies left; the highlighted study's history and importances right."""

    refresh_s = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.cursor = 0

    def compose(self) -> ComposeResult:
        """Studies, plot, importances."""
        yield Header()
        with Horizontal():
            yield DataTable(id="studies-table", cursor_type="row", zebra_stripes=True)
            with Vertical():
                yield PlotextPlot(id="study-plot")
                yield Static("", id="importances")
        yield Footer()

    def load(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Read the studies and the highlighted one's trials."""
        rows = data.studies(self.ws)
        row = self.cursor
        detail = data.study_detail(self.ws, rows[row]["name"]) if rows and row < len(rows) else None
        return rows, detail

    def show(self, loaded: tuple[list[dict[str, Any]], dict[str, Any] | None]) -> None:
        """Fill the table, the history plot and the importances."""
        self.rows, detail = loaded
        fill(self.query_one("#studies-table", DataTable), self.rows, COLUMNS)
        widget = self.query_one("#study-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.title("optimization history")
        if detail and detail["values"]:
            plt.scatter(detail["numbers"], detail["values"], label="trial")
            plt.plot(detail["numbers"], detail["best"], label="best so far")
        widget.refresh()
        if detail:
            bars = "\n".join(f"{k:<16} {'█' * int(v * 30)} {v:.2f}"
                             for k, v in sorted(detail["importances"].items(), key=lambda kv: -kv[1]))
            states = ", ".join(f"{k}: {v}" for k, v in detail["states"].items())
            self.query_one("#importances", Static).update(f"[b]trials[/b] {states}\n[b]importances[/b]\n{bars}")

    @on(DataTable.RowHighlighted, "#studies-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Show the highlighted study."""
        if event.cursor_row != self.cursor:
            self.cursor = event.cursor_row
            self.reload()

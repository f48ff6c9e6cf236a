"""Features: views with owners, versions and freshness against SLA; online values for an entity key."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Footer, Header, Input, Pretty

from forgeml.tui import data
from forgeml.tui.screens.base import DataScreen, fill

COLUMNS = ["view", "version", "owner", "entities", "age", "sla", "stale"]


class FeaturesScreen(DataScreen):
    """Feature views and a lookup box for the highlighted view's online values."""

    refresh_s = 5.0
    AUTO_FOCUS = "#views-table"
    BINDINGS = [("slash", "focus_lookup", "Look up a key"), ("escape", "focus_table", "Table")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        """Views, lookup, result."""
        yield Header()
        yield DataTable(id="views-table", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="entity key of the highlighted view, then enter", id="entity-key")
        yield Pretty({}, id="online-values")
        yield Footer()

    def load(self) -> list[dict[str, Any]]:
        """Read the views and their freshness."""
        return data.feature_views(self.ws)

    def show(self, rows: list[dict[str, Any]]) -> None:
        """Fill the table."""
        self.rows = rows
        fill(self.query_one("#views-table", DataTable), rows, COLUMNS)

    def action_focus_lookup(self) -> None:
        """Put the cursor in the entity-key box."""
        self.query_one("#entity-key", Input).focus()

    def action_focus_table(self) -> None:
        """Back to the views table."""
        self.query_one("#views-table", DataTable).focus()

    @on(Input.Submitted, "#entity-key")
    def lookup(self, event: Input.Submitted) -> None:
        """Read the online values for the typed key."""
        table = self.query_one("#views-table", DataTable)
        if not self.rows:
            return
        view = self.rows[min(table.cursor_row or 0, len(self.rows) - 1)]["view"]
        self.run_action(self._lookup, view, event.value.strip())

    def _lookup(self, view: str, key: str) -> None:
        values = data.online_sample(self.ws, view, key)
        self.app.call_from_thread(self.query_one("#online-values", Pretty).update, values)

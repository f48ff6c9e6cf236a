"""Runs: search with the tracking query language, metric curves, side-by-side compare."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual_plotext import PlotextPlot

from forgeml.errors import ForgeError
from forgeml.tui import data
from forgeml.tui.screens.base import DataScreen, fill

COLUMNS = ["run_id", "name", "experiment", "status"]


class RunsScreen(DataScreen):
    """Every run, searchable; space marks runs to plot or compare."""

    refresh_s = 5.0
    AUTO_FOCUS = "#runs-table"
    BINDINGS = [
        ("slash", "focus_search", "Search"),
        ("escape", "focus_table", "Table"),
        ("space", "mark", "Mark"),
        ("c", "compare", "Compare marked"),
        ("n", "next_metric", "Next metric"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.query_text = ""
        self.rows: list[dict[str, Any]] = []
        self.marked: list[str] = []
        self.metric_index = 0

    def compose(self) -> ComposeResult:
        """Search box above, table left, curves right."""
        yield Header()
        yield Input(placeholder="params.lr between 1e-4 and 1e-3 and metrics.val_loss < 0.5 order by metrics.val_loss",
                    id="run-search")
        with Horizontal():
            yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="run-side"):
                yield Static("", id="run-detail")
                yield PlotextPlot(id="run-plot")
        yield Footer()

    def load(self) -> list[dict[str, Any]]:
        """Search runs with the current query."""
        return data.runs(self.ws, self.query_text)

    def show(self, rows: list[dict[str, Any]]) -> None:
        """Fill the table: attributes then up to four metric columns."""
        self.rows = rows
        metric_cols = sorted({k for r in rows[:200] for k in r if k.startswith("metrics.")})[:4]
        table = self.query_one("#runs-table", DataTable)
        columns = COLUMNS + metric_cols
        if [str(c.label) for c in table.columns.values()] != ["", *columns][1:]:
            table.clear(columns=True)
        shown = [{**r, "run_id": str(r.get("run_id", ""))[:10],
                  **{c: (f"{r[c]:.4g}" if isinstance(r.get(c), float) and r[c] == r[c] else r.get(c))
                     for c in metric_cols}} for r in rows]
        fill(table, shown, columns)
        self.sub_title = f"{len(rows)} runs" + (f" matching {self.query_text!r}" if self.query_text else "")

    @on(Input.Submitted, "#run-search")
    def search(self, event: Input.Submitted) -> None:
        """Run the typed query."""
        self.query_text = event.value.strip()
        self.query_one("#runs-table", DataTable).focus()
        self.reload()

    def action_focus_search(self) -> None:
        """Put the cursor in the search box."""
        self.query_one("#run-search", Input).focus()

    def action_focus_table(self) -> None:
        """Leave the search box for the table."""
        self.query_one("#runs-table", DataTable).focus()

    def _current(self) -> str | None:
        table = self.query_one("#runs-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return str(self.rows[table.cursor_row]["run_id"])

    def action_mark(self) -> None:
        """Mark or unmark the highlighted run."""
        run_id = self._current()
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked.append(run_id)
        self.notify(f"{len(self.marked)} run(s) marked")
        self.plot()

    def action_next_metric(self) -> None:
        """Plot the next metric."""
        self.metric_index += 1
        self.plot()

    @on(DataTable.RowHighlighted, "#runs-table")
    def highlighted(self) -> None:
        """Plot the highlighted run (and the marked ones)."""
        self.plot()

    def plot(self) -> None:
        """Plot the marked runs and the highlighted one."""
        current = self._current()
        ids = list(dict.fromkeys(self.marked + ([current] if current else [])))
        if ids:
            self._plot(ids)

    @work(thread=True, exclusive=True, group="plot")
    def _plot(self, ids: list[str]) -> None:
        """Read metric histories in a worker, then draw them on the UI thread."""
        try:
            keys = sorted({k for r in ids for k in data.metric_keys(self.ws, r) if not k.startswith("system/")})
            if not keys:
                self.app.call_from_thread(self._draw, "", [])
                return
            key = keys[self.metric_index % len(keys)]
            series = [(r[:8], *data.metric_history(self.ws, r, key)) for r in ids]
        except ForgeError as e:
            self.app.call_from_thread(self.notify, str(e), severity="error")
            return
        self.app.call_from_thread(self._draw, key, series)

    def _draw(self, key: str, series: list[tuple[str, list[float], list[float]]]) -> None:
        widget = self.query_one("#run-plot", PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.title(key or "no metrics")
        for label, steps, values in series:
            if steps:  # a marked run may not have logged this metric; plotext cannot draw an empty series
                plt.plot(steps, values, label=label)
        widget.refresh()
        self.query_one("#run-detail", Static).update(f"{key}: {len(series)} run(s); n = next metric")

    def action_compare(self) -> None:
        """Compare the marked runs side by side."""
        if len(self.marked) < 2:
            self.notify("mark two or more runs with space first", severity="warning")
            return
        self.app.push_screen(CompareScreen(list(self.marked)))


class CompareScreen(DataScreen):
    """Params and final metrics of several runs side by side; differing rows highlighted."""

    refresh_s = 0
    BINDINGS = [("escape", "app.pop_screen", "Back")]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        """One table."""
        yield Header()
        yield DataTable(id="compare-table", zebra_stripes=True)
        yield Footer()

    def load(self) -> list[dict[str, Any]]:
        """Read the comparison."""
        return data.compare(self.ws, self.run_ids)

    def show(self, rows: list[dict[str, Any]]) -> None:
        """Differing values in bold yellow."""
        from rich.text import Text

        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        table.add_columns("key", *[r[:10] for r in self.run_ids])
        for row in rows:
            style = "bold yellow" if row["differs"] else ""
            table.add_row(Text(row["field"], style=style), *[Text("" if v is None else str(v), style=style)
                                                           for v in row["values"]])

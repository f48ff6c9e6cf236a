"""Labeling: answer a label set's pending tasks from the keyboard when no labelling server runs.

The screen shows one task at a time (its fields, and the model's pre-label with its score); keys 1 to
9 give the task that class, ``n`` skips it. Every answer goes through the annotation service
(``forgeml.labeling.annotate.label_here``), so it lands in the label set at once.
"""

from __future__ import annotations

import getpass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static

from forgeml.tui.screens.base import DataScreen, fill

COLUMNS = ["name", "dataset", "items", "records"]


class LabelingScreen(DataScreen):
    """Label sets left; the highlighted set's next pending task right, answered with the number keys."""

    refresh_s = 5.0
    AUTO_FOCUS = "#labelsets-table"
    BINDINGS = [
        *[Binding(str(i), f"answer({i})", f"class {i}", show=i <= 3) for i in range(1, 10)],
        Binding("n", "skip", "Skip"),
    ]

    def __init__(self, label_set: str | None = None, annotator: str | None = None) -> None:
        super().__init__()
        self.wanted = label_set
        self.annotator = annotator or getpass.getuser()
        self.rows: list[dict[str, Any]] = []
        self.cursor = 0
        self.queue: dict[str, Any] | None = None
        self.skipped: set[str] = set()

    def compose(self) -> ComposeResult:
        """Label sets, the current task."""
        yield Header()
        with Horizontal():
            yield DataTable(id="labelsets-table", cursor_type="row", zebra_stripes=True)
            with Vertical():
                yield Static("", id="task")
        yield Footer()

    def load(self) -> tuple[list[dict[str, Any]], dict[str, Any] | str | None]:
        """Read the label sets and the highlighted one's pending tasks (or why there are none to answer here)."""
        from forgeml.errors import ForgeError
        from forgeml.labeling.annotate import queue
        from forgeml.labeling.labelsets import list_label_sets

        rows = list_label_sets(workspace=self.ws)
        if self.wanted is not None:
            self.cursor = next((i for i, r in enumerate(rows) if r["name"] == self.wanted), self.cursor)
            self.wanted = None
        if not rows or self.cursor >= len(rows):
            return rows, None
        try:
            return rows, queue(rows[self.cursor]["name"], self.annotator, workspace=self.ws)
        except ForgeError as e:  # e.g. a backend with its own labelling UI: say so in the task panel
            return rows, str(e)

    def show(self, loaded: tuple[list[dict[str, Any]], dict[str, Any] | str | None]) -> None:
        """Fill the table and the task panel."""
        self.rows, found = loaded
        table = self.query_one("#labelsets-table", DataTable)
        fill(table, self.rows, COLUMNS)
        if self.rows and table.cursor_row != self.cursor:
            table.move_cursor(row=self.cursor)
        self.queue = found if isinstance(found, dict) else None
        self.query_one("#task", Static).update(self._describe(found))

    def _current(self) -> dict[str, Any] | None:
        if not self.queue:
            return None
        return next((t for t in self.queue["tasks"] if t["key"] not in self.skipped), None)

    def _describe(self, found: dict[str, Any] | str | None) -> str:
        from rich.markup import escape

        if found is None:
            return "No label sets yet: create one with `forgeml label create`."
        if isinstance(found, str):
            return escape(found)
        task = self._current()
        if task is None:
            return f"[b]{escape(found['label_set'])}[/b]: nothing left for {escape(self.annotator)} to label."
        lines = [f"[b]{escape(found['label_set'])}[/b]  {escape(found['instructions'])}",
                 f"item [b]{escape(task['key'])}[/b]  ({len(found['tasks'])} waiting for {escape(self.annotator)})", ""]
        lines += [f"{escape(str(k))}: {escape(str(v))}" for k, v in task["data"].items()]
        if task["prediction"] is not None:
            score = f" ({task['score']:.2f})" if task["score"] is not None else ""
            lines += ["", f"model says [b]{escape(task['prediction'])}[/b]{score}"]
        lines += [""] + [f"[b]{i}[/b] {escape(c)}" for i, c in enumerate(found["classes"], start=1)] + ["[b]n[/b] skip"]
        return "\n".join(lines)

    @on(DataTable.RowHighlighted, "#labelsets-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Show the highlighted label set's tasks."""
        if event.cursor_row != self.cursor:
            self.cursor = event.cursor_row
            self.skipped.clear()
            self.force_reload()

    def action_answer(self, number: int) -> None:
        """Give the current task the class with this number."""
        from forgeml.labeling.annotate import label_here

        task = self._current()
        if task is None or self.queue is None or number > len(self.queue["classes"]):
            return
        label = self.queue["classes"][number - 1]
        self.run_action(label_here, self.queue["label_set"], task["key"], label, self.annotator, self.ws,
                        done=f"{task['key']}: {label}")

    def action_skip(self) -> None:
        """Leave the current task for later."""
        task = self._current()
        if task is not None:
            self.skipped.add(task["key"])
            self.query_one("#task", Static).update(self._describe(self.queue))

"""Jobs: the queue with states, a live log of the highlighted job, submit, cancel, retry."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Header, Input, Label, Log

from forgeml.tui import data
from forgeml.tui.screens.base import DataScreen, fill

COLUMNS = ["id", "name", "state", "priority", "target", "gpus", "attempts", "exit", "submitted", "reason"]


class JobsScreen(DataScreen):
    """The queue; the log pane follows the highlighted job."""

    refresh_s = 1.0
    BINDINGS = [("c", "cancel", "Cancel"), ("R", "retry", "Retry"), ("n", "submit", "Submit")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.log_job: str | None = None
        self.log_offset = 0
        self.log_empty_said = False

    def compose(self) -> ComposeResult:
        """Queue above, log below."""
        yield Header()
        with Vertical():
            yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
            yield Log(id="job-log", max_lines=5000)
        yield Footer()

    def load(self) -> tuple[list[dict[str, Any]], str | None, str]:
        """Read the queue and any new log text of the followed job."""
        rows = data.jobs(self.ws)
        text = ""
        job = self.log_job
        if job is not None:
            text, self.log_offset = data.job_log(self.ws, job, self.log_offset)
        return rows, job, text

    def show(self, loaded: tuple[list[dict[str, Any]], str | None, str]) -> None:
        """Fill the queue and append to the log."""
        rows, job, text = loaded
        self.rows = rows
        fill(self.query_one("#jobs-table", DataTable), rows, COLUMNS)
        log = self.query_one("#job-log", Log)
        if job != self.log_job:
            return
        if text:
            if self.log_empty_said:
                log.clear()
                self.log_empty_said = False
            log.write(text)
        elif job is not None and self.log_offset == 0 and not self.log_empty_said:
            state = next((r["state"] for r in rows if str(r["id"]) == job), "")
            log.write(f"(job {job} is {state}: no output yet)" if state in ("PENDING", "RUNNING")
                      else f"(job {job} ended {state} and wrote no output)")
            self.log_empty_said = True

    def _current(self) -> str | None:
        table = self.query_one("#jobs-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return str(self.rows[table.cursor_row]["id"])

    @on(DataTable.RowHighlighted, "#jobs-table")
    def follow(self) -> None:
        """Follow the highlighted job's log from its start."""
        job = self._current()
        if job != self.log_job:
            self.log_job, self.log_offset, self.log_empty_said = job, 0, False
            self.query_one("#job-log", Log).clear()
            self.reload()

    def action_cancel(self) -> None:
        """Cancel the highlighted job."""
        job = self._current()
        if job:
            self.run_action(data.cancel_job, self.ws, job, done=f"job {job}: {{result}}")

    def action_retry(self) -> None:
        """Queue the highlighted job again."""
        job = self._current()
        if job:
            self.run_action(data.retry_job, self.ws, job, done=f"job {job}: {{result}}")

    def action_submit(self) -> None:
        """Ask for a command line and submit it."""
        def submitted(line: str | None) -> None:
            if line:
                self.run_action(data.submit_job, self.ws, line, done="submitted job {result}")

        self.app.push_screen(SubmitScreen(), submitted)


class SubmitScreen(ModalScreen[str | None]):
    """A one-line prompt: what to run."""

    BINDINGS = [("escape", "dismiss_none", "Cancel")]

    def compose(self) -> ComposeResult:
        """Label and input."""
        with Vertical(id="dialog"):
            yield Label("Submit a job: script and arguments (enter to submit, escape to cancel)")
            yield Input(placeholder="train.py --epochs 3", id="submit-line")

    @on(Input.Submitted)
    def done(self, event: Input.Submitted) -> None:
        """Return the typed line."""
        self.dismiss(event.value)

    def action_dismiss_none(self) -> None:
        """Close without submitting."""
        self.dismiss(None)


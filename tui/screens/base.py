"""The pattern every screen shares: load in a worker thread, show on the UI thread, refresh on a timer."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.message import Message
from textual.screen import Screen

from forgeml.errors import ForgeError


class DataScreen(Screen):
    """A screen whose data is read off the UI thread and refreshed every few seconds."""

    refresh_s: float = 3.0
    _digest: int | None = None
    _error: str | None = None  # the load error on screen, said once until its cause goes away
    _loaded_once = False

    class Loaded(Message):
        """A worker finished reading the screen's data."""

        def __init__(self, data: Any) -> None:
            self.data = data
            super().__init__()

    @property
    def ws(self) -> Any:
        """The workspace the app was opened on."""
        return self.app.workspace  # type: ignore[attr-defined]

    def on_mount(self) -> None:
        """Show a loading indicator, load now and on a timer."""
        self._set_loading(True)
        self.reload()
        if self.refresh_s:
            self.set_interval(self.refresh_s, self.reload)

    def on_screen_resume(self) -> None:
        """Reload when the user comes back to the screen."""
        self.reload()

    def force_reload(self) -> None:
        """Reload and redraw even when the data did not change (after the view itself changed)."""
        self._digest = None
        self.reload()

    @work(thread=True, exclusive=True, group="load")
    def reload(self) -> None:
        """Read the data in a worker so the UI never waits on storage."""
        try:
            data = self.load()
        except ForgeError as e:
            self.app.call_from_thread(self._failed, str(e))
            return
        if self._error is not None:
            self.app.call_from_thread(self._recovered)
        # unchanged data is not redrawn: refilling a 10,000-row table every few seconds would stutter
        digest = hash(repr(data))
        if digest == self._digest:
            return
        self._digest = digest
        self.post_message(self.Loaded(data))

    def _set_loading(self, on: bool) -> None:
        """A loading indicator over the screen's tables until their first data arrives."""
        from textual.widgets import DataTable

        if on or not self._loaded_once:
            for table in self.query(DataTable):
                table.loading = on
        self._loaded_once = self._loaded_once or not on

    def _failed(self, message: str) -> None:
        """Say a load error once (the timer retries; the same error is not repeated)."""
        self._set_loading(False)
        if message != self._error:
            self._error = message
            self.app.clear_notifications()
            self.notify(message, title="cannot read", severity="error", timeout=3600)

    def _recovered(self) -> None:
        """The cause went away: take the error down."""
        self._error = None
        self.app.clear_notifications()

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self._set_loading(False)
        self.show(message.data)

    def load(self) -> Any:
        """Return the screen's data (runs in a worker thread)."""
        return None

    def show(self, data: Any) -> None:
        """Put loaded data on screen (runs on the UI thread)."""

    def run_action(self, fn: Any, *args: Any, done: str = "") -> None:
        """Run a service call in a worker and report its outcome as a notification."""
        self._run_action(fn, args, done)

    @work(thread=True, group="action")
    def _run_action(self, fn: Any, args: tuple[Any, ...], done: str) -> None:
        try:
            result = fn(*args)
        except ForgeError as e:
            self.app.call_from_thread(self.notify, str(e), title="refused", severity="error", timeout=8)
            return
        if done:
            self.app.call_from_thread(self.notify, done.format(result=result))
        self.app.call_from_thread(self.reload)


def cell(value: Any) -> str:
    """A value as a table shows it: floats in 4 significant digits, mappings as k=v, lists joined, None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value)


def fill(table: Any, rows: list[dict[str, Any]], columns: list[str], key: str | None = None) -> None:
    """Replace a DataTable's rows, keeping the cursor on the same row index."""
    row = table.cursor_row
    if not table.columns:
        table.add_columns(*columns)
    table.clear()
    table.add_rows([[cell(r.get(c)) for c in columns] for r in rows])
    if rows and row is not None and row < len(rows):
        table.move_cursor(row=row)

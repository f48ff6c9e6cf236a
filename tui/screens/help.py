"""Help: every key, on every screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# forgeml keys

| key | where | does |
|---|---|---|
| h | anywhere | Home: GPUs, queue, recent runs, production models, alerts, stale views |
| j | anywhere | Jobs: the queue and a live log of the highlighted job |
| r | anywhere | Runs: search, curves, compare |
| m | anywhere | Models: versions, stages, evaluations, gates, audit |
| f | anywhere | Features: views, freshness, online values |
| s | anywhere | Serving and monitoring: latency, drift, alerts |
| t | anywhere | Tuning: optimization history, importances |
| ctrl+p | anywhere | Command palette: screens and actions (promote, roll back, cancel, retry, acknowledge, search) |
| ? | anywhere | This help |
| q, ctrl+c | anywhere | Quit |
| / | runs | Search with the query language, e.g. `metrics.val_loss < 0.5 order by metrics.val_loss` |
| space | runs | Mark a run for plotting and compare |
| n | runs | Plot the next metric |
| c | runs | Compare the marked runs |
| n | jobs | Submit a job |
| c | jobs | Cancel the highlighted job |
| R | jobs | Retry the highlighted job |
| p | models | Promote to production (every gate runs; failures are listed) |
| b | models | Roll back to the previous production version |
| a | serving | Acknowledge the highlighted alert |

Scroll with the arrow keys or page up/down; press escape to close.
"""


class HelpScreen(ModalScreen[None]):
    """The key reference."""

    BINDINGS = [("escape", "app.pop_screen", "Close"), ("question_mark", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        """The table of keys, scrollable so it fits any terminal."""
        with VerticalScroll(id="help"):
            yield Markdown(HELP)

    def on_mount(self) -> None:
        """Arrow keys scroll the help from the start."""
        self.query_one("#help", VerticalScroll).focus()

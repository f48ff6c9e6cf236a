"""The forgeml terminal UI: one mode per screen, each reachable by a key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from forgeml.tui.screens.features import FeaturesScreen
from forgeml.tui.screens.help import HelpScreen
from forgeml.tui.screens.home import HomeScreen
from forgeml.tui.screens.jobs import JobsScreen
from forgeml.tui.screens.labeling import LabelingScreen
from forgeml.tui.screens.models import ModelsScreen
from forgeml.tui.screens.monitoring import MonitoringScreen
from forgeml.tui.screens.runs import RunsScreen
from forgeml.tui.screens.tuning import TuningScreen

# actions the command palette offers beside the screens: (title, help, screen mode, the screen's action)
ACTIONS = [
    ("Promote the highlighted model version", "Models: to production, through every gate", "models", "promote"),
    ("Roll back production", "Models: to the previous production version", "models", "rollback"),
    ("Cancel the highlighted job", "Jobs: stop it (SIGTERM, then SIGKILL)", "jobs", "cancel"),
    ("Retry the highlighted job", "Jobs: queue it again", "jobs", "retry"),
    ("Submit a job", "Jobs: a script and its arguments", "jobs", "submit"),
    ("Acknowledge the highlighted alert", "Serving & monitoring", "serving", "acknowledge"),
    ("Search runs", "Runs: the query language, e.g. metrics.val_loss < 0.5", "runs", "focus_search"),
]

SCREENS: list[tuple[str, str, str, type[Screen]]] = [
    ("home", "h", "Home", HomeScreen),
    ("jobs", "j", "Jobs", JobsScreen),
    ("runs", "r", "Runs", RunsScreen),
    ("models", "m", "Models", ModelsScreen),
    ("features", "f", "Features", FeaturesScreen),
    ("serving", "s", "Serving & monitoring", MonitoringScreen),
    ("tuning", "t", "Tuning", TuningScreen),
]


class ForgeApp(App):
    """The terminal UI over one workspace."""

    CSS_PATH = Path(__file__).parent / "forgeml.tcss"  # absolute, so subclasses elsewhere keep the styles
    TITLE = "forgeml"
    # screens without a key of their own, opened from the command palette or `forgeml tui --label-set`
    MODES = {**{name: cls for name, _key, _title, cls in SCREENS}, "labeling": LabelingScreen}
    DEFAULT_MODE = "home"
    BINDINGS = [
        *[Binding(key, f"switch_mode('{name}')", title) for name, key, title, _cls in SCREENS],
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, workspace: Any, label_set: str | None = None, annotator: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.labeling = (label_set, annotator)
        if label_set is not None:
            self.add_mode("labeling-set", lambda: LabelingScreen(label_set, annotator))
        self.plugin_screens = workspace.plugins.screens()
        for key, title, factory in self.plugin_screens:
            mode = f"plugin-{key}"
            self.add_mode(mode, factory)
            self.bind(key, f"switch_mode('{mode}')", description=title)

    def on_mount(self) -> None:
        """Name the workspace in the header; open the labelling screen when a label set was given."""
        self.sub_title = self.workspace.root.name
        if self.labeling[0] is not None:
            self.switch_mode("labeling-set")

    def action_help(self) -> None:
        """Show the key reference."""
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Offer every screen in the command palette, next to Textual's own commands."""
        yield from super().get_system_commands(screen)
        for name, key, title, _cls in SCREENS:
            yield SystemCommand(f"Open {title}", f"Switch to the {title} screen (key {key})",
                                lambda mode=name: self.switch_mode(mode))
        yield SystemCommand("Open Labeling", "Answer a label set's pending tasks with the number keys",
                            lambda: self.switch_mode("labeling"))
        for key, title, _factory in self.plugin_screens:
            yield SystemCommand(f"Open {title}", f"A plugin's screen (key {key})",
                                lambda mode=f"plugin-{key}": self.switch_mode(mode))
        for title, help_text, mode, action in ACTIONS:
            yield SystemCommand(title, help_text, lambda mode=mode, action=action: self.screen_action(mode, action))

    def screen_action(self, mode: str, action: str) -> None:
        """Go to a screen and run one of its actions there (what the palette's action commands do)."""
        async def run() -> None:
            await self.switch_mode(mode)
            screen = self.screen
            for _ in range(100):  # act on the screen's data, not on its empty tables: wait for the first load
                if getattr(screen, "_loaded_once", True):
                    break
                await asyncio.sleep(0.05)
            getattr(screen, f"action_{action}")()

        self.call_later(run)

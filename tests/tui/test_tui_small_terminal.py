"""The terminal UI at 80x24 with Pilot: every screen, help that scrolls, ctrl+c, palette actions,
errors said once, loading, empty job logs and formatted values."""

from __future__ import annotations

import asyncio

from test_tui_app import _settle
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Log

from forgeml.errors import StorageError
from forgeml.tui.app import SCREENS, ForgeApp
from forgeml.tui.screens.base import cell
from forgeml.tui.screens.help import HelpScreen
from forgeml.tui.screens.home import HomeScreen
from forgeml.tui.screens.jobs import JobsScreen

SIZE = (80, 24)


def drive(workspace, body) -> None:
    """Open the app on the workspace at 80x24, let it load, then run body(app, pilot)."""
    async def run() -> None:
        app = ForgeApp(workspace)
        async with app.run_test(size=SIZE) as pilot:
            await _settle(pilot)
            await body(app, pilot)

    asyncio.run(run())


class TestSmallTerminal:
    def test_every_screen_works_at_80x24(self, seeded):
        async def body(app, pilot) -> None:
            for name, key, _title, cls in SCREENS:
                await pilot.press(key)
                await _settle(pilot, 0.3)
                assert isinstance(app.screen, cls), name
                assert not [n for n in app._notifications if n.severity == "error"], name
                for table in app.screen.query(DataTable):
                    assert not table.loading, name  # the indicator went once the data came
                    assert table.region.right <= SIZE[0], name

        drive(seeded, body)

    def test_help_fits_and_scrolls(self, seeded):
        async def body(app, pilot) -> None:
            await pilot.press("question_mark")
            await pilot.pause(0.3)
            assert isinstance(app.screen, HelpScreen)
            box = app.screen.query_one("#help", VerticalScroll)
            assert box.region.right <= SIZE[0] and box.region.bottom <= SIZE[1]
            assert box.max_scroll_y > 0  # more keys than lines: it scrolls rather than being cut
            await pilot.press("pagedown")
            await pilot.pause(0.2)
            assert box.scroll_y > 0

        drive(seeded, body)

    def test_ctrl_c_quits(self, seeded):
        async def body(app, pilot) -> None:
            await pilot.press("ctrl+c")
            await pilot.pause(0.2)
            assert not app.is_running

        drive(seeded, body)


class TestPaletteAndMessages:
    def test_the_palette_holds_actions_that_act_on_the_screen(self, seeded):
        from forgeml.jobs import list_jobs

        async def body(app, pilot) -> None:
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for wanted in ("Promote the highlighted model version", "Roll back production",
                           "Cancel the highlighted job", "Retry the highlighted job",
                           "Acknowledge the highlighted alert", "Search runs", "Open Jobs"):
                assert wanted in titles
            app.screen_action("jobs", "cancel")
            await _settle(pilot, 0.5)
            assert isinstance(app.screen, JobsScreen)

        drive(seeded, body)
        assert [j.state for j in list_jobs(workspace=seeded)] == ["CANCELLED"]

    def test_a_load_error_is_said_once_and_cleared_with_its_cause(self, seeded, monkeypatch):
        failing = {"on": True}
        original = HomeScreen.load

        def load(self):
            if failing["on"]:
                raise StorageError("metadata store is locked")
            return original(self)

        monkeypatch.setattr(HomeScreen, "load", load)

        async def body(app, pilot) -> None:
            for _ in range(3):
                app.screen.reload()
                await _settle(pilot, 0.1)
            errors = [n for n in app._notifications if n.severity == "error"]
            assert [n.message for n in errors] == ["metadata store is locked"]
            failing["on"] = False
            app.screen.reload()
            await _settle(pilot, 0.1)
            assert not [n for n in app._notifications if n.severity == "error"]

        drive(seeded, body)

    def test_a_job_without_output_says_so(self, seeded):
        async def body(app, pilot) -> None:
            await pilot.press("j")
            await _settle(pilot)
            await _settle(pilot, 1.2)
            lines = app.screen.query_one("#job-log", Log).lines
            assert any("is PENDING: no output yet" in line for line in lines), lines

        drive(seeded, body)


def test_values_are_formatted_for_a_table():
    assert cell(0.123456789) == "0.1235" and cell(None) == "" and cell(3) == "3"
    assert cell({"lr": 0.0012345, "layers": 2}) == "lr=0.001234, layers=2"
    assert cell([1.0, "a"]) == "1, a"

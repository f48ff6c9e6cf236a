"""The terminal UI driven through Textual's Pilot against a real, seeded workspace."""

from __future__ import annotations

import asyncio

from forgeml.tui.app import ForgeApp
from forgeml.tui.screens.help import HelpScreen
from forgeml.tui.screens.home import HomeScreen
from forgeml.tui.screens.jobs import JobsScreen
from forgeml.tui.screens.models import ConfirmScreen, ModelsScreen
from forgeml.tui.screens.runs import RunsScreen
from forgeml.tui.screens.tuning import TuningScreen


async def _settle(pilot, seconds: float = 0.6) -> None:
    """Let worker threads read the workspace and post their results."""
    await pilot.pause(seconds)
    for _ in range(200):
        if not any(w.is_running for w in pilot.app.workers):
            break
        await pilot.pause(0.05)
    await pilot.pause(0.1)


class TestNavigation:
    def test_every_screen_has_a_key(self, seeded):
        async def run() -> None:
            app = ForgeApp(seeded)
            async with app.run_test(size=(140, 40)) as pilot:
                await _settle(pilot)
                assert isinstance(app.screen, HomeScreen)
                for key, screen in (("j", JobsScreen), ("r", RunsScreen), ("m", ModelsScreen),
                                    ("t", TuningScreen), ("h", HomeScreen)):
                    await pilot.press(key)
                    await _settle(pilot, 0.3)
                    assert isinstance(app.screen, screen), key
                await pilot.press("question_mark")
                await pilot.pause(0.2)
                assert isinstance(app.screen, HelpScreen)
                await pilot.press("escape")
                await pilot.pause(0.1)
                assert isinstance(app.screen, HomeScreen)

        asyncio.run(run())

    def test_home_lists_queue_and_runs(self, seeded):
        async def run() -> None:
            app = ForgeApp(seeded)
            async with app.run_test(size=(140, 40)) as pilot:
                await _settle(pilot)
                text = str(app.screen.query_one("#jobs-panel").render()) + str(
                    app.screen.query_one("#runs-panel").render())
                assert "train-fraud" in text and "baseline-2" in text
                assert "CPU mode" in str(app.screen.query_one("#gpu-list").render())

        asyncio.run(run())


class TestRuns:
    def test_search_filters_the_table(self, seeded):
        async def run() -> None:
            app = ForgeApp(seeded)
            async with app.run_test(size=(140, 40)) as pilot:
                await pilot.press("r")
                await _settle(pilot)
                screen = app.screen
                assert len(screen.rows) == 4  # three runs and the queued job's run
                await pilot.press("slash")
                await pilot.press(*"params.lr < 0.05 order by params.lr")
                await pilot.press("enter")
                await _settle(pilot)
                assert [r["name"] for r in screen.rows] == ["baseline-2", "baseline-1"]

        asyncio.run(run())

    def test_malformed_query_is_reported_not_fatal(self, seeded):
        async def run() -> None:
            notes: list[str] = []
            app = ForgeApp(seeded)
            async with app.run_test(size=(140, 40)) as pilot:
                app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]
                await pilot.press("r")
                await _settle(pilot)
                await pilot.press("slash")
                await pilot.press(*"params.lr <<< 3")
                await pilot.press("enter")
                await _settle(pilot)
                assert isinstance(app.screen, RunsScreen)
            assert any("column" in n for n in notes), notes

        asyncio.run(run())


    def test_compare_marked_runs(self, seeded):
        from forgeml.tui.screens.runs import CompareScreen

        async def run() -> None:
            app = ForgeApp(seeded)
            async with app.run_test(size=(140, 40)) as pilot:
                await pilot.press("r")
                await _settle(pilot)
                await pilot.press("space", "down", "space", "c")
                await _settle(pilot)
                assert isinstance(app.screen, CompareScreen)
                table = app.screen.query_one("#compare-table")
                keys = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
                assert "params.lr" in keys and "metrics.val_loss" in keys

        asyncio.run(run())


class TestModels:
    def test_promote_with_a_failing_gate_is_refused(self, seeded):
        from forgeml.registry import get_model_version

        async def run() -> list[str]:
            notes: list[str] = []
            app = ForgeApp(seeded)
            async with app.run_test(size=(140, 40)) as pilot:
                await pilot.press("m")
                await _settle(pilot)
                app.screen.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]
                await pilot.press("p")
                await pilot.pause(0.2)
                assert isinstance(app.screen, ConfirmScreen)
                await pilot.press("y")
                await _settle(pilot, 1.0)
            return notes

        notes = asyncio.run(run())
        assert any("metric_threshold" in n for n in notes), notes
        assert get_model_version("fraud", 1, workspace=seeded).stage == "STAGING"


class TestJobs:
    def test_cancel_the_highlighted_job(self, seeded):
        from forgeml.jobs import list_jobs

        async def run() -> None:
            app = ForgeApp(seeded)
            async with app.run_test(size=(140, 40)) as pilot:
                await pilot.press("j")
                await _settle(pilot)
                await pilot.press("c")
                await _settle(pilot, 1.0)

        asyncio.run(run())
        assert [j.state for j in list_jobs(workspace=seeded)] == ["CANCELLED"]


class TestExperiments:
    def test_the_serving_screen_lists_experiments(self, seeded):
        from forgeml.experiments import start_experiment, stop

        start_experiment("lift", "fraud", {"control": "fraud@1", "candidate": "fraud@1"}, holdout=0.05,
                         policy="thompson", workspace=seeded)
        start_experiment("old", "search", {"control": ""}, workspace=seeded)
        stop("old", workspace=seeded)

        async def run() -> None:
            app = ForgeApp(seeded)
            async with app.run_test(size=(160, 50)) as pilot:
                await _settle(pilot)
                await pilot.press("s")
                await _settle(pilot)
                table = app.screen.query_one("#experiments-table")
                rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
                assert rows[0][:6] == ["old", "search", "stopped", "control", "fixed", "0%"]
                assert rows[0][7] == "keep"
                assert rows[1][:6] == ["lift", "fraud", "running", "control, candidate", "thompson", "5%"]

        asyncio.run(run())

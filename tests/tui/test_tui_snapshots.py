"""SVG snapshots of the main screens on a seeded workspace (update with `pytest --snapshot-update`)."""

from __future__ import annotations

from forgeml.tui.app import ForgeApp


async def _settle(pilot) -> None:
    await pilot.pause(0.5)
    for _ in range(200):
        if not any(w.is_running for w in pilot.app.workers):
            break
        await pilot.pause(0.05)
    await pilot.pause(0.2)


def test_home_screen(seeded, snap_compare):
    assert snap_compare(ForgeApp(seeded), terminal_size=(140, 40), run_before=_settle)


def test_help_screen(seeded, snap_compare):
    async def run_before(pilot) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.3)

    assert snap_compare(ForgeApp(seeded), terminal_size=(140, 40), run_before=run_before)


def test_models_screen(seeded, snap_compare):
    async def run_before(pilot) -> None:
        await pilot.press("m")
        await _settle(pilot)

    assert snap_compare(ForgeApp(seeded), terminal_size=(140, 40), run_before=run_before)

"""The labelling screen: answer pending tasks from the keyboard; answers land in the label set."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.widgets import Static

from forgeml.tui.app import ForgeApp
from forgeml.tui.screens.labeling import LabelingScreen


async def _settle(pilot: Any, seconds: float = 0.2) -> None:
    for _ in range(100):
        if not any(w.is_running for w in pilot.app.workers):
            break
        await pilot.pause(0.05)
    await pilot.pause(seconds)


def test_answer_skip_and_see_labels_arrive(workspace: Any) -> None:
    """Key 2 labels the least certain task 'pos', n skips one; the label set holds the answer from the annotator."""
    import pyarrow as pa

    from forgeml.datasets import register_dataset
    from forgeml.labeling import create_label_set, get_labels
    from forgeml.labeling.annotate import send_items

    table = pa.table({"id": ["t1", "t2", "t3"], "text": ["cheap pills!!!", "meeting at 3", "WIN A PRIZE"]})
    register_dataset("mail", table)
    create_label_set("mail-labels", "mail", "id", ["ham", "spam"], "is it spam?")
    send_items("mail-labels", table, predictions=["spam", "ham", "spam"], scores=[0.7, 0.9, 0.55], model="m@1")

    async def run() -> None:
        app = ForgeApp(workspace, label_set="mail-labels", annotator="alice")
        async with app.run_test(size=(140, 40)) as pilot:
            await _settle(pilot)
            assert isinstance(app.screen, LabelingScreen)
            text = str(app.screen.query_one("#task", Static).render())
            assert "t3" in text and "WIN A PRIZE" in text and "model says spam (0.55)" in text
            await pilot.press("2")
            await _settle(pilot, 0.3)
            text = str(app.screen.query_one("#task", Static).render())
            assert "t1" in text and "2 waiting" in text
            await pilot.press("n")
            await pilot.pause(0.1)
            assert "t2" in str(app.screen.query_one("#task", Static).render())
            await pilot.press("1")
            await _settle(pilot, 0.3)

    asyncio.run(run())
    got = sorted((r.key, r.label, r.source) for r in get_labels("mail-labels", kinds=["annotator"]))
    assert got == [("t2", "ham", "alice"), ("t3", "spam", "alice")]

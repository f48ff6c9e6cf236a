"""The quickstart command's layout: a line per step, progress on the status line, logged warnings
(notifiers, libraries) indented under their step's report instead of breaking the layout."""

from __future__ import annotations

import logging
from typing import Any

from click.testing import CliRunner


def test_warnings_logged_during_a_step_keep_the_step_layout(monkeypatch: Any) -> None:
    import forgeml.quickstart
    from forgeml.cli.quickstart import StepLogHandler, quickstart_cmd
    from forgeml.quickstart.runner import StepEvent
    from forgeml.quickstart.summary import Summary

    def fake_run(directory: str, scale: str, progress: Any, force: bool) -> Summary:
        """Two steps; the second reports trial progress, and a notifier logs a long alert while it runs."""
        progress(StepEvent(1, 2, "workspace", "Create the workspace", "started"))
        progress(StepEvent(1, 2, "workspace", "Create the workspace", "done", "made it", 0.1))
        progress(StepEvent(2, 2, "tune", "Tune", "started"))
        progress(StepEvent(2, 2, "tune", "Tune", "progress", "1/4 trials done, 2 running"))
        logging.getLogger("forgeml.notifiers").warning("alert %s [%s] %s", 1, "warning",
                                                       "drift\nshare 0.8 " + "on many columns " * 8)
        progress(StepEvent(2, 2, "tune", "Tune", "done", "4 trials complete", 2.0))
        return Summary(directory, scale, elapsed_s=2.1)

    monkeypatch.setattr(forgeml.quickstart, "run_quickstart", fake_run)
    out = CliRunner().invoke(quickstart_cmd, ["somewhere"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    steps = lines[:lines.index("")]
    assert steps[:4] == ["✓ [ 1/2] Create the workspace (0.1s)", "          made it",
                         "✓ [ 2/2] Tune (2.0s)", "          4 trials complete"]
    # the alert comes under the step it was logged in, wrapped inside the indent, one logical line
    alert = steps[4:]
    assert alert[0].startswith("          warning: alert 1 [warning] drift share 0.8 on many")
    assert len(alert) >= 2 and all(line.startswith("          ") and len(line) <= 80 for line in alert)
    assert " ".join(line.strip() for line in alert).endswith("on many columns")
    assert not any(isinstance(h, StepLogHandler) for h in logging.getLogger().handlers)  # removed afterwards

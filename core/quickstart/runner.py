"""Run the whole quickstart in a new folder, step by step, reporting progress; a failing step names itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forgeml.errors import ForgeError
from forgeml.quickstart.lifecycle import SCALES, STEPS, Quickstart, Scale
from forgeml.quickstart.summary import StepRecord, Summary

DEFAULT_DIRECTORY = "forgeml-quickstart"


class QuickstartStepError(ForgeError):
    """A quickstart step failed; ``step`` names it."""

    def __init__(self, step: str, title: str, message: str, root: Path | None = None):
        again = f"; {root} keeps what was done, run again with --force to start over" if root else ""
        super().__init__(f"quickstart step {step!r} ({title}) failed: {message}{again}")
        self.step = step


@dataclass
class StepEvent:
    """Progress of one step: started, progress (how far it has got), done (with its report) or failed."""

    number: int
    total: int
    name: str
    title: str
    state: str
    message: str = ""
    seconds: float = 0.0


Progress = Callable[[StepEvent], None]


def _scale(scale: str | Scale) -> Scale:
    if isinstance(scale, Scale):
        return scale
    if scale not in SCALES:
        from forgeml.errors import unknown_name

        raise unknown_name("quickstart scale", scale, SCALES)
    return SCALES[scale]


def _create_workspace(root: Path, scale: Scale) -> str:
    from forgeml.quickstart.layout import MARKER, configure
    from forgeml.quickstart.scripts import write_workspace_files
    from forgeml.workspace import Workspace

    Workspace.init(root).close()
    (root / MARKER).write_text(json.dumps({"scale": scale.name, "created_at": time.time()}))
    files = write_workspace_files(root, scale.retrain_days, scale.epochs)
    configure(root, min_auc=scale.min_auc)
    return f"{root} with plugins.toml, {', '.join(p.name for p in files)}"


def run_quickstart(directory: str | Path = DEFAULT_DIRECTORY, scale: str | Scale = "default",
                   progress: Progress | None = None, force: bool = False) -> Summary:
    """Run the whole lifecycle in a new workspace at directory and return every step's key numbers.

    ``scale`` is "default", "small", "tiny" or a Scale; ``force`` replaces a previous quickstart in
    the folder (never other files). Each step's failure raises QuickstartStepError naming the step.
    """
    from forgeml.quickstart.layout import inside, prepare_directory

    chosen = _scale(scale)
    started = time.perf_counter()
    root = prepare_directory(directory, force)
    summary = Summary(str(root), chosen.name)
    total = len(STEPS) + 1
    emit = progress or (lambda event: None)

    def run_step(number: int, name: str, title: str, fn: Callable[[], str]) -> None:
        emit(StepEvent(number, total, name, title, "started"))
        t0 = time.perf_counter()
        try:
            message = fn()
        except ForgeError as e:
            emit(StepEvent(number, total, name, title, "failed", str(e), time.perf_counter() - t0))
            raise QuickstartStepError(name, title, str(e), root) from e
        except Exception as e:  # any library error still names the step, in one line
            emit(StepEvent(number, total, name, title, "failed", f"{type(e).__name__}: {e}",
                           time.perf_counter() - t0))
            raise QuickstartStepError(name, title, f"{type(e).__name__}: {e}", root) from e
        seconds = time.perf_counter() - t0
        summary.steps.append(StepRecord(name, title, round(seconds, 3), message))
        emit(StepEvent(number, total, name, title, "done", message, seconds))

    run_step(1, "workspace", "Create the workspace", lambda: _create_workspace(root, chosen))
    with inside(root) as ws:
        qs = Quickstart(root, chosen, summary, ws)
        with qs.cleanup:
            for number, (name, title, fn) in enumerate(STEPS, start=2):
                qs.report = lambda message, n=number, step=name, t=title: emit(
                    StepEvent(n, total, step, t, "progress", message))
                run_step(number, name, title, lambda fn=fn: fn(qs))
    summary.elapsed_s = round(time.perf_counter() - started, 2)
    return summary

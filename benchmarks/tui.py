"""Terminal UI benchmark: startup to first paint, and the runs screen with 10,000 runs. Prints one JSON line.

The workspace is seeded deterministically (10,000 finished runs with 5 params and 3 metrics each).
"First paint" is the first frame of the home screen; "home with data" is when its panels show what
the workspace holds. Times include Python importing the UI, measured in a fresh process.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import finish

CHILD = r"""
import asyncio, json, sys, time
t0 = float(sys.argv[1])
from forgeml.tui.app import ForgeApp
from forgeml.tui.screens.home import HomeScreen
from forgeml.tui.screens.runs import RunsScreen
from forgeml.workspace import Workspace

marks = {}
show_home, show_runs = HomeScreen.show, RunsScreen.show

def home(self, data):
    show_home(self, data)
    marks.setdefault("home_data_s", time.time() - t0)

def runs(self, rows):
    show_runs(self, rows)
    marks.setdefault("runs_rows", len(rows))
    marks.setdefault("runs_filled_s", time.time() - marks["runs_pressed"])

HomeScreen.show, RunsScreen.show = home, runs

class Timed(ForgeApp):
    def on_mount(self):
        super().on_mount()
        self.call_after_refresh(lambda: marks.setdefault("first_paint_s", time.time() - t0))

async def main():
    app = Timed(Workspace.find())
    async with app.run_test(size=(160, 50)) as pilot:
        while "home_data_s" not in marks:
            await pilot.pause(0.01)
        marks["runs_pressed"] = time.time()
        await pilot.press("r")
        while "runs_filled_s" not in marks:
            await pilot.pause(0.01)
        await pilot.press("down", "down", "down")
        await pilot.pause(0.05)

asyncio.run(main())
marks.pop("runs_pressed")
print(json.dumps(marks))
"""


def seed(root: Path, runs: int = 10000) -> None:
    """Create a workspace holding `runs` finished runs (bulk insert through the tracking store)."""
    from forgeml.tracking.records import FINISHED, Run
    from forgeml.tracking.store import tracking_store
    from forgeml.workspace import Workspace

    Workspace.init(root)
    text = (root / "plugins.toml").read_text().replace("system_metrics = true", "system_metrics = false")
    (root / "plugins.toml").write_text(text)
    store = tracking_store(Workspace(root))
    rng = random.Random(11)
    points = []
    with store.db.transaction():
        for i in range(runs):
            params = {"lr": 10 ** rng.uniform(-5, -1), "batch_size": rng.choice([16, 32, 64]),
                      "dropout": round(rng.uniform(0, 0.5), 3), "optimizer": rng.choice(["adam", "sgd"]),
                      "layers": rng.randint(2, 12)}
            seq = store.insert_run(Run(id=uuid.UUID(int=rng.getrandbits(128)).hex, name=f"run-{i}",
                                       experiment=f"exp-{i % 10}", status=FINISHED, start_time=1.7e9 + i,
                                       end_time=1.7e9 + i + 60, params=params))
            now = 1.7e9 + i + 60
            points += [(seq, "val_loss", 10, now, rng.uniform(0.1, 1.5)),
                       (seq, "train_loss", 10, now, rng.uniform(0.05, 1.2)),
                       (seq, "accuracy", 10, now, rng.uniform(0.5, 0.99))]
        store.write_points(points)


def main() -> None:
    """Seed, then time the UI in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        started = time.perf_counter()
        seed(root)
        seeded = time.perf_counter() - started
        env = {**os.environ, "FORGEML_HOME": str(root)}
        out = subprocess.run([sys.executable, "-c", CHILD, repr(time.time())], env=env, cwd=root,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        marks = json.loads(out.stdout.strip().splitlines()[-1])
        finish("tui", {
            "benchmark": "tui", "runs": 10000, "seed_s": round(seeded, 2),
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in marks.items()},
            "floor_first_paint_s": 1.0, "first_paint_ok": marks["first_paint_s"] < 1.0,
            "load_avg_1m": round(os.getloadavg()[0], 2),
        })


if __name__ == "__main__":
    main()

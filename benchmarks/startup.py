"""Start-up time: ``import forgeml`` and ``forgeml --help``, medians over fresh processes; prints one JSON line.

Floors: import < 150 ms, --help < 400 ms. Each sample is a new interpreter, timed from spawn to exit,
so it includes the interpreter's own start (reported separately as ``python_ms`` for reference).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 10
IMPORT_FLOOR_MS = 150
HELP_FLOOR_MS = 400


def _forgeml_command() -> list[str]:
    """The installed console script beside this interpreter (no shell shims in between)."""
    script = Path(sys.executable).with_name("forgeml")
    if script.exists():
        return [str(script)]
    found = shutil.which("forgeml")
    return [found] if found else [sys.executable, "-m", "forgeml"]


def _median_ms(argv: list[str], cwd: str, env: dict[str, str], runs: int = RUNS) -> float:
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)  # warm the file cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 1)


def main() -> None:
    """Measure and print the JSON line."""
    env = {k: v for k, v in os.environ.items() if k != "FORGEML_HOME"}
    with tempfile.TemporaryDirectory() as cwd:  # outside any workspace, like a first run
        python_ms = _median_ms([sys.executable, "-c", "pass"], cwd, env)
        import_ms = _median_ms([sys.executable, "-c", "import forgeml"], cwd, env)
        help_ms = _median_ms([*_forgeml_command(), "--help"], cwd, env)
    print(json.dumps({
        "benchmark": "startup",
        "runs": RUNS,
        "python_ms": python_ms,
        "import_forgeml_ms": import_ms,
        "import_floor_ms": IMPORT_FLOOR_MS,
        "import_ok": import_ms < IMPORT_FLOOR_MS,
        "cli_help_ms": help_ms,
        "cli_help_floor_ms": HELP_FLOOR_MS,
        "cli_help_ok": help_ms < HELP_FLOOR_MS,
    }))


if __name__ == "__main__":
    main()

"""Start-up time: ``import forgeml`` and ``forgeml --help``, medians over fresh processes; prints one JSON line.

Floors: import < 150 ms, --help < 400 ms. Each sample is a new interpreter, timed from spawn to exit,
so it includes the interpreter's own start (reported separately as ``python_ms`` for reference).
Wall time is what a user waits for, but on a busy machine it mostly measures the other processes;
the CPU time the child used (``*_cpu_ms``, user + system) is reported beside it and varies far less.
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import finish

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


def _medians_ms(argv: list[str], cwd: str, env: dict[str, str], runs: int = RUNS) -> tuple[float, float]:
    """Median wall and CPU milliseconds of running argv to completion in a fresh process."""
    subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=True)  # warm the file cache
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return round(statistics.median(wall), 1), round(statistics.median(cpu), 1)


def main() -> None:
    """Measure and print the JSON line."""
    env = {k: v for k, v in os.environ.items() if k != "FORGEML_HOME"}
    with tempfile.TemporaryDirectory() as cwd:  # outside any workspace, like a first run
        python_ms, python_cpu = _medians_ms([sys.executable, "-c", "pass"], cwd, env)
        import_ms, import_cpu = _medians_ms([sys.executable, "-c", "import forgeml"], cwd, env)
        help_ms, help_cpu = _medians_ms([*_forgeml_command(), "--help"], cwd, env)
    finish("startup", {
        "benchmark": "startup",
        "runs": RUNS,
        "python_ms": python_ms,
        "python_cpu_ms": python_cpu,
        "import_forgeml_ms": import_ms,
        "import_forgeml_cpu_ms": import_cpu,
        "import_floor_ms": IMPORT_FLOOR_MS,
        "import_ok": import_ms < IMPORT_FLOOR_MS,
        "cli_help_ms": help_ms,
        "cli_help_cpu_ms": help_cpu,
        "cli_help_floor_ms": HELP_FLOOR_MS,
        "cli_help_ok": help_ms < HELP_FLOOR_MS,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    })


if __name__ == "__main__":
    main()

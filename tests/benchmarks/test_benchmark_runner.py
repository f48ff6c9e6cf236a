"""The benchmark scaffolding: results carry machine facts, peers are run or reported skipped, one table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_a_benchmark_saves_its_json_with_machine_facts_and_the_runner_prints_a_table(tmp_path: Path) -> None:
    """`python -m benchmarks --only startup` runs the script, saves its result and prints the table."""
    env = {**os.environ, "FORGEML_BENCH_RESULTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "startup"], cwd=BENCHMARKS.parent, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((tmp_path / "startup.json").read_text())
    machine = saved["machine"]
    assert machine["cpus"] >= 1 and "load_avg_1m" in machine and machine["versions"]["forgeml"]
    assert "/" not in json.dumps(machine)  # no paths of the machine in a result
    assert proc.stdout.splitlines()[0].split()[:3] == ["benchmark", "workload", "forgeml"]
    assert "startup: no peer comparison" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nosuch"], cwd=BENCHMARKS.parent,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown benchmark(s) nosuch" in bad.stderr


def test_a_missing_peer_is_reported_skipped_with_the_reason(monkeypatch) -> None:
    """No figure from elsewhere: a peer neither installed nor named by its variable is skipped, and says why."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import common

        monkeypatch.setenv("FORGEML_BENCH_FEAST_PYTHON", sys.executable)
        python, why = common.peer_python("feast")
        if python is None:  # this interpreter has no feast: the variable names one without it
            assert why.startswith("FORGEML_BENCH_FEAST_PYTHON names an interpreter without feast")
        monkeypatch.delenv("FORGEML_BENCH_FEAST_PYTHON")
        python, why = common.peer_python("feast")
        if python is None:
            assert "FORGEML_BENCH_FEAST_PYTHON names no interpreter" in why
        row = common.comparison("online p99", 0.1, 0.5, "ms", "feast")
        assert row["forgeml_x_better"] == 5.0
        assert common.comparison("req/s", 300, 100, "req/s", "mlflow", lower_is_better=False)["forgeml_x_better"] == 3.0
    finally:
        sys.path.remove(str(BENCHMARKS))

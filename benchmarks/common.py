"""What the benchmarks share: machine facts, peers run from their own interpreters, and saved results.

A peer (MLflow, Feast, Evidently) often pins other pandas or pyarrow releases than forgeml, so it
runs from its own virtual environment: the benchmark calls that interpreter, named by an environment
variable (``FORGEML_BENCH_MLFLOW_PYTHON``, ``FORGEML_BENCH_FEAST_PYTHON``,
``FORGEML_BENCH_EVIDENTLY_PYTHON``), on the same generated data, in the same run. A peer that is
neither importable here nor named that way is reported as skipped, with the reason, never with a
figure from elsewhere.

``FORGEML_BENCH_SAVE=1`` (set by ``python -m benchmarks``) also writes each result, with the machine
facts, to ``benchmarks/results/NAME.json`` (or the folder FORGEML_BENCH_RESULTS names).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(os.environ.get("FORGEML_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
PEER_ENV = {"mlflow": "FORGEML_BENCH_MLFLOW_PYTHON", "feast": "FORGEML_BENCH_FEAST_PYTHON",
            "evidently": "FORGEML_BENCH_EVIDENTLY_PYTHON", "optuna": "FORGEML_BENCH_OPTUNA_PYTHON"}
VERSIONS = ("forgeml", "numpy", "pandas", "pyarrow", "duckdb", "optuna", "scikit-learn", "torch", "uvicorn")


def machine_facts() -> dict[str, Any]:
    """CPU count, load, memory, OS and the versions that shape the figures (no paths, no host name)."""
    facts: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                             "python": platform.python_version(), "system": f"{platform.system()} {platform.machine()}",
                             "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        facts["memory_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    versions = {}
    for name in VERSIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    facts["versions"] = versions
    return facts


def peer_python(peer: str) -> tuple[str | None, str]:
    """Return (interpreter that has the peer, how it was found) or (None, why it is skipped)."""
    if importlib.util.find_spec(peer) is not None:
        return sys.executable, "installed beside forgeml"
    variable = PEER_ENV[peer]
    other = os.environ.get(variable)
    if not other:
        return None, f"{peer} is not installed here and {variable} names no interpreter that has it"
    probe = subprocess.run([other, "-c", f"import {peer}"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None, f"{variable} names an interpreter without {peer}: {probe.stderr.strip()[-200:]}"
    return other, f"separate environment ({variable})"


def run_peer(python: str, script: Path, *args: str, timeout: float = 1800) -> dict[str, Any]:
    """Run a peer script with its interpreter and return the JSON of its last output line."""
    proc = subprocess.run([python, str(script), *args], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"skipped": f"the peer run failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"}
    return json.loads(lines[-1])


def peer_version(python: str, module: str) -> str:
    """The peer's version, as its own interpreter reports it."""
    out = subprocess.run([python, "-c", f"import {module}; print({module}.__version__)"], capture_output=True,
                         text=True)
    return out.stdout.strip() or "unknown"


def finish(name: str, result: dict[str, Any]) -> None:
    """Print the result as one JSON line with the machine facts; save it when FORGEML_BENCH_SAVE is set."""
    result = {"benchmark": name, **{k: v for k, v in result.items() if k != "benchmark"},
              "machine": machine_facts()}
    line = json.dumps(result, default=str)
    print(line, flush=True)
    if os.environ.get("FORGEML_BENCH_SAVE", "").lower() in {"1", "true", "yes"}:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


def comparison(workload: str, forgeml: float | None, peer: float | None, unit: str, peer_name: str,
               lower_is_better: bool = True, note: str = "") -> dict[str, Any]:
    """One row of the side-by-side table: both figures, the unit, and how many times better forgeml is."""
    ratio = None
    if forgeml and peer:
        ratio = round(peer / forgeml if lower_is_better else forgeml / peer, 2)
    return {"workload": workload, "forgeml": forgeml, "peer": peer, "unit": unit, "peer_name": peer_name,
            "forgeml_x_better": ratio, "note": note}

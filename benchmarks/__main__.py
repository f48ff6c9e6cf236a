"""Run every benchmark (small sizes by default) and print the side-by-side table with the peers.

Usage: python -m benchmarks [--full] [--only tracking,tuning] [--timeout 900]

Each script runs in its own process with FORGEML_BENCH_SAVE=1, so its JSON, with the machine facts,
lands in benchmarks/results/NAME.json. Peers come from their own interpreters when the
FORGEML_BENCH_*_PYTHON variables name them (see benchmarks/common.py); otherwise they are reported
as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
NOT_BENCHMARKS = {"__main__", "common"}
# sizes that keep a full pass to minutes on a small shared machine; --full uses each script's defaults
QUICK_ARGS = {
    "tracking": ["--points", "20000", "--runs", "1000", "--processes", "4", "--process-points", "2000",
                 "--mlflow-points", "1000"],
    "tracking_postgres": ["--points", "20000", "--runs", "1000", "--processes", "4", "--process-points", "2000",
                          "--mlflow-points", "1000"],
    "features": ["--entities", "100000", "--rows", "1000000", "--users", "100000", "--online-users", "20000"],
    "serving": ["--quick"],
    "serving_faults": ["--quick"],
    "gpu": ["--cpu-dry-run"],
    "quickstart": ["small"],
    "streaming": ["--events", "20000", "--read-calls", "500", "--skip-offline"],
    "drift": ["--rows", "50000"],
    "tuning": ["--trials", "12", "--work-s", "1.0"],
    "explain": ["--seconds", "2", "--rounds", "2"],
    "server": ["--points", "50000", "--requests", "100"],
    "recsys": ["--quick"],
    "privacy": ["--offline-rows", "1000000", "--log-rows", "100000", "--days", "20", "--artifact-mb", "20"],
    "experiments": ["--rows", "100000", "--keys", "50000"],
    "labeling": ["--pool-rows", "200000", "--seeds", "1"],
}


def run_one(name: str, full: bool, timeout: float) -> dict:
    """Run one benchmark script and return its JSON (or why it produced none)."""
    args = [] if full else QUICK_ARGS.get(name, [])
    env = {**os.environ, "FORGEML_BENCH_SAVE": "1"}
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args], capture_output=True, text=True,
                              env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"benchmark": name, "skipped": f"did not finish within {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"benchmark": name, "skipped": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
    result = json.loads(lines[-1])
    result.setdefault("benchmark", name)
    result.setdefault("wall_s", round(time.monotonic() - started, 1))
    if "machine" not in result:  # a script that does not save its own result yet
        from common import RESULTS, machine_facts

        result["machine"] = machine_facts()
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def table(results: list[dict]) -> str:
    """The side-by-side table: one line per comparison, then the benchmarks without a peer."""
    head = f"{'benchmark':<10} {'workload':<44} {'forgeml':>12} {'peer':>12} {'unit':<10} {'x better':>8}  peer"
    lines = [head, "-" * len(head)]
    alone = []
    for r in results:
        rows = r.get("comparisons") or []
        for c in rows:
            fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
            ratio = "-" if c.get("forgeml_x_better") is None else f"{c['forgeml_x_better']:.2f}"
            lines.append(f"{r['benchmark'][:10]:<10} {c['workload'][:44]:<44} {fmt(c['forgeml']):>12} "
                         f"{fmt(c['peer']):>12} {c['unit'][:10]:<10} {ratio:>8}  {c['peer_name']}")
        if not rows:
            alone.append(f"{r['benchmark']}: {r.get('skipped') or 'no peer comparison'}")
        for key, value in r.items():
            if key != "skipped" and isinstance(value, dict) and "skipped" in value:
                alone.append(f"{r['benchmark']}: {key} skipped: {value['skipped']}")
    return "\n".join(lines + [""] + alone)


def main() -> None:
    """Run the chosen benchmarks one after another and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="Each script's own (large) default sizes.")
    parser.add_argument("--only", help="Comma-separated benchmark names.")
    parser.add_argument("--timeout", type=float, default=1200, help="Seconds allowed per benchmark.")
    args = parser.parse_args()
    names = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in NOT_BENCHMARKS)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
        names = wanted
    results = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append(run_one(name, args.full, args.timeout))
    print(table(results))


if __name__ == "__main__":
    main()

"""GPU benchmark: forgeml's CUDA paths on a real NVIDIA GPU; prints one JSON line.

Checks and measures, in a fresh temporary workspace whose GPU inventory is NVML (the default):
- the NVML inventory and `forgeml doctor` list the GPU(s) with name, memory and utilisation;
- the scheduler places jobs that each ask for one exclusive GPU: each sees exactly one device,
  none overlaps another on the card; queue-to-start and job-to-job hand-off latency;
- DDP jobs launched as docs/jobs.md describes (torchrun through ``nproc``) doing all-reduce training
  steps and logging to tracking from rank 0 (NCCL world size 1; two ranks on one card with NCCL, or
  gloo when NCCL refuses two ranks on one device);
- `forgeml serve` with a torch MLP placed on CUDA by the runtime's device="auto": throughput and
  p50/p99 at concurrency 64 with dynamic batching on and off and at concurrency 8, and predictions
  equal to the CPU model's;
- `forgeml predict` over a Parquet file on the GPU: rows/s, and that the process held the GPU.

Without a CUDA GPU it prints ``{"gpu": false, ...}`` and exits 0. ``--cpu-dry-run`` runs every part on
the CPU with small sizes and one declared GPU, to check the script itself on a machine without one.

Run: python benchmarks/gpu.py [--seconds 5] [--rows 1000000] [--cpu-dry-run]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import finish  # noqa: E402
from scheduler import open_workspace  # noqa: E402  (the sibling benchmarks' workspace, server and load helpers)
from serving import forgeml_server, run_load  # noqa: E402

WIDTH = 64
HIDDEN = 2048

PROBE = """
import json, os, time
started = time.time()
import torch
cuda = torch.cuda.is_available()
x = torch.randn(2048, 2048, device="cuda" if cuda else "cpu")
for _ in range(50):
    x = torch.tanh(x @ x / 2048)
if cuda:
    torch.cuda.synchronize()
out = {"cvd": os.environ.get("CUDA_VISIBLE_DEVICES"), "count": torch.cuda.device_count(), "cuda": cuda,
       "name": torch.cuda.get_device_name(0) if cuda else None, "start": started, "end": time.time()}
with open(os.path.join(os.environ["FORGEML_CHECKPOINT_DIR"], "probe.json"), "w") as f:
    json.dump(out, f)
"""

DDP = """
import json, os, socket
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
import forgeml

backend = os.environ["DDP_BACKEND"]
if "RANK" not in os.environ:  # a single process, not launched by torchrun: a world of one
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
cuda = torch.cuda.is_available()
local = int(os.environ["LOCAL_RANK"]) % max(torch.cuda.device_count(), 1)
device = torch.device(f"cuda:{local}" if cuda else "cpu")
if cuda:
    torch.cuda.set_device(device)
dist.init_process_group(backend)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1)).to(device)
ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
gen = torch.Generator().manual_seed(rank)
steps = 20
with forgeml.start_run() as run:
    for step in range(steps):
        x = torch.randn(512, 256, generator=gen).to(device)
        loss = (ddp(x) - x[:, :1]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        total = loss.detach().clone()
        dist.all_reduce(total)
        if rank == 0:
            forgeml.log_metric("loss", float(total) / world, step=step)
ones = torch.ones(1, device=device)
dist.all_reduce(ones)
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
spread = flat.clone()
dist.all_reduce(spread, op=dist.ReduceOp.MAX)
in_sync = bool(torch.equal(spread, flat))
synced = torch.tensor([int(in_sync)], device=device)
dist.all_reduce(synced, op=dist.ReduceOp.MIN)
if rank == 0:
    out = {"backend": backend, "world_size": world, "device": str(device), "steps": steps,
           "all_reduce_sum": float(ones), "params_in_sync": bool(synced), "final_loss": round(float(total) / world, 4)}
    with open(os.path.join(os.environ["FORGEML_CHECKPOINT_DIR"], "ddp.json"), "w") as f:
        json.dump(out, f)
dist.destroy_process_group()
"""


def cuda_available() -> tuple[bool, str]:
    """Whether torch sees a CUDA GPU, and why not when it does not."""
    try:
        import torch
    except ImportError as e:
        return False, f"torch not importable: {e}"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA GPU"
    return True, torch.cuda.get_device_name(0)


def workspace_config(dry_run: bool) -> str:
    """plugins.toml of the benchmark: NVML GPUs (the default), or one declared GPU for a dry run."""
    config = "[scheduler]\npoll_interval_s = 0.2\n\n[serving.endpoints.mlp.batching]\nmax_batch_size = 64\n"
    if dry_run:
        config += '\n[scheduler.inventory]\nplugin = "declared"\ncount = 1\n'
    return config


# ------------------------------------------------------------------ a. inventory and doctor
def inventory(ws: Any) -> dict[str, Any]:
    """List the GPUs of the workspace's inventory and the GPU lines of `forgeml doctor --json`."""
    devices = ws.gpu_inventory.devices()
    out: dict[str, Any] = {"inventory_plugin": type(ws.gpu_inventory).__name__, "devices": [
        {"index": d.index, "name": d.name, "memory_total_mb": d.memory_total_mb, "memory_free_mb": d.memory_free_mb,
         "utilization_pct": d.utilization_pct, "power_w": d.power_w, "temperature_c": d.temperature_c,
         "uuid": d.uuid} for d in devices]}
    doctor = subprocess.run([sys.executable, "-m", "forgeml", "doctor", "--json"], capture_output=True, text=True,
                            timeout=120)
    try:
        checks = json.loads(doctor.stdout)
        out["doctor_gpu"] = [c for c in checks if c["name"].startswith(("gpu", "torch"))]
        out["doctor_failed"] = [c for c in checks if not c["ok"]]
    except (json.JSONDecodeError, KeyError, TypeError):
        out["doctor_error"] = (doctor.stdout + doctor.stderr)[-1500:]
    return out


# ------------------------------------------------------------------ b. placement on the real GPU
def placement(ws: Any, jobs: int = 4) -> dict[str, Any]:
    """Run jobs that each take one exclusive GPU; check each saw one device and none overlapped."""
    from forgeml.jobs import JobSpec, Scheduler, get_job, submit, wait

    (ws.root / "probe.py").write_text(PROBE)
    ids = [submit(JobSpec(script="probe.py", gpus=1, name=f"probe{i}"), ws).id for i in range(jobs)]
    scheduler = Scheduler(ws).start_in_thread()
    try:
        finished = [wait(i, timeout=300, workspace=ws, poll_s=0.05) for i in ids]
    finally:
        scheduler.stop()
    probes = []
    for job in finished:
        path = ws.dot / "jobs" / job.id / "checkpoints" / "probe.json"
        probe = json.loads(path.read_text()) if path.exists() else {}
        probes.append({"job": job.id, "state": job.state, "gpus": get_job(job.id, workspace=ws).gpus, **probe})
    ok = [p for p in probes if "start" in p]
    ok.sort(key=lambda p: p["start"])
    overlaps = sum(1 for a, b in zip(ok, ok[1:]) if b["start"] < a["end"])
    first_submit = min(j.submitted_at for j in finished)
    handoff = [round((b["start"] - a["end"]) * 1000, 1) for a, b in zip(ok, ok[1:])]
    return {"jobs": jobs, "succeeded": sum(p["state"] == "SUCCEEDED" for p in probes),
            "each_saw_one_device": all(p.get("count") == 1 or not p.get("cuda") for p in ok) and len(ok) == jobs,
            "cuda_visible_devices": sorted({str(p.get("cvd")) for p in ok}),
            "device_names": sorted({str(p.get("name")) for p in ok}),
            "overlaps_on_exclusive_gpu": overlaps,
            "queue_to_first_start_ms": round((ok[0]["start"] - first_submit) * 1000, 1) if ok else None,
            "job_to_job_handoff_ms": handoff,
            "failed_logs": [_log_tail(ws, p["job"]) for p in probes if p["state"] != "SUCCEEDED"]}


def _log_tail(ws: Any, job_id: str, chars: int = 1500) -> str:
    logs = sorted((ws.dot / "jobs" / job_id).glob("attempt-*.log"))
    return logs[-1].read_text(errors="replace")[-chars:] if logs else ""


def _error_lines(log: str) -> list[str]:
    """The distinct lines of a log that name an error (torchrun's summary hides the ranks' own)."""
    lines = [line.strip()[:300] for line in log.splitlines() if "Error" in line or "error:" in line.lower()]
    return list(dict.fromkeys(lines))[:6]


# ------------------------------------------------------------------ c. DDP
def ddp(ws: Any, cuda: bool) -> dict[str, Any]:
    """Run DDP jobs: one NCCL rank; two ranks on the one GPU with NCCL, or with gloo when NCCL refuses."""
    from forgeml.jobs import JobSpec, Scheduler, submit, wait
    from forgeml.tracking import get_metric_history

    (ws.root / "ddp_train.py").write_text(DDP)
    nccl = "nccl" if cuda else "gloo"
    cases = [("nccl_world1", nccl, 1), ("nccl_world2_one_gpu", nccl, 2), ("gloo_world2_one_gpu", "gloo", 2)]
    out: dict[str, Any] = {}
    scheduler = Scheduler(ws).start_in_thread()
    try:
        for label, backend, nproc in cases:
            if label.startswith("gloo") and out.get("nccl_world2_one_gpu", {}).get("state") == "SUCCEEDED":
                continue
            spec = JobSpec(script="ddp_train.py", framework="pytorch", gpus=1 if cuda else 0, nproc=nproc,
                           env={"DDP_BACKEND": backend}, name=label, timeout_s=240)
            started = time.perf_counter()
            job = wait(submit(spec, ws).id, timeout=300, workspace=ws, poll_s=0.05)
            result: dict[str, Any] = {"state": job.state, "seconds": round(time.perf_counter() - started, 2)}
            path = ws.dot / "jobs" / job.id / "checkpoints" / "ddp.json"
            if path.exists():
                result.update(json.loads(path.read_text()))
                history = get_metric_history(job.run_id, "loss")
                result["tracked_loss_points"] = len(history)
                result["tracked_once_per_step"] = len(history) == result["steps"]
            else:
                result["error_lines"] = _error_lines(_log_tail(ws, job.id, 20_000))
            out[label] = result
    finally:
        scheduler.stop()
    return out


# ------------------------------------------------------------------ d. serving
def register_mlp(root: Path) -> tuple[Any, Any]:
    """Register the serving benchmark's torch MLP as mlp@production; return it and some rows."""
    import numpy as np
    import pandas as pd
    import torch

    from forgeml.registry import promote, register_model

    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(WIDTH, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN),
                              torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1))
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(512, WIDTH)).round(5).astype("float32"),
                        columns=[f"x{i}" for i in range(WIDTH)])
    mv = register_model("mlp", mlp, flavor="torch", input_example=rows.head(8))
    promote("mlp", mv.version, "production", reason="benchmark")
    return mlp, rows


def gpu_pids(ws: Any) -> set[int]:
    """The process ids NVML reports on any GPU."""
    return {pid for d in ws.gpu_inventory.devices() for pid in d.processes}


def served_predictions(port: int, rows: Any, concurrency: int) -> list[float]:
    """Predict each row in its own request, `concurrency` at a time, so batching groups them."""
    import httpx

    async def go() -> list[float]:
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            async def one(row: dict[str, float]) -> float:
                async with sem:
                    r = await client.post("/v1/models/mlp/predict", json={"rows": [row]})
                    r.raise_for_status()
                    return float(r.json()["predictions"][0])
            return await asyncio.gather(*(one(r) for r in rows.to_dict("records")))

    return asyncio.run(go())


def serving(ws: Any, rows: Any, seconds: float, tmp: Path) -> dict[str, Any]:
    """Serve the MLP (device "auto"), check its placement and answers, and measure it under load."""
    import numpy as np

    from forgeml.registry import load_model

    expected = np.asarray(load_model("mlp@production", device="cpu").predict(rows), dtype=np.float64)
    auto = load_model("mlp@production")
    out: dict[str, Any] = {"mlp": f"{WIDTH}-{HIDDEN}-{HIDDEN}-1 float32", "auto_device_in_process": str(auto.device)}
    del auto
    bodies = [json.dumps({"rows": [r]}) for r in rows.head(500).to_dict("records")]
    path = "/v1/models/mlp/predict"
    for label, extra in (("batched", []), ("unbatched", ["--no-batching"])):
        server = forgeml_server(ws.root, ["mlp@production"], extra)
        try:
            got = np.asarray(served_predictions(server.port, rows, 64))
            err = np.abs(got - expected)
            out[f"{label}_max_abs_err_vs_cpu"] = float(err.max())
            out[f"{label}_matches_cpu"] = bool(np.allclose(got, expected, rtol=1e-3, atol=1e-4))
            out[f"{label}_server_on_gpu"] = server.proc.pid in gpu_pids(ws)
            out[f"{label}_startup_s"] = server.startup_s
            out[f"c64_{label}"] = run_load(server.port, path, bodies, 64, seconds, 1.0, tmp)
            if label == "batched":
                out["c8_batched_single_row"] = run_load(server.port, path, bodies, 8, seconds, 1.0, tmp)
        finally:
            server.stop()
    out["batching_speedup_c64"] = round(out["c64_batched"]["rps"] / max(out["c64_unbatched"]["rps"], 1e-9), 2)
    return out


# ------------------------------------------------------------------ e. batch inference
def batch_predict(ws: Any, n_rows: int, tmp: Path) -> dict[str, Any]:
    """Time `forgeml predict` over n_rows on the default device (and a tenth of them on the CPU)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    data = rng.normal(size=(n_rows, WIDTH)).astype("float32")
    source = tmp / "rows.parquet"
    pq.write_table(pa.table({f"x{i}": data[:, i] for i in range(WIDTH)}), source)
    out: dict[str, Any] = {"rows": n_rows, "model_only": _model_only(data)}
    for label, rows, device in (("default_device", n_rows, None), ("cpu", max(n_rows // 10, 1), "cpu")):
        src = source
        if rows != n_rows:
            src = tmp / "rows-cpu.parquet"
            pq.write_table(pq.read_table(source).slice(0, rows), src)
        argv = [sys.executable, "-m", "forgeml", "predict", "mlp@production", "--input", str(src),
                "--output", str(tmp / f"pred-{label}.parquet"), "--json"]
        if device:
            argv += ["--device", device]
        seen: set[int] = set()
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watcher = threading.Thread(target=_watch_gpu, args=(ws, proc, seen), daemon=True)
        watcher.start()
        stdout, stderr = proc.communicate(timeout=600)
        wall = time.perf_counter() - started
        watcher.join(5)
        if proc.returncode != 0:
            out[label] = {"error": stderr[-1500:]}
            continue
        result = json.loads(stdout)
        out[label] = {"rows": result["rows"], "predict_s": result["seconds"], "wall_s": round(wall, 2),
                      "rows_per_s": round(result["rows"] / result["seconds"]),
                      "process_on_gpu": proc.pid in seen}
    pred = pq.read_table(tmp / "pred-default_device.parquet", columns=["prediction"]) \
        if (tmp / "pred-default_device.parquet").exists() else None
    cpu = pq.read_table(tmp / "pred-cpu.parquet", columns=["prediction"]) \
        if (tmp / "pred-cpu.parquet").exists() else None
    if pred is not None and cpu is not None:
        a = pred.column(0).to_numpy()[:cpu.num_rows]
        b = cpu.column(0).to_numpy()
        out["max_abs_err_vs_cpu"] = float(np.abs(a - b).max())
    return out


def _model_only(data: Any) -> dict[str, Any]:
    """Rows/s of the loaded model alone on a float32 matrix in 50,000-row chunks (no Parquet, no conversion)."""
    import torch

    from forgeml.registry import load_model

    model = load_model("mlp@production")
    model.predict(data[:50_000])
    started = time.perf_counter()
    for i in range(0, len(data), 50_000):
        model.predict(data[i:i + 50_000])
    seconds = time.perf_counter() - started
    device = str(model.device)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"device": device, "seconds": round(seconds, 3), "rows_per_s": round(len(data) / seconds)}


def _watch_gpu(ws: Any, proc: subprocess.Popen, seen: set[int]) -> None:
    while proc.poll() is None:
        seen.update(gpu_pids(ws))
        time.sleep(0.2)


def main() -> None:
    """Run every part and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="Measured seconds per load test.")
    parser.add_argument("--rows", type=int, default=1_000_000, help="Rows for batch inference.")
    parser.add_argument("--cpu-dry-run", action="store_true", help="Run every part on the CPU, small and short.")
    args = parser.parse_args()
    cuda, detail = cuda_available()
    result: dict[str, Any] = {"benchmark": "gpu", "gpu": cuda}
    if not cuda and not args.cpu_dry_run:
        result["reason"] = detail
        finish("gpu", result)
        return
    result.update(device=detail, dry_run=args.cpu_dry_run)
    seconds, n_rows = (1.0, 20_000) if args.cpu_dry_run else (args.seconds, args.rows)
    import torch

    result["torch"] = torch.__version__
    home = os.getcwd()
    tmp = Path(tempfile.mkdtemp(prefix="forgeml-bench-gpu-"))
    parts = (("inventory", lambda ws: inventory(ws)), ("placement", lambda ws: placement(ws)),
             ("ddp", lambda ws: ddp(ws, cuda)), ("serving", lambda ws: serving(ws, rows, seconds, tmp)),
             ("batch_predict", lambda ws: batch_predict(ws, n_rows, tmp)))
    try:
        ws = open_workspace(tmp / "ws", workspace_config(args.cpu_dry_run))
        _, rows = register_mlp(ws.root)
        for name, part in parts:
            started = time.perf_counter()
            try:
                result[name] = part(ws)
            except Exception as e:  # one broken path must not hide the others' numbers
                result[name] = {"error": f"{type(e).__name__}: {e}"[-2000:]}
            result[name]["part_s"] = round(time.perf_counter() - started, 1)
            print(f"{name} done in {result[name]['part_s']}s", file=sys.stderr, flush=True)
    finally:
        os.chdir(home)
        shutil.rmtree(tmp, ignore_errors=True)
    finish("gpu", result)


if __name__ == "__main__":
    main()

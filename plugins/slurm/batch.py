"""Slurm batch scripts rendered from a job's needs, and the parsing of scontrol / sacct output."""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass

from forgeml.contracts import ExecutionStatus
from forgeml.errors import ValidationError
from forgeml.plugins.remote.jobdir import TORCHRUN_MODULE, Needs, exports, split_torchrun
from forgeml.plugins.remote.states import CANCELLED, FAILED, LOST, RUNNING, SUCCEEDED, TERMINAL, slurm_status
from forgeml.plugins.slurm.settings import SlurmTargetSettings


def slurm_time(seconds: float) -> str:
    """Return a --time value (D-HH:MM:SS) that is at least the given seconds."""
    total = max(60, int(math.ceil(seconds)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}" if days else f"{hours:02d}:{minutes:02d}:{secs:02d}"


@dataclass(frozen=True)
class SbatchScript:
    """A rendered batch script and the log file pattern it writes."""

    text: str
    log_name: str


def render_sbatch(job_name: str, job_dir: str, argv: list[str], env: dict[str, str], needs: Needs,
                  settings: SlurmTargetSettings, workdir: str = ".", nproc: int | None = None) -> SbatchScript:
    """Render an sbatch script: resources as #SBATCH lines, then the command (srun + torchrun for multi-node)."""
    if not argv:
        raise ValidationError("the job has an empty command; give it a command or a script")
    if needs.nodes < 1:
        raise ValidationError(f"a Slurm job needs at least 1 node, got {needs.nodes}")
    if needs.array is not None and needs.array < 1:
        raise ValidationError(f"an array job needs at least 1 task, got {needs.array}")
    log_name = "output-%a.log" if needs.array else "output.log"
    d = job_dir
    lines = ["#!/bin/bash", f"#SBATCH --job-name={shlex.quote(job_name)}", f"#SBATCH --output={d}/{log_name}",
             f"#SBATCH --chdir={d}", "#SBATCH --open-mode=append"]
    if settings.partition:
        lines.append(f"#SBATCH --partition={settings.partition}")
    if settings.account:
        lines.append(f"#SBATCH --account={settings.account}")
    if settings.qos:
        lines.append(f"#SBATCH --qos={settings.qos}")
    lines.append(f"#SBATCH --nodes={needs.nodes}")
    lines.append("#SBATCH --ntasks-per-node=1")
    if needs.gpus:
        kind = f"{needs.gpu_type}:" if needs.gpu_type else ""
        lines.append(f"#SBATCH --gres={settings.gpu_gres}:{kind}{needs.gpus}")
    if needs.cpus:
        lines.append(f"#SBATCH --cpus-per-task={max(1, math.ceil(needs.cpus))}")
    if needs.memory_mb:
        lines.append(f"#SBATCH --mem={needs.memory_mb}M")
    if needs.timeout_s:
        lines.append(f"#SBATCH --time={slurm_time(needs.timeout_s)}")
    elif settings.time_limit:
        lines.append(f"#SBATCH --time={settings.time_limit}")
    if needs.array:
        lines.append(f"#SBATCH --array=0-{needs.array - 1}")
    lines += [f"#SBATCH {a}" for a in settings.sbatch_args]
    lines += ["", "# forgeml remote attempt: output.log, then exit_code", "set +e", *settings.setup, exports(env)]
    if not needs.gpus:
        lines.append("export CUDA_VISIBLE_DEVICES=")  # a CPU job sees no GPU even on a GPU node
    if needs.array:
        lines.append("export FORGEML_TRIAL_INDEX=$SLURM_ARRAY_TASK_ID")
    lines.append(f"cd {shlex.quote(d + '/code/' + workdir)} 2>/dev/null || cd {shlex.quote(d + '/code')} || cd {shlex.quote(d)}")
    torchrun = len(argv) >= 3 and argv[1] == "-m" and argv[2] in {TORCHRUN_MODULE, "torchrun"}
    multi = needs.nodes > 1 or (settings.srun_torchrun and torchrun)
    if multi:
        python, script = split_torchrun(argv)
        per_node = nproc or max(1, needs.gpus)
        lines += [
            'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            "export MASTER_PORT=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}",
            f"srun --ntasks-per-node=1 {shlex.quote(python)} -m {TORCHRUN_MODULE} --nnodes=$SLURM_NNODES "
            f"--nproc-per-node={per_node} --rdzv-id=$SLURM_JOB_ID --rdzv-backend=c10d "
            f"--rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT {shlex.join(script)}",
        ]
    else:
        lines.append(shlex.join(argv))
    suffix = ".$SLURM_ARRAY_TASK_ID" if needs.array else ""
    lines += ["rc=$?", f"echo $rc > {d}/exit_code{suffix}.tmp && mv {d}/exit_code{suffix}.tmp {d}/exit_code{suffix}",
              "exit $rc", ""]
    return SbatchScript("\n".join(lines), log_name.replace("%a", "0"))


def parse_sbatch_id(stdout: str) -> str:
    """Return the job id from ``sbatch --parsable`` output ("123" or "123;cluster")."""
    first = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = first.split(";")[0].strip()
    if not job_id.isdigit():
        raise ValidationError(f"sbatch printed {stdout.strip()!r}, not a job id")
    return job_id


_FIELD = re.compile(r"(\w+)=(\S*)")


def parse_scontrol(text: str) -> list[dict[str, str]]:
    """Parse ``scontrol show job -o`` output: one dict of fields per job record (array tasks included)."""
    records = []
    for line in text.splitlines():
        if "JobId=" not in line:
            continue
        records.append(dict(_FIELD.findall(line)))
    return records


def parse_sacct(text: str) -> list[dict[str, str]]:
    """Parse ``sacct -n -P -X -o JobID,State,ExitCode,Reason`` output."""
    records = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 3 and parts[0]:
            records.append({"JobId": parts[0], "JobState": parts[1], "ExitCode": parts[2],
                            "Reason": parts[3] if len(parts) > 3 else ""})
    return records


def combine(statuses: list[ExecutionStatus]) -> ExecutionStatus:
    """Fold the statuses of array tasks into one: running while any runs, else the worst outcome."""
    if not statuses:
        return ExecutionStatus(LOST, None, "Slurm no longer knows the job")
    if len(statuses) == 1:
        return statuses[0]
    if any(s.state not in TERMINAL for s in statuses):
        done = sum(s.state in TERMINAL for s in statuses)
        return ExecutionStatus(RUNNING, None, f"{done}/{len(statuses)} array tasks done")
    for state in (FAILED, LOST, CANCELLED):
        hits = [s for s in statuses if s.state == state]
        if hits:
            return ExecutionStatus(state, hits[0].exit_code, f"{len(hits)}/{len(statuses)} array tasks {state}: "
                                   f"{hits[0].reason}")
    return ExecutionStatus(SUCCEEDED, 0, f"{len(statuses)} array tasks succeeded")


def status_from_records(records: list[dict[str, str]]) -> ExecutionStatus:
    """Map scontrol/sacct records of one job (or its array tasks) to one status."""
    tasks = [r for r in records if not (r.get("ArrayTaskId", "").startswith("[") or "[" in r.get("JobId", ""))]
    pending_arrays = [r for r in records if r not in tasks]
    statuses = [slurm_status(r.get("JobState", ""), r.get("ExitCode"), r.get("Reason", "")) for r in tasks]
    statuses += [ExecutionStatus(RUNNING, None, "queued: array tasks pending") for _ in pending_arrays]
    return combine(statuses)

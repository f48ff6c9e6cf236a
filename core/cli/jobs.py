"""Job commands: `forgeml submit`, `forgeml jobs ls|show|logs|cancel|retry|wait`, `forgeml scheduler`."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from forgeml.cli.output import emit_json, print_table
from forgeml.times import format_utc


def _duration(job: Any) -> str:
    if not job.started_at:
        return ""
    end = job.finished_at or time.time()
    return f"{max(0.0, end - job.started_at):.1f}s"


@click.command("submit")
@click.argument("script", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False), help="Load the job from a TOML/YAML/JSON file.")
@click.option("--command", "command", help="Run this command line instead of a script.")
@click.option("--name", help="A name for the job (default: the script's name).")
@click.option("--framework", type=click.Choice(["none", "pytorch", "tensorflow", "jax"]), help="Training framework.")
@click.option("--gpus", type=int, help="Number of GPUs.")
@click.option("--gpu-type", help="GPU product, e.g. H100 or A100.")
@click.option("--min-gpu-memory", help="Free memory needed on each GPU, e.g. 40Gi.")
@click.option("--shared", is_flag=True, default=None, help="Share GPUs with other shared jobs (default: exclusive).")
@click.option("--cpus", type=float, help="CPU cores (CPU-only jobs are pinned to them).")
@click.option("--memory", help="Memory limit, e.g. 16Gi or 16GB.")
@click.option("--nproc", type=int, help="torchrun processes per node (default: one per GPU).")
@click.option("--strategy", type=click.Choice(["auto", "none", "ddp", "fsdp"]),
              help="Distributed strategy: ddp or fsdp launch torchrun; forgeml.distributed.wrap() applies it.")
@click.option("--nodes", type=int, help="Nodes for a multi-node job on a batch target (Slurm).")
@click.option("--param", "params", multiple=True, help="Hyperparameter NAME=VALUE (repeatable; JSON values parsed).")
@click.option("--env", "env", multiple=True, help="Environment variable NAME=VALUE (repeatable).")
@click.option("--dataset", "datasets", multiple=True, help="Dataset reference such as sales@v3 (repeatable).")
@click.option("--workdir", type=click.Path(file_okay=False), help="Folder the job runs in (default: here).")
@click.option("--priority", type=int, help="Higher runs first and may preempt lower (default 0).")
@click.option("--retries", type=int, help="Retries for transient failures (default 0).")
@click.option("--timeout", help="Stop the job after this long, e.g. 90s, 30m, 2h.")
@click.option("--target", help="Compute target from plugins.toml (default: local).")
@click.option("--no-preempt", "no_preempt", is_flag=True, default=None, help="Never preempt this job.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued job as JSON.")
def submit_cmd(script: str | None, args: tuple[str, ...], spec_file: str | None, as_json: bool, **flags: Any) -> None:
    """Queue a training job: forgeml submit train.py --gpus 2 --gpu-type H100 --param lr=1e-3 -- --epochs 3"""
    from forgeml.jobs import submit
    from forgeml.jobs.daemon import after_submit
    from forgeml.jobs.flags import spec_from_flags

    spec = spec_from_flags(script, list(args), spec_file, flags)
    job = submit(spec)
    notice = after_submit(job)
    if as_json:
        emit_json(job.to_dict())
    else:
        click.echo(f"Submitted job {job.id} ({job.name}) to {job.target}; follow it with `forgeml jobs logs -f {job.id}`")
    if notice:
        click.echo(notice, err=True)


@click.group("jobs")
def jobs_group() -> None:
    """List, inspect, follow, cancel and retry jobs."""


@jobs_group.command("ls")
@click.option("--state", help="Only jobs in this state (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED).")
@click.option("--target", help="Only jobs for this compute target.")
@click.option("--limit", type=int, default=50, show_default=True, help="Most jobs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs_ls(state: str | None, target: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    from forgeml.jobs import list_jobs

    jobs = list_jobs(state=state, target=target, limit=limit)
    if as_json:
        emit_json([j.to_dict() for j in jobs])
        return
    rows = [{"id": j.id, "name": j.name, "state": j.state, "priority": j.priority, "target": j.target,
             "gpus": ",".join(map(str, j.gpus)) or (str(j.spec.gpus) if j.spec.gpus else "-"),
             "attempts": j.attempts, "submitted": format_utc(j.submitted_at), "duration": _duration(j), "reason": j.reason}
            for j in jobs]
    print_table(rows, ["id", "name", "state", "priority", "target", "gpus", "attempts", "submitted", "duration",
                       "reason"], title="jobs")


@jobs_group.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs_show(job_id: str, as_json: bool) -> None:
    """Show a job: spec, state, attempts and transitions."""
    from forgeml.jobs import get_job, job_attempts, job_events

    job = get_job(job_id)
    attempts, events = job_attempts(job.id), job_events(job.id)
    if as_json:
        emit_json({**job.to_dict(), "attempt_history": attempts, "events": events})
        return
    click.echo(f"job {job.id}  {job.name}  [{job.state}]  target={job.target}  priority={job.priority}")
    click.echo(f"  reason: {job.reason or '-'}   exit code: {job.exit_code}   run: {job.run_id or '-'}")
    click.echo(f"  attempts: {job.attempts}   failures: {job.failures}/{job.max_retries}   "
               f"preemptions: {job.preemptions}")
    click.echo(f"  argv: {' '.join(job.spec.argv())}")
    if attempts:
        print_table([{**a, "started_at": format_utc(a["started_at"]), "finished_at": format_utc(a["finished_at"]),
                      "gpus": ",".join(map(str, a["gpus"]))} for a in attempts],
                    ["attempt", "started_at", "finished_at", "exit_code", "outcome", "gpus", "reason"], title="attempts")
    print_table([{**e, "at": format_utc(e["at"])} for e in events], ["at", "old_state", "new_state", "reason"],
                title="transitions")


@jobs_group.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
@click.option("--attempt", type=int, help="Which attempt (default: the latest).")
def jobs_logs(job_id: str, follow: bool, attempt: int | None) -> None:
    """Print a job's output (stdout and stderr)."""
    from forgeml.jobs import follow_logs, get_job, read_logs
    from forgeml.jobs.daemon import pending_notice

    notice = pending_notice(get_job(job_id))
    if notice:
        click.echo(notice, err=True)
    if follow:
        for chunk in follow_logs(job_id):
            click.echo(chunk, nl=False)
            sys.stdout.flush()
        return
    text, _ = read_logs(job_id, attempt=attempt)
    click.echo(text, nl=False)


@jobs_group.command("cancel")
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs_cancel(job_ids: tuple[str, ...], as_json: bool) -> None:
    """Cancel jobs: pending ones now, running ones by SIGTERM then SIGKILL after the grace period."""
    from forgeml.jobs import cancel

    jobs = [cancel(j) for j in job_ids]
    if as_json:
        emit_json([j.to_dict() for j in jobs])
        return
    for j in jobs:
        click.echo(f"{j.id}: {'cancelled' if j.state == 'CANCELLED' else 'stopping (the scheduler signals it)'}")


@jobs_group.command("retry")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs_retry(job_id: str, as_json: bool) -> None:
    """Queue a FAILED or CANCELLED job again."""
    from forgeml.jobs import retry

    job = retry(job_id)
    if as_json:
        emit_json(job.to_dict())
    else:
        click.echo(f"{job.id}: queued again ({job.state})")


@jobs_group.command("wait")
@click.argument("job_id")
@click.option("--timeout", type=float, help="Give up after this many seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs_wait(job_id: str, timeout: float | None, as_json: bool) -> None:
    """Wait for a job to end; exit 0 when it SUCCEEDED, 1 otherwise."""
    from forgeml.jobs import wait

    job = wait(job_id, timeout=timeout)
    if as_json:
        emit_json(job.to_dict())
    else:
        click.echo(f"{job.id}: {job.state} ({job.reason})")
    if job.state != "SUCCEEDED":
        sys.exit(1)


@click.command("scheduler")
@click.option("--detach", is_flag=True, help="Run in the background; output goes to .forgeml/jobs/scheduler.log.")
@click.option("--once", is_flag=True, help="Run one cycle (supervise, place, launch) and exit.")
@click.option("--until-idle", is_flag=True, help="Run until no job is pending or running, then exit.")
def scheduler_cmd(detach: bool, once: bool, until_idle: bool) -> None:
    """Run the workspace's job scheduler (one per workspace; jobs survive its restarts)."""
    from forgeml.jobs.daemon import detach_scheduler, run_scheduler

    if detach:
        pid = detach_scheduler()
        click.echo(f"Scheduler running in the background (pid {pid}); log: .forgeml/jobs/scheduler.log")
        return
    run_scheduler(once=once, until_idle=until_idle)

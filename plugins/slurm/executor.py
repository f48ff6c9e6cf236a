"""The Slurm executor: sbatch on this machine or over SSH on a login node; scontrol/sacct for states."""

from __future__ import annotations

import shlex
import threading
from dataclasses import replace
from typing import Any

from forgeml.contracts import ExecutionStatus, Executor, HealthCheck, LaunchRequest
from forgeml.errors import ForgeError, RemoteError
from forgeml.plugins.remote.attempt import BringBack, prepare_attempt
from forgeml.plugins.remote.bringback import RemoteWorkspace
from forgeml.plugins.remote.hosts import Host, LocalHost, SshEndpoint, SshHost, endpoint_defaults, expand_home
from forgeml.plugins.remote.jobdir import make_handle, needs_of, parse_handle
from forgeml.plugins.remote.states import CANCELLED, LOST, RUNNING
from forgeml.plugins.slurm.batch import (
    parse_sacct,
    parse_sbatch_id,
    parse_scontrol,
    render_sbatch,
    status_from_records,
)
from forgeml.plugins.slurm.settings import SlurmTargetSettings

SCHEME = "slurm"


class SlurmExecutor(Executor):
    """Submits attempts as batch jobs; files live under remote_root on the cluster's shared filesystem."""

    name = "slurm"

    def __init__(self, settings: SlurmTargetSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace
        self.endpoint: SshEndpoint | None = None
        if settings.login_host:
            self.endpoint = SshEndpoint.parse(settings.login_host, **endpoint_defaults(settings))
            self.host: Host = SshHost(self.endpoint)
        else:
            self.host = LocalHost(env=dict(settings.env))
        self.bring_back = BringBack(workspace, settings.sync_interval_s)
        self._lock = threading.Lock()
        self._has_sacct: bool | None = None

    def _where(self) -> tuple[str, str, int]:
        if self.endpoint is not None:
            return self.endpoint.login, self.endpoint.host, self.endpoint.port
        import getpass

        return getpass.getuser(), "localhost", 0

    def _remote_ws(self) -> RemoteWorkspace:
        root = expand_home(self.settings.remote_root.rstrip("/"), self.host)
        return RemoteWorkspace(self.host, f"{root}/workspace", self.settings.python, _ready=True)

    def _run(self, command: str, what: str, timeout: float = 60) -> str:
        result = self.host.run(command, timeout=timeout)
        if not result.ok:
            raise RemoteError(f"{what} on {self.host.label} failed (exit {result.exit_code}): "
                              f"{(result.stderr or result.stdout).strip()[-400:]}")
        return result.stdout

    # ------------------------------------------------------------ contract
    def launch(self, request: LaunchRequest) -> str:
        """Sync the code, render the batch script and sbatch it; return a handle with the Slurm job id."""
        needs = needs_of(request)
        if needs.nodes == 1 and self.settings.nodes > 1:
            needs = replace(needs, nodes=self.settings.nodes)
        nproc = getattr(request.spec, "nproc", None) if request.spec is not None else None
        log_name = "output-0.log" if needs.array else "output.log"
        prepared, _ = prepare_attempt(self.host, self.settings, request, self.workspace, {"log_name": log_name},
                                      target=f"slurm:{self.host.label}")
        d = prepared.job_dir
        name = f"forgeml-{request.job_id}"[:100]
        script = render_sbatch(name, d, prepared.argv, prepared.env, needs, self.settings, prepared.workdir, nproc)
        self.host.write_bytes(f"{d}/job.sbatch", script.text.encode(), private=True)  # it exports secrets
        self.host.run(f"cd {shlex.quote(d)} && rm -f exit_code* cancelled", timeout=30)
        out = self._run(f"sbatch --parsable {shlex.quote(d + '/job.sbatch')}", f"sbatch for job {request.job_id}")
        slurm_id = parse_sbatch_id(out)
        self.host.write_bytes(f"{d}/slurm_job_id", slurm_id.encode())
        user, host, port = self._where()
        return make_handle(SCHEME, user, host, port, d, slurm_id)

    def _records(self, slurm_id: str) -> list[dict[str, str]]:
        result = self.host.run(f"scontrol show job -o {shlex.quote(slurm_id)}", timeout=30)
        records = parse_scontrol(result.stdout) if result.ok else []
        if records:
            return records
        if self._has_sacct is None:
            probe = self.host.run("command -v sacct >/dev/null && sacct -n -X -j 1 >/dev/null 2>&1", timeout=30)
            self._has_sacct = probe.ok
        if self._has_sacct:
            result = self.host.run(f"sacct -n -P -X -j {shlex.quote(slurm_id)} -o JobID,State,ExitCode,Reason",
                                   timeout=30)
            if result.ok:
                return parse_sacct(result.stdout)
        return []

    def _from_files(self, job_dir: str) -> ExecutionStatus:
        """When Slurm forgot the job (no accounting, past MinJobAge), read the exit file the script wrote."""
        if self.host.exists(f"{job_dir}/cancelled"):
            return ExecutionStatus(CANCELLED, None, "cancelled")
        code = self.host.read_bytes(f"{job_dir}/exit_code").decode().strip()
        if code.lstrip("-").isdigit():
            rc = int(code)
            return ExecutionStatus("succeeded" if rc == 0 else "failed", rc, "" if rc == 0 else f"exit code {rc}")
        return ExecutionStatus(LOST, None, "Slurm no longer knows the job and it left no exit code")

    def poll(self, handle: str) -> ExecutionStatus:
        """Ask scontrol (then sacct, then the exit file) for the state; stream logs; bring results back."""
        h = parse_handle(handle, SCHEME)
        try:
            records = self._records(h.job_id)
            status = status_from_records(records) if records else self._from_files(h.job_dir)
            if status.state == "failed" and self.host.exists(f"{h.job_dir}/cancelled"):
                status = ExecutionStatus(CANCELLED, status.exit_code, "cancelled")
            meta = self.bring_back.meta(self.host, h.job_dir)
            return self.bring_back.after_poll(self.host, self._remote_ws(), h.job_dir, status,
                                              meta.get("log_name", "output.log"))
        except ForgeError as e:
            # the batch job lives on in the cluster; the next poll asks again
            return ExecutionStatus(RUNNING, None, f"cluster unreachable, will retry: {e}")

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        """scancel the job (Slurm sends TERM, then KILL after the cluster's KillWait)."""
        h = parse_handle(handle, SCHEME)
        self.host.write_bytes(f"{h.job_dir}/cancelled", b"")
        result = self.host.run(f"scancel {shlex.quote(h.job_id)}", timeout=60)
        if not result.ok and "already completed" not in result.stderr and "Invalid job id" not in result.stderr:
            raise RemoteError(f"scancel {h.job_id} on {self.host.label} failed: {result.stderr.strip()[-300:]}")

    def logs(self, handle: str, offset: int = 0) -> tuple[str, int]:
        """Return the job's output (array task 0 for arrays) from a byte offset."""
        h = parse_handle(handle, SCHEME)
        name = self.bring_back.meta(self.host, h.job_dir).get("log_name", "output.log")
        data = self.host.read_bytes(f"{h.job_dir}/{name}", offset)
        return data.decode(errors="replace"), offset + len(data)

    def python(self) -> str:
        """Return the cluster's interpreter that has forgeml installed."""
        return self.settings.python

    def describe(self) -> str:
        """Name the login node (or this machine) and the partition."""
        part = f" partition {self.settings.partition}" if self.settings.partition else ""
        return (f"login node {self.settings.login_host}" if self.settings.login_host else "sbatch on this machine") + part

    def check(self) -> list[HealthCheck]:
        """Reach the controller, list partitions with node states and GPUs, and count queued jobs."""
        where = self.host.label
        try:
            ping = self.host.run("scontrol ping", timeout=30)
        except ForgeError as e:
            return [HealthCheck(f"slurm via {where}", False, str(e))]
        up = ping.ok and "UP" in ping.stdout
        out = [HealthCheck(f"slurmctld via {where}", up, (ping.stdout or ping.stderr).strip().splitlines()[0]
                           if (ping.stdout or ping.stderr).strip() else "no answer")]
        if not up:
            return out
        part = self.settings.partition
        sinfo = self.host.run(f"sinfo -h {'-p ' + shlex.quote(part) if part else ''} -o '%P|%a|%D|%T|%G'", timeout=30)
        rows = [r.split("|") for r in sinfo.stdout.split() if r.count("|") == 4]
        usable = [r for r in rows if r[1] == "up" and r[3].rstrip("*~#$@").startswith(("idle", "mixed", "alloc"))]
        detail = "; ".join(f"{p} {a} {n} node(s) {s} gres={g}" for p, a, n, s, g in rows) or sinfo.stderr.strip()
        out.append(HealthCheck(f"partition {part or '(default)'}", bool(usable), detail or "no partitions"))
        gres = ",".join(r[4] for r in rows if r[4] not in {"", "(null)"})
        out.append(HealthCheck("gpus", True, f"gres {gres}" if gres else "no GPU gres: CPU only"))
        queue = self.host.run("squeue -h -o '%T'", timeout=30)
        states = queue.stdout.split()
        out.append(HealthCheck("queue", queue.ok, f"{states.count('RUNNING')} running, {states.count('PENDING')} pending"))
        py = self.host.run(f"{shlex.quote(self.settings.python)} -c 'import forgeml; print(forgeml.__version__)'",
                           timeout=60)
        out.append(HealthCheck("forgeml", py.ok, f"{self.settings.python}: forgeml {py.stdout.strip()}" if py.ok else
                               f"{self.settings.python} cannot import forgeml; install it on the cluster or set python"))
        return out

    def close(self) -> None:
        """Close the login-node connection."""
        self.host.close()


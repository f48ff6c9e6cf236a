"""The SSH executor: jobs run detached on one or more hosts; handles survive a dropped connection."""

from __future__ import annotations

import shlex
import threading
import time
from typing import Any

from forgeml.contracts import ExecutionStatus, Executor, GpuDevice, HealthCheck, LaunchRequest
from forgeml.errors import ForgeError, JobError, RemoteError
from forgeml.plugins.remote.attempt import BringBack, prepare_attempt
from forgeml.plugins.remote.bringback import RemoteWorkspace
from forgeml.plugins.remote.gpus import describe, pick_gpus, remote_gpus
from forgeml.plugins.remote.hosts import SshEndpoint, SshHost, endpoint_defaults, expand_home
from forgeml.plugins.remote.jobdir import (
    make_handle,
    needs_of,
    parse_handle,
    parse_status,
    render_run_script,
    status_command,
)
from forgeml.plugins.remote.states import RUNNING
from forgeml.plugins.ssh.settings import SshTargetSettings

SCHEME = "ssh"

# TERM the process group now; a detached watcher KILLs it after the grace period, so cancel never blocks.
CANCEL_SCRIPT = """cd {d} 2>/dev/null || exit 0
touch cancelled
p=$(cat pid 2>/dev/null); [ -n "$p" ] || exit 0
kill -{signal} -"$p" 2>/dev/null || kill -{signal} "$p" 2>/dev/null
[ {grace} -gt 0 ] || exit 0
nohup sh -c 'sleep {grace}; kill -KILL -'"$p"' 2>/dev/null || kill -KILL '"$p"' 2>/dev/null' >/dev/null 2>&1 </dev/null &
exit 0
"""


class SshExecutor(Executor):
    """Launches attempts over SSH: sync code by content hash, start detached, poll pid/exit files."""

    name = "ssh"

    def __init__(self, settings: SshTargetSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace
        if not settings.hosts:
            raise RemoteError("an ssh target needs at least one entry in hosts = [\"[user@]host[:port]\"]")
        defaults = endpoint_defaults(settings)
        self.endpoints = [SshEndpoint.parse(h, **defaults) for h in settings.hosts]
        self._hosts: dict[tuple[str, int, str], SshHost] = {}
        self._lock = threading.Lock()
        self.bring_back = BringBack(workspace, settings.sync_interval_s)

    # ------------------------------------------------------------ connections
    def host(self, endpoint: SshEndpoint) -> SshHost:
        """Return the (lazily connecting) host object for an endpoint."""
        key = (endpoint.host, endpoint.port, endpoint.login)
        with self._lock:
            if key not in self._hosts:
                self._hosts[key] = SshHost(endpoint)
            return self._hosts[key]

    def _host_of(self, handle: str) -> tuple[SshHost, str]:
        h = parse_handle(handle, SCHEME)
        for ep in self.endpoints:
            if ep.host == h.host and ep.port == h.port and ep.login == h.user:
                return self.host(ep), h.job_dir
        # a handle from an older configuration: reach it with this target's credentials
        defaults = {**endpoint_defaults(self.settings), "port": h.port, "user": h.user}
        return self.host(SshEndpoint(host=h.host, **defaults)), h.job_dir

    def _remote_ws(self, host: SshHost) -> RemoteWorkspace:
        root = expand_home(self.settings.remote_root.rstrip("/"), host)
        return RemoteWorkspace(host, f"{root}/workspace", self.settings.python, _ready=True)

    def gpus(self, endpoint: SshEndpoint) -> list[GpuDevice]:
        """Return the GPUs nvidia-smi reports on a host (empty: CPU only)."""
        return remote_gpus(self.host(endpoint))

    # ------------------------------------------------------------ contract
    def _choose(self, gpus: int, gpu_type: str) -> tuple[SshHost, list[GpuDevice], list[GpuDevice]]:
        reasons = []
        for ep in self.endpoints:
            try:
                host = self.host(ep)
                devices = remote_gpus(host)
            except ForgeError as e:
                reasons.append(f"{ep.label}: {e}")
                continue
            if gpus == 0:
                return host, devices, []
            chosen = pick_gpus(devices, gpus, gpu_type)
            if chosen is not None:
                return host, devices, chosen
            reasons.append(f"{ep.label}: {describe(devices)}")
        kind = f" {gpu_type}" if gpu_type else ""
        raise JobError(f"no host of this ssh target has {gpus}{kind} GPU(s): " + "; ".join(reasons))

    def launch(self, request: LaunchRequest) -> str:
        """Sync the code, seed the run remotely and start the attempt detached; return its handle."""
        needs = needs_of(request)
        host, devices, chosen = self._choose(needs.gpus, needs.gpu_type)
        prepared, _ = prepare_attempt(host, self.settings, request, self.workspace,
                                      {"gpus": [d.index for d in chosen], "host": host.label},
                                      target=f"ssh:{host.label}")
        env = dict(prepared.env)
        if devices:
            # a CPU job on a GPU box must not grab every GPU by default
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d.index) for d in chosen)
        d = prepared.job_dir
        # owner-only: the script exports the secrets the workspace's plugins.toml reads
        host.write_bytes(f"{d}/run.sh", render_run_script(d, prepared.argv, env, prepared.workdir).encode(),
                         private=True)
        shell = '"${SHELL:-/bin/sh}" -lc ' + shlex.quote(f"exec /bin/sh {shlex.quote(d + '/run.sh')}") \
            if self.settings.login_shell else f"/bin/sh {shlex.quote(d + '/run.sh')}"
        start = (f"cd {shlex.quote(d)} && rm -f pid exit_code cancelled && "
                 f"if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi; "
                 f"nohup $S {shell} > launcher.log 2>&1 < /dev/null &")
        result = host.run(start, timeout=60)
        if not result.ok:
            raise RemoteError(f"starting job {request.job_id} on {host.label} failed: {result.stderr.strip()}")
        deadline = time.monotonic() + 20
        while not host.exists(f"{d}/pid") and not host.exists(f"{d}/exit_code"):
            if time.monotonic() > deadline:
                tail = host.read_bytes(f"{d}/launcher.log").decode(errors="replace")[-400:]
                raise RemoteError(f"job {request.job_id} did not start on {host.label} within 20 s: {tail or 'no output'}")
            time.sleep(0.1)
        ep = host.endpoint
        return make_handle(SCHEME, ep.login, ep.host, ep.port, d, request.job_id)

    def poll(self, handle: str) -> ExecutionStatus:
        """Read the pid/exit files (reconnecting if needed), stream the log and bring results back."""
        host, job_dir = self._host_of(handle)
        try:
            status = parse_status(host.run(status_command(job_dir), timeout=30).stdout)
            return self.bring_back.after_poll(host, self._remote_ws(host), job_dir, status)
        except ForgeError as e:
            # the job keeps running on the host; the next poll reconnects and reattaches
            return ExecutionStatus(RUNNING, None, f"unreachable, will reattach: {e}")

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        """Send TERM to the attempt's process group; a watcher on the host sends KILL after grace_s."""
        self._signal(handle, "TERM", grace_s)

    def kill(self, handle: str) -> None:
        """Send KILL to the attempt's process group now."""
        self._signal(handle, "KILL", 0)

    def _signal(self, handle: str, signal: str, grace_s: float) -> None:
        host, job_dir = self._host_of(handle)
        script = CANCEL_SCRIPT.format(d=shlex.quote(job_dir), signal=signal, grace=max(0, int(round(grace_s))))
        result = host.run("/bin/sh -s", timeout=60, stdin=script.encode())
        if not result.ok:
            raise RemoteError(f"cancelling {job_dir} on {host.label} failed: {result.stderr.strip()}")

    def logs(self, handle: str, offset: int = 0) -> tuple[str, int]:
        """Return the remote log from a byte offset and the new offset."""
        host, job_dir = self._host_of(handle)
        data = host.read_bytes(f"{job_dir}/output.log", offset)
        return data.decode(errors="replace"), offset + len(data)

    def python(self) -> str:
        """Return the remote interpreter that has forgeml installed."""
        return self.settings.python

    def describe(self) -> str:
        """Name the target's hosts."""
        return ", ".join(self.settings.hosts)

    def check(self) -> list[HealthCheck]:
        """Log in to every host, find forgeml and the GPUs there."""
        out = []
        for ep in self.endpoints:
            try:
                host = self.host(ep)
                result = host.run("uname -sr", timeout=30)
                out.append(HealthCheck(f"ssh {ep.label}", result.ok, result.stdout.strip() or result.stderr.strip()))
            except ForgeError as e:
                out.append(HealthCheck(f"ssh {ep.label}", False, str(e)))
                continue
            py = host.run(f"{shlex.quote(self.settings.python)} -c 'import forgeml; print(forgeml.__version__)'",
                          timeout=60)
            out.append(HealthCheck(f"forgeml on {ep.label}", py.ok,
                                   f"{self.settings.python}: forgeml {py.stdout.strip()}" if py.ok else
                                   f"{self.settings.python} cannot import forgeml; install it there or set python"))
            out.append(HealthCheck(f"gpus on {ep.label}", True, describe(remote_gpus(host))))
        return out

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            for host in self._hosts.values():
                host.close()

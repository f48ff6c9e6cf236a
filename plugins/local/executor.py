"""The local executor: jobs as process groups on this workstation, with CPU pinning and memory caps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgeml.contracts import Capacity, ExecutionStatus, Executor, HealthCheck, LaunchRequest
from forgeml.plugins.local.settings import LocalTargetSettings

# Runs the job in the foreground and records its exit status in a file, so that a scheduler
# started later (not the parent, so unable to waitpid) still learns how the attempt ended.
# The TERM trap keeps the wrapper alive while the job handles SIGTERM; ``:`` resets to default in the job.
_WRAPPER = 'trap : TERM INT HUP; f=$1; shift; "$@"; c=$?; printf "%s\\n" "$c" > "$f.tmp" && mv -f "$f.tmp" "$f"; exit $c'


def _ctime(pid: int) -> float | None:
    """Return the process's start time, or None when it is gone or a zombie."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _parse(handle: str) -> dict[str, Any]:
    """Read a handle this executor issued, or raise JobError naming what it was given."""
    from forgeml.errors import JobError

    try:
        h = json.loads(handle)
    except (TypeError, ValueError):
        h = None
    if not isinstance(h, dict) or not {"pid", "ctime", "exit", "log"} <= h.keys():
        raise JobError(f"local executor: {handle!r} is not a handle it issued")
    return h


def _decode(code: int) -> int:
    """Turn a shell status above 128 back into a negative signal number, as subprocess reports it."""
    return -(code - 128) if 128 < code <= 128 + 64 else code


class LocalExecutor(Executor):
    """Runs attempts as local process groups; handles (pid + start time) survive scheduler restarts."""

    name = "local"
    beside_workspace = True
    places_gpus = True

    def __init__(self, settings: LocalTargetSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace
        self._children: dict[int, subprocess.Popen] = {}
        self._cores: dict[int, tuple[int, ...]] = {}
        self._lock = threading.Lock()
        self._on_exit: Callable[[], None] | None = None

    def set_wakeup(self, callback: Callable[[], None] | None) -> None:
        """Call callback whenever a child this process launched exits (the scheduler wakes on it)."""
        self._on_exit = callback

    def capacity(self) -> Capacity:
        """Return the CPU cores and memory jobs may use in total on this machine."""
        from forgeml.jobs.spec import parse_memory

        cpus = self.settings.cpus or len(os.sched_getaffinity(0))
        if self.settings.memory:
            memory = parse_memory(self.settings.memory, "[compute.targets.local] memory")
        else:
            import psutil

            memory = psutil.virtual_memory().total // 2**20
        return Capacity(cpus, memory)

    def python(self) -> str | None:
        """Return the configured interpreter for script jobs, or None for the scheduler's own."""
        return self.settings.python or None

    def describe(self) -> str:
        """Say that this target is the workstation itself."""
        return "this machine"

    def process(self, handle: str) -> tuple[int, float] | None:
        """Return the attempt's process group leader (pid, start time); None once it has ended."""
        h = _parse(handle)
        ctime = _ctime(h["pid"])
        if ctime is None or abs(ctime - h["ctime"]) > 1.0:
            return None
        return h["pid"], h["ctime"]

    # ------------------------------------------------------------ launching
    def _pick_cores(self, n: int) -> tuple[int, ...]:
        allowed = sorted(os.sched_getaffinity(0))
        if self.settings.cpus:
            allowed = allowed[: self.settings.cpus]
        load = dict.fromkeys(allowed, 0)
        for cores in self._cores.values():
            for c in cores:
                if c in load:
                    load[c] += 1
        return tuple(sorted(sorted(allowed, key=lambda c: (load[c], c))[:n]))

    def launch(self, request: LaunchRequest) -> str:
        """Start the attempt in its own session with output to its log file; return its handle."""
        import psutil

        log_path = Path(request.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        exit_file = f"{log_path}.exit"
        for stale in (exit_file, f"{exit_file}.tmp"):
            if os.path.exists(stale):
                os.unlink(stale)
        cores: tuple[int, ...] = ()
        memory_bytes = 0
        if not request.gpus:
            whole = request.cpus is not None and float(request.cpus).is_integer() and request.cpus >= 1
            if self.settings.pin_cpus and whole and hasattr(os, "sched_setaffinity"):
                with self._lock:
                    cores = self._pick_cores(int(request.cpus))
            if self.settings.limit_memory and request.memory_mb:
                memory_bytes = int(request.memory_mb) * 2**20
        preexec = _limits(cores, memory_bytes) if cores or memory_bytes else None
        argv = ["/bin/sh", "-c", _WRAPPER, "forgeml-job", exit_file, *request.argv]
        with open(log_path, "ab", buffering=0) as log:
            try:
                proc = subprocess.Popen(argv, cwd=request.workdir, env=request.env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=preexec, close_fds=True)
            except OSError as e:
                from forgeml.errors import JobError

                raise JobError(f"cannot start job {request.job_id}: {e}") from e
        try:
            ctime = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            ctime = 0.0
        handle = json.dumps({"pid": proc.pid, "ctime": ctime, "exit": exit_file, "log": str(log_path),
                             "cores": list(cores)})
        Path(f"{log_path}.handle").write_text(handle)
        with self._lock:
            self._children[proc.pid] = proc
            if cores:
                self._cores[proc.pid] = cores
        threading.Thread(target=self._reap, args=(proc,), daemon=True, name=f"forgeml-reap-{proc.pid}").start()
        return handle

    def _reap(self, proc: subprocess.Popen) -> None:
        proc.wait()
        callback = self._on_exit
        if callback is not None:
            callback()

    def recover(self, log_path: str) -> str | None:
        """Return the handle of an attempt whose scheduler died before recording it, or None if none started.

        The handle file beside the log is written right after the process starts; a scheduler killed in
        between leaves a running process and no file, so the process is found by the exit file its
        wrapper's command line names, and adopted.
        """
        path = Path(f"{log_path}.handle")
        if path.is_file():
            return path.read_text()
        from forgeml.jobs.host import process_naming

        exit_file = f"{log_path}.exit"
        found = process_naming(exit_file)
        if found is None:
            return None
        handle = json.dumps({"pid": found[0], "ctime": found[1], "exit": exit_file, "log": str(log_path), "cores": []})
        path.write_text(handle)
        return handle

    # ------------------------------------------------------------ supervision
    def poll(self, handle: str) -> ExecutionStatus:
        """Return running, succeeded, failed (with exit code; negative for a signal) or lost."""
        h = _parse(handle)
        pid = h["pid"]
        with self._lock:
            proc = self._children.get(pid)
        if proc is not None:
            rc = proc.poll()
            if rc is None:
                return ExecutionStatus("running")
            with self._lock:
                self._children.pop(pid, None)
                self._cores.pop(pid, None)
            return self._ended(h, rc)
        if _ctime(pid) is not None and abs((_ctime(pid) or 0) - h["ctime"]) < 0.05:
            if h.get("cores"):
                with self._lock:
                    self._cores[pid] = tuple(h["cores"])
            return ExecutionStatus("running")
        with self._lock:
            self._cores.pop(pid, None)
        return self._ended(h, None)

    def _ended(self, h: dict[str, Any], wrapper_rc: int | None) -> ExecutionStatus:
        code: int | None = None
        try:
            code = _decode(int(Path(h["exit"]).read_text().strip()))
        except (OSError, ValueError):
            if wrapper_rc is not None:
                code = _decode(wrapper_rc) if wrapper_rc >= 0 else wrapper_rc
        if code is None:
            return ExecutionStatus("lost", None, "the process ended without recording an exit status")
        if code == 0:
            return ExecutionStatus("succeeded", 0)
        reason = f"killed by signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() \
            else f"exit code {code}"
        return ExecutionStatus("failed", code, reason)

    def _signal(self, h: dict[str, Any], sig: int) -> bool:
        pid = h["pid"]
        ctime = _ctime(pid)
        if ctime is None or abs(ctime - h["ctime"]) >= 0.05:
            return False
        try:
            os.killpg(pid, sig)
            return True
        except ProcessLookupError:
            return False

    def cancel(self, handle: str, grace_s: float = 10.0) -> None:
        """SIGTERM the attempt's process group now and SIGKILL it after grace_s (without blocking)."""
        h = _parse(handle)
        if not self._signal(h, signal.SIGTERM):
            return
        if grace_s <= 0:
            self._signal(h, signal.SIGKILL)
            return
        timer = threading.Timer(grace_s, self._signal, args=(h, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def kill(self, handle: str) -> None:
        """SIGKILL the attempt's process group now."""
        self._signal(_parse(handle), signal.SIGKILL)

    def logs(self, handle: str, offset: int = 0) -> tuple[str, int]:
        """Return the attempt's log text from byte offset and the new offset."""
        path = Path(_parse(handle)["log"])
        if not path.is_file():
            return "", offset
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
        return data.decode(errors="replace"), offset + len(data)

    def check(self) -> list[HealthCheck]:
        """Report the CPUs and memory this target offers jobs."""
        capacity = self.capacity()
        return [HealthCheck("local", True, f"{capacity.cpus:g} CPU cores, {capacity.memory_mb} MiB memory for jobs")]


def _limits(cores: tuple[int, ...], memory_bytes: int) -> Callable[[], None]:
    """Return a pre-exec function applying CPU affinity and an address-space cap in the child."""

    def apply() -> None:
        if cores:
            os.sched_setaffinity(0, cores)
        if memory_bytes:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))

    return apply

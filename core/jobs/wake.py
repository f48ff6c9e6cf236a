"""The scheduler's single-instance lock and its wake-up socket (submit and cancel nudge it)."""

from __future__ import annotations

import hashlib
import os
import selectors
import socket
import sys
from pathlib import Path
from typing import Any

from forgeml.errors import JobError


def jobs_dir(ws: Any) -> Path:
    """Return (creating it) the jobs layer's folder under the workspace's .forgeml/."""
    path = Path(ws.dot) / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _address(ws: Any) -> str:
    # Linux abstract sockets have no path-length limit and vanish with their owner.
    digest = hashlib.sha256(str(Path(ws.dot).resolve()).encode()).hexdigest()[:24]
    if sys.platform.startswith("linux"):
        return f"\0forgeml-scheduler-{digest}"
    return str(jobs_dir(ws) / "wake.sock")


def notify_scheduler(ws: Any) -> bool:
    """Nudge a running scheduler to look at the queue now; return whether one was listening."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.sendto(b"!", _address(ws))
        return True
    except OSError:  # no scheduler listening, or its buffer is full (it is awake already)
        return False


class Waker:
    """The scheduler's end of the wake-up socket: wait(timeout) returns early when nudged."""

    def __init__(self, ws: Any):
        self.address = _address(ws)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if not self.address.startswith("\0") and os.path.exists(self.address):
            os.unlink(self.address)  # we hold the scheduler lock, so a leftover socket is stale
        try:
            self.sock.bind(self.address)
        except OSError as e:
            self.sock.close()
            raise JobError(f"cannot open the scheduler's wake-up socket: {e}") from e
        self.sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ)

    def wait(self, timeout: float) -> bool:
        """Sleep up to timeout seconds; return True when woken by a nudge (all pending nudges drained)."""
        woken = bool(self.selector.select(max(timeout, 0.0)))
        while True:
            try:
                self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        return woken

    def wake(self) -> None:
        """Wake this waker from another thread of the same process."""
        try:
            self.sock.sendto(b"!", self.address)
        except OSError:
            return

    def close(self) -> None:
        """Release the socket."""
        self.selector.close()
        self.sock.close()
        if not self.address.startswith("\0") and os.path.exists(self.address):
            os.unlink(self.address)


class SchedulerLock:
    """An exclusive flock on .forgeml/jobs/scheduler.lock: one scheduler per workspace."""

    def __init__(self, ws: Any):
        self.path = jobs_dir(ws) / "scheduler.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise JobError naming the process that holds it."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JobError(
                f"another scheduler (pid {holder}) is already running for this workspace; "
                f"stop it first or let it run your jobs"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Drop the lock."""
        if self.fd is not None:
            import fcntl

            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def holder(self) -> int | None:
        """Return the pid of the scheduler holding the lock, or None when no scheduler runs."""
        import fcntl

        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 64, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

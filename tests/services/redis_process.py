"""A private redis-server, started by redis.sh in its own folder and port, that a test may kill, freeze or restart.

Chaos tests and benchmarks/serving_faults.py use it; the shared test redis (port 6390) is never
touched. The data is kept in an append-only file, so a restart after kill -9 comes back with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).with_name("redis.sh")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """One redis-server on 127.0.0.1:port with its state under ``folder``, controlled by PID."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.env = {**os.environ, "FORGEML_REDIS_DIR": str(self.folder), "FORGEML_REDIS_PORT": str(self.port),
                    "FORGEML_REDIS_APPENDONLY": "yes", "FORGEML_SERVICES_INSTALL": "0"}

    @staticmethod
    def available() -> bool:
        """Whether redis-server and redis-cli are installed."""
        return bool(shutil.which("redis-server") and shutil.which("redis-cli"))

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _script(self, action: str) -> None:
        out = subprocess.run(["bash", str(SCRIPT), action], env=self.env, capture_output=True, text=True,
                             timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"redis.sh {action} failed: {out.stderr.strip()[-500:]}")

    def start(self) -> None:
        """Start it (or restart it after a kill) and wait until it answers PING."""
        self._script("start")

    def stop(self) -> None:
        """Stop it by PID."""
        self._script("stop")

    @property
    def pid(self) -> int:
        """The server's process id, from redis.sh's state file."""
        return int((self.folder / "pids").read_text().split()[1])

    def kill(self) -> None:
        """kill -9 and wait until the process is gone: connections are refused until ``start``."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, ProcessLookupError):
                return
            if state == "Z":
                return
            time.sleep(0.01)

    def freeze(self) -> None:
        """SIGSTOP: connections hang, as on a stuck server, until ``thaw``."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after ``freeze``."""
        os.kill(self.pid, signal.SIGCONT)

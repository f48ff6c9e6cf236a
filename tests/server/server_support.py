"""Helpers for the platform API tests: a real `forgeml server` process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROLES = ("viewer", "scientist", "approver", "admin")


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """A `forgeml server` subprocess over one workspace, stopped by its PID."""

    def __init__(self, root: Path, *args: str, scheme: str = "http", verify: Any = True):
        self.root = Path(root)
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.verify = verify
        env = {**os.environ, "FORGEML_HOME": str(self.root)}
        self.log = open(self.root / f"server-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "forgeml", "server", "--port", str(self.port), *args],
                                     cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60.0) -> ApiServer:
        """Block until /healthz answers, or fail with the server's output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0, verify=self.verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s: {self.output()}")

    def output(self) -> str:
        """Return what the server printed."""
        self.log.flush()
        return (self.root / f"server-{self.port}.log").read_text(errors="replace")[-4000:]

    def client(self, token: str | None) -> httpx.Client:
        """Return an HTTP client sending this bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30.0, verify=self.verify)

    def stop(self) -> None:
        """Stop the server process by its PID."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def role_tokens(ws: Any) -> dict[str, str]:
    """Create one token per role (principals named after the role) and return role -> token."""
    from forgeml.auth import create_token

    return {role: create_token(f"{role}-user", role=role, kind="user", workspace=ws)[0] for role in ROLES}

"""`forgeml serve --workers N`: the parent hands each connection to the worker holding the fewest, replaces
a worker that dies, and its workers stop when it is gone. Real server processes on loopback."""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from serving_support import WhichProcess, register_function

LENGTH = re.compile(rb"(?i)content-length: *(\d+)")
BODY = b'{"rows": [{"x": 1.0}]}'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(conn: socket.socket) -> int:
    """Send one predict on a kept-alive connection; return the pid of the worker that answered."""
    conn.sendall(b"POST /v1/models/which/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    need = int(LENGTH.search(head).group(1))  # type: ignore[union-attr]
    while len(rest) < need:
        rest += conn.recv(65536)
    return int(httpx.Response(200, content=rest).json()["predictions"][0])


def _connections(port: int, n: int) -> list[socket.socket]:
    """Open n connections at once, before any request: what a client's connection pool does."""
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(n)]


@pytest.fixture
def served(workspace) -> Iterator[tuple[subprocess.Popen, int]]:
    from forgeml.registry import promote

    mv = register_function("which", WhichProcess())
    promote("which", mv.version, "production", reason="test")
    port = _free_port()
    env = {**os.environ, "FORGEML_HOME": str(workspace.root),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "forgeml", "serve", "which@production", "--workers", "2",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")[-2000:]  # type: ignore[union-attr]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server was not ready within 90 s"
            time.sleep(0.1)
        # both workers ready: a handful of fresh connections reach two processes
        while True:
            probes = _connections(port, 4)
            try:
                if len({_ask(c) for c in probes}) == 2:
                    break
            finally:
                for c in probes:
                    c.close()
            assert time.monotonic() < deadline, "the second worker never answered"
            time.sleep(0.2)
        time.sleep(1.0)  # the probes' connections are closed and counted out
        yield proc, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_connections_opened_at_once_spread_evenly_and_refill_the_emptier_worker(served):
    proc, port = served
    conns = _connections(port, 8)
    try:
        owners = [_ask(c) for c in conns]
        assert sorted(collections.Counter(owners).values()) == [4, 4], owners
        assert [_ask(c) for c in conns] == owners  # a kept-alive connection stays with its worker
        first = owners[0]
        for c, pid in zip(conns, owners, strict=True):
            if pid == first:
                c.close()
        time.sleep(2.0)  # the worker reports each close to the parent
        more = _connections(port, 4)
        conns += more
        assert [_ask(c) for c in more] == [first] * 4, "new connections go to the worker holding fewest"
    finally:
        for c in conns:
            c.close()


def test_a_killed_worker_is_replaced_and_the_workers_stop_with_the_parent(served):
    proc, port = served
    conns = _connections(port, 2)
    try:
        owners = {_ask(c) for c in conns}
        assert len(owners) == 2
        victim, survivor = sorted(owners)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        seen: set[int] = set()
        while True:  # fresh connections keep being answered, and a new worker joins
            fresh = _connections(port, 2)
            try:
                seen |= {_ask(c) for c in fresh}
            except (ConnectionError, AssertionError):  # handed to the victim in the instant it died
                pass
            finally:
                for c in fresh:
                    c.close()
            if seen - owners:
                break
            assert time.monotonic() < deadline, f"no replacement worker after 60 s: {seen}"
            time.sleep(0.2)
        assert victim not in seen
        workers = [p.pid for p in psutil.Process(proc.pid).children()]
        assert survivor in workers
        os.kill(proc.pid, signal.SIGKILL)  # the parent dies without telling anyone
        proc.wait(timeout=10)
        deadline = time.monotonic() + 60
        while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                  for pid in workers):
            assert time.monotonic() < deadline, "workers outlived their parent by 60 s"
            time.sleep(0.2)
    finally:
        for c in conns:
            c.close()

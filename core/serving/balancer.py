"""Several worker processes behind one port, each connection handed to the worker holding the fewest.

When workers share a listening socket (uvicorn's own multi-worker mode), the kernel wakes whichever
worker is idle first and that worker accepts every connection waiting at that moment: a client that
opens 8 keep-alive connections at once can find 7 of them on one worker and 1 on the other, and the
busy worker answers several times slower for as long as those connections stay open. Here the
parent process alone listens. It accepts each connection and passes the socket to the ready worker
with the fewest open connections (SCM_RIGHTS over a Unix socket pair); a worker reports each
connection it closes. A worker that dies is replaced; a worker whose parent is gone stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("forgeml.serving")

CONNECTION = b"c"
"""Parent to worker: one accepted connection (its socket travels as ancillary data)."""
READY = b"r"
"""Worker to parent: started, taking connections."""
CLOSED = b"x"
"""Worker to parent: one connection it held is closed."""

_RESTART_PAUSE_S = 1.0  # a worker that keeps dying is not restarted in a tight loop


def supported() -> bool:
    """Whether this platform can pass sockets between processes (POSIX with SCM_RIGHTS)."""
    return os.name == "posix" and hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")


# ------------------------------------------------------------------ worker side
def _tell(channel: socket.socket, what: bytes) -> None:
    # the parent may be gone during shutdown: nothing left to tell then
    with contextlib.suppress(OSError):
        channel.send(what)


def _server_class() -> type:
    """A uvicorn Server that takes its connections from the parent instead of a listening socket."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE

    class HandedServer(uvicorn.Server):
        """Serves the connections the parent hands over the channel."""

        def __init__(self, config: Any, channel: socket.socket):
            super().__init__(config)
            self.channel = channel
            self._pending: set[asyncio.Task[None]] = set()
            self._reading = False

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            """Start the app, then take connections from the channel."""
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                sys.exit(STARTUP_FAILURE)
            config, channel, state = self.config, self.channel, self.lifespan.state
            base = config.http_protocol_class

            class Counted(base):  # type: ignore[misc, valid-type]
                """uvicorn's protocol, telling the parent when its connection closes."""

                def connection_lost(self, exc: Exception | None) -> None:
                    try:
                        super().connection_lost(exc)
                    finally:
                        _tell(channel, CLOSED)

            def protocol() -> asyncio.Protocol:
                return Counted(config=config, server_state=self.server_state, app_state=state)

            loop = asyncio.get_running_loop()
            channel.setblocking(False)
            loop.add_reader(channel.fileno(), self._receive, loop, protocol)
            self._reading = True
            self.servers = []
            self.started = True
            _tell(channel, READY)

        def _receive(self, loop: asyncio.AbstractEventLoop, protocol: Any) -> None:
            while True:
                try:
                    data, fds, _, _ = socket.recv_fds(self.channel, 64, 16)
                except BlockingIOError:
                    return
                except OSError:
                    data, fds = b"", []
                if not data:  # the parent is gone: nobody hands connections any more, so stop
                    self._stop_reading(loop)
                    self.should_exit = True
                    return
                for fd in fds:
                    task = loop.create_task(self._connect(loop, protocol, socket.socket(fileno=fd)))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)

        async def _connect(self, loop: asyncio.AbstractEventLoop, protocol: Any, sock: socket.socket) -> None:
            try:
                await loop.connect_accepted_socket(protocol, sock, ssl=self.config.ssl)
            except OSError as e:  # the client left before the worker got to it; the parent still counts it
                log.debug("handed connection failed: %s", e)
                sock.close()
                _tell(self.channel, CLOSED)

        def _stop_reading(self, loop: asyncio.AbstractEventLoop) -> None:
            if self._reading:
                self._reading = False
                with contextlib.suppress(OSError, ValueError):
                    loop.remove_reader(self.channel.fileno())

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            """Stop taking connections, then shut down as uvicorn does."""
            self._stop_reading(asyncio.get_running_loop())
            await super().shutdown(sockets=sockets)

    return HandedServer


def worker_main(config: Any, channel: socket.socket) -> None:
    """Entry point of one worker process: serve what the parent hands over until told to stop."""
    config.configure_logging()
    with contextlib.suppress(KeyboardInterrupt):
        _server_class()(config, channel).run()


# ------------------------------------------------------------------ parent side
@dataclass
class Worker:
    """One worker process as the parent sees it."""

    process: Any
    channel: socket.socket
    open: int = 0
    ready: bool = False
    started_at: float = field(default_factory=time.monotonic)


class Balancer:
    """The parent: listens, hands each connection to a worker, keeps ``processes_num`` workers alive.

    ``processes_num`` and ``signal_queue`` (SIGTTIN: one worker more, SIGTTOU: one fewer) are the
    interface of uvicorn's process manager, so the autoscaler drives either.
    """

    def __init__(self, config: Any, workers: int, sock: socket.socket | None = None):
        self.config = config
        self.processes_num = workers
        self.signal_queue: list[int] = []
        self.sock = sock if sock is not None else config.bind_socket()
        self.workers: list[Worker] = []
        self.retiring: list[Worker] = []
        self.should_exit = False
        self.failed = ""
        self._context = multiprocessing.get_context("spawn")
        self._selector = selectors.DefaultSelector()
        self._last_start = 0.0
        self._accept_warned = -1e9

    # -------------------------------------------------------------- workers
    def _start_worker(self) -> Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = self._context.Process(target=worker_main, args=(self.config, theirs), daemon=False)
        process.start()
        theirs.close()
        ours.setblocking(False)
        worker = Worker(process, ours)
        self._selector.register(ours, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        self._last_start = time.monotonic()
        return worker

    def _drop(self, worker: Worker) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.channel)
        worker.channel.close()
        if worker in self.workers:
            self.workers.remove(worker)

    def _read(self, worker: Worker) -> None:
        while True:
            try:
                data = worker.channel.recv(64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the worker exited; _check_workers replaces it
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(worker.channel)
                worker.ready = False
                return
            for byte in data:
                if byte == READY[0]:
                    worker.ready = True
                elif byte == CLOSED[0]:
                    worker.open = max(0, worker.open - 1)

    def _check_workers(self) -> None:
        from uvicorn.config import STARTUP_FAILURE

        for worker in list(self.workers):
            if worker.process.is_alive():
                continue
            worker.process.join(timeout=1)
            code = worker.process.exitcode
            self._drop(worker)
            if self.should_exit:
                continue
            if code == STARTUP_FAILURE and not worker.ready:
                # the app or its models cannot start: every restart would fail the same way
                self.failed = f"a worker failed to start (exit code {code}); see the lines above"
                self.should_exit = True
                return
            log.warning("forgeml serve: worker %s exited (code %s); starting another", worker.process.pid, code)
        for worker in list(self.retiring):
            if not worker.process.is_alive():
                worker.process.join(timeout=1)
                self.retiring.remove(worker)
        if not self.should_exit and len(self.workers) < self.processes_num \
                and time.monotonic() - self._last_start >= _RESTART_PAUSE_S:
            self._start_worker()

    def _handle_signals(self) -> None:
        while self.signal_queue:
            sig = self.signal_queue.pop(0)
            if sig in (signal.SIGINT, signal.SIGTERM):
                self.should_exit = True
            elif sig == getattr(signal, "SIGTTIN", None):
                self.processes_num += 1
                self._start_worker()
            elif sig == getattr(signal, "SIGTTOU", None) and self.processes_num > 1:
                self.processes_num -= 1
                worker = min(self.workers, key=lambda w: (w.ready, w.open))
                self._drop(worker)  # no new connections; it finishes the requests it holds, then exits
                self.retiring.append(worker)
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(worker.process.pid, signal.SIGTERM)

    # -------------------------------------------------------------- connections
    def _pick(self) -> list[Worker]:
        """Workers in the order to try: ready ones first, fewest open connections first."""
        return sorted(self.workers, key=lambda w: (not w.ready, w.open))

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of file descriptors and the like: say so, keep serving the open ones
                now = time.monotonic()
                if now - self._accept_warned >= 10.0:
                    log.warning("forgeml serve: accept failed: %s", e)
                    self._accept_warned = now
                time.sleep(0.05)  # the error lasts a while (descriptors free up as connections close)
                return
            try:
                for worker in self._pick():
                    try:
                        socket.send_fds(worker.channel, [CONNECTION], [conn.fileno()])
                    except OSError:  # its channel is full or it just died: the next one takes it
                        continue
                    worker.open += 1
                    break
            finally:
                conn.close()  # the worker holds its own copy now (or nobody could take it)

    def run(self) -> None:
        """Start the workers and hand out connections until SIGINT or SIGTERM; then stop the workers."""
        handled = [signal.SIGINT, signal.SIGTERM] + [s for s in (getattr(signal, "SIGTTIN", None),
                                                                 getattr(signal, "SIGTTOU", None)) if s]
        previous = {sig: signal.signal(sig, lambda sig, frame: self.signal_queue.append(sig)) for sig in handled}
        self.sock.listen(self.config.backlog)
        self.sock.setblocking(False)
        self._selector.register(self.sock, selectors.EVENT_READ, None)
        try:
            for _ in range(self.processes_num):
                self._start_worker()
            while not self.should_exit:
                # workers' news first: a worker that just exited is not handed the next connection
                for key, _ in sorted(self._selector.select(timeout=0.5), key=lambda e: e[0].data is None):
                    if key.data is None:
                        self._accept()
                    else:
                        self._read(key.data)
                self._handle_signals()
                self._check_workers()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_all()
        if self.failed:
            from forgeml.errors import ForgeError

            raise ForgeError(f"forgeml serve: {self.failed}")

    def _stop_all(self) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self.sock)
        self.sock.close()  # no new connections while the workers finish what they hold
        everyone = [*self.workers, *self.retiring]
        for worker in everyone:
            if worker.process.is_alive():
                with contextlib.suppress(ProcessLookupError, TypeError):
                    os.kill(worker.process.pid, signal.SIGTERM)
        grace = float(getattr(self.config, "timeout_graceful_shutdown", None) or 30.0) + 5.0
        deadline = time.monotonic() + grace
        for worker in everyone:
            worker.process.join(timeout=max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
        for worker in list(self.workers):
            self._drop(worker)
        self._selector.close()


def run_balanced(config: Any, workers: int) -> None:
    """Serve ``config``'s app on ``workers`` processes, connections spread by the parent."""
    config.workers = workers
    Balancer(config, workers).run()

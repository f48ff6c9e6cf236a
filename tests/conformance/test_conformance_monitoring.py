"""Every registered monitor and notifier runs its layer's conformance suite.

Notifiers deliver to real destinations: a file, a command, an HTTP server on loopback. The desktop
notifier needs a desktop session, which this machine may lack: then only its failure rule runs.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from forgeml.testing import MonitorSuite, NotifierSuite
from forgeml.testing.process import ProviderOpener, registered


class TestMonitors(MonitorSuite):
    """Every monitor, with its documented default settings."""

    @pytest.fixture(params=registered("monitors"))
    def monitor(self, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
        return ProviderOpener(str(tmp_path / "ws"), "monitors", request.param)()


def _json_lines(path: Path) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on loopback recording the JSON bodies POSTed to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def _notifiers(name: str, request: pytest.FixtureRequest, root: Path) -> tuple[Any, Any, Any]:
    """(notifier, delivered, failing notifier) for one built-in notifier."""
    def build(settings: dict[str, Any]) -> Any:
        return ProviderOpener(str(root), "notifiers", name, settings)()

    if name == "log":
        (root / "blocker").write_text("a file where the failing notifier wants a folder")
        return build({"path": "alerts.log"}), _json_lines(root / "alerts.log"), build({"path": "blocker/alerts.log"})
    if name == "shell":
        script = root / "record.py"
        script.write_text("import sys\nwith open('received.jsonl', 'a') as f:\n    f.write(sys.stdin.read() + '\\n')\n")
        return (build({"command": f"{sys.executable} {script}"}), _json_lines(root / "received.jsonl"),
                build({"command": f"{sys.executable} -c 'import sys; sys.exit(4)'"}))
    if name == "webhook":
        url, received = request.getfixturevalue("webhook_server")
        return build({"url": url}), lambda: list(received), build({"url": "http://127.0.0.1:9/nothing-listens"})
    if name == "desktop":
        request.getfixturevalue("monkeypatch").delenv("DISPLAY", raising=False)
        for var in ("WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"):
            request.getfixturevalue("monkeypatch").delenv(var, raising=False)
        return None, None, build({})
    pytest.fail(f"no destination for notifier {name!r}: add one to tests/conformance/test_conformance_monitoring.py")


class TestNotifiers(NotifierSuite):
    """Every notifier, delivering to a real destination."""

    @pytest.fixture(params=registered("notifiers"))
    def setup(self, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Any, Any]:
        root = tmp_path / "ws"
        root.mkdir()
        return _notifiers(request.param, request, root)

    @pytest.fixture
    def notifier(self, setup: tuple[Any, Any, Any]) -> Any:
        if setup[0] is None:
            pytest.skip(f"no desktop session here (notify-send: {shutil.which('notify-send') or 'not installed'})")
        return setup[0]

    @pytest.fixture
    def delivered(self, setup: tuple[Any, Any, Any]) -> Any:
        return setup[1]

    @pytest.fixture
    def failing_notifier(self, setup: tuple[Any, Any, Any]) -> Any:
        return setup[2]

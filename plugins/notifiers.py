"""Alert notifiers: log, shell command, webhook, desktop."""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import Secret, redact_url, reveal, setting
from forgeml.errors import ConfigError, PluginError

log = logging.getLogger("forgeml.alerts")


@dataclass
class LogSettings:
    """Write alerts to a log file in the workspace and to the forgeml.alerts logger."""

    path: str = setting(".forgeml/monitoring/alerts.log", "JSON-lines file, relative to the workspace root.")


class LogNotifier:
    """Appends each alert as one JSON line and logs it."""

    name = "log"

    def __init__(self, settings: LogSettings, workspace: Any):
        self.path = workspace.resolve(settings.path)

    def notify(self, alert: Any) -> None:
        """Append the alert to the log file."""
        log.warning("alert %s [%s] %s", alert.get("id"), alert.get("severity"), alert.get("message"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(json.dumps(dict(alert), default=str) + "\n")
        except OSError as e:
            raise PluginError(f"log notifier: cannot write {self.path}: {e.strerror}") from e


@dataclass
class ShellSettings:
    """Run a command per alert: the alert's JSON on stdin, its fields in FORGEML_ALERT_* variables."""

    command: str = setting("", "Command line, split like a shell would, e.g. \"./page-oncall.sh --team ml\".")
    timeout_s: float = setting(30.0, "Kill the command after this many seconds.")


class ShellNotifier:
    """Runs a command with the alert on stdin and in the environment."""

    name = "shell"

    def __init__(self, settings: ShellSettings, workspace: Any):
        if not settings.command.strip():
            raise ConfigError("shell notifier: set `command` to the program to run")
        self.argv = shlex.split(settings.command)
        self.timeout_s = settings.timeout_s
        self.cwd = str(workspace.root)

    def notify(self, alert: Any) -> None:
        """Run the command; a non-zero exit or a timeout is a delivery failure."""
        env = {**os.environ, **{f"FORGEML_ALERT_{k.upper()}": "" if v is None else str(v)
                                for k, v in alert.items() if not isinstance(v, dict | list)}}
        try:
            proc = subprocess.run(self.argv, input=json.dumps(dict(alert), default=str), text=True, env=env,
                                  cwd=self.cwd, capture_output=True, timeout=self.timeout_s)
        except FileNotFoundError as e:
            raise PluginError(f"shell notifier: command {self.argv[0]!r} not found") from e
        except subprocess.TimeoutExpired as e:
            raise PluginError(f"shell notifier: {self.argv[0]!r} ran longer than {self.timeout_s:g}s") from e
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-300:]
            raise PluginError(f"shell notifier: {self.argv[0]!r} exited {proc.returncode}: {tail}")


@dataclass
class WebhookSettings:
    """POST each alert as JSON to a URL."""

    url: Secret | str = setting("", "Where to POST; a chat incoming-webhook URL is a secret: { env = \"VAR\" }.")
    token: Secret | None = setting(None, "Bearer token, given as { env = \"VAR\" }.")
    timeout_s: float = setting(10.0, "Give up after this many seconds.")


class WebhookNotifier:
    """POSTs the alert JSON; any non-2xx answer is a delivery failure."""

    name = "webhook"

    def __init__(self, settings: WebhookSettings, workspace: Any):
        url = reveal(settings.url) or ""
        # only the scheme and host ever reach a message: the rest of a webhook URL is its credential
        self.label = redact_url(url)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook notifier: url must start with http:// or https://, got {self.label}")
        self.settings = settings
        self.url = url

    def notify(self, alert: Any) -> None:
        """POST the alert."""
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json", "User-Agent": "forgeml-alerts"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get()}"
        body = json.dumps(dict(alert), default=str).encode()
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as e:
            raise PluginError(f"webhook notifier: {self.label} answered {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise PluginError(f"webhook notifier: cannot reach {self.label}: {reason}") from None


@dataclass
class DesktopSettings:
    """Show a desktop notification with notify-send."""

    urgency_critical: bool = setting(True, "Show critical alerts with critical urgency.")


class DesktopNotifier:
    """A desktop notification through notify-send, where a desktop is running."""

    name = "desktop"

    def __init__(self, settings: DesktopSettings, workspace: Any):
        self.settings = settings

    def notify(self, alert: Any) -> None:
        """Show the alert; report clearly when there is no notify-send or no display."""
        program = shutil.which("notify-send")
        if program is None:
            raise PluginError("desktop notifier: notify-send is not installed (install libnotify-bin) "
                              "or use the log, shell or webhook notifier")
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DBUS_SESSION_BUS_ADDRESS")):
            raise PluginError("desktop notifier: no desktop here (DISPLAY and DBUS unset); use another notifier")
        urgency = "critical" if alert.get("severity") == "critical" and self.settings.urgency_critical else "normal"
        proc = subprocess.run([program, "-u", urgency, f"forgeml alert: {alert.get('rule')}",
                               str(alert.get("message", ""))], capture_output=True, text=True, timeout=10)
        if proc.returncode != 0:
            raise PluginError(f"desktop notifier: notify-send failed: {proc.stderr.strip()[-200:]}")


@hookimpl
def forgeml_register_notifiers(register):
    """Offer the built-in notifiers."""
    register("log", LogNotifier, settings=LogSettings, description="JSON lines in the workspace plus the logger")
    register("shell", ShellNotifier, settings=ShellSettings, description="run a command with the alert on stdin")
    register("webhook", WebhookNotifier, settings=WebhookSettings, description="POST the alert as JSON")
    register("desktop", DesktopNotifier, settings=DesktopSettings, description="notify-send desktop notification")

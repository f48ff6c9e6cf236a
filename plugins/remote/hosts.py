"""Where remote commands run: this machine (LocalHost) or an SSH server (SshHost), behind one interface."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from forgeml.errors import ConfigError, RemoteError


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it exited."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """Return whether the command exited 0."""
        return self.exit_code == 0


class Host(Protocol):
    """A machine that runs shell commands and holds files for remote jobs."""

    label: str

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> CommandResult:
        """Run a shell command line and return its result."""

    def write_bytes(self, path: str, data: bytes, private: bool = False) -> None:
        """Write a file atomically (parents are created); ``private`` makes it readable by its owner only."""

    def put_file(self, local: Path, path: str) -> None:
        """Copy a local file to path (parents are created)."""

    def read_bytes(self, path: str, offset: int = 0, limit: int | None = None) -> bytes:
        """Read a file from a byte offset; a missing file reads as empty."""

    def get_file(self, path: str, local: Path) -> None:
        """Copy a file to a local path."""

    def exists(self, path: str) -> bool:
        """Return whether a path exists."""

    def listdir(self, path: str) -> list[str]:
        """Return the names in a folder (empty when it does not exist)."""

    def makedirs(self, path: str) -> None:
        """Create a folder and its parents."""

    def home(self) -> str:
        """Return the login user's home folder."""

    def close(self) -> None:
        """Release connections."""


def expand_home(path: str, host: Host) -> str:
    """Expand a leading ``~`` against the host's home folder."""
    if path == "~" or path.startswith("~/"):
        return host.home() + path[1:]
    return path


# ------------------------------------------------------------------ this machine
class LocalHost:
    """Commands through subprocess and files through the local filesystem (for a local `sbatch`)."""

    label = "localhost"

    def __init__(self, env: dict[str, str] | None = None):
        self.env = dict(env or {})

    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> CommandResult:
        """Run a shell command line with this process's environment plus the configured one."""
        try:
            proc = subprocess.run(["/bin/sh", "-c", command], input=stdin, capture_output=True,
                                  timeout=timeout, env={**os.environ, **self.env})
        except subprocess.TimeoutExpired as e:
            raise RemoteError(f"command timed out after {timeout:.0f}s on this machine: {command[:120]}") from e
        return CommandResult(proc.returncode, proc.stdout.decode(errors="replace"),
                             proc.stderr.decode(errors="replace"))

    def write_bytes(self, path: str, data: bytes, private: bool = False) -> None:
        """Write a file atomically; ``private`` makes it readable by its owner only."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, p)

    def put_file(self, local: Path, path: str) -> None:
        """Copy a file."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, path)

    def read_bytes(self, path: str, offset: int = 0, limit: int | None = None) -> bytes:
        """Read from offset; missing reads as empty."""
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read() if limit is None else f.read(limit)
        except FileNotFoundError:
            return b""

    def get_file(self, path: str, local: Path) -> None:
        """Copy a file."""
        shutil.copyfile(path, local)

    def exists(self, path: str) -> bool:
        """Return whether a path exists."""
        return os.path.exists(path)

    def listdir(self, path: str) -> list[str]:
        """List a folder."""
        try:
            return os.listdir(path)
        except FileNotFoundError:
            return []

    def makedirs(self, path: str) -> None:
        """Create folders."""
        os.makedirs(path, exist_ok=True)

    def home(self) -> str:
        """Return this user's home."""
        return str(Path.home())

    def close(self) -> None:
        """Nothing to release."""


# ------------------------------------------------------------------ an SSH server
@dataclass(frozen=True)
class SshEndpoint:
    """How to reach and authenticate to one SSH server; key files are paths, never copied."""

    host: str
    port: int = 22
    user: str = ""
    key_files: tuple[str, ...] = ()
    use_agent: bool = True
    known_hosts: str = "~/.ssh/known_hosts"
    strict_host_keys: bool = True
    connect_timeout_s: float = 10.0
    env: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def parse(cls, spec: str, **defaults: Any) -> SshEndpoint:
        """Build an endpoint from ``[user@]host[:port]`` plus shared defaults."""
        user, _, hostport = spec.rpartition("@")
        host, _, port = hostport.partition(":")
        if not host:
            raise ConfigError(f"SSH host {spec!r} is empty; write it as [user@]host[:port]")
        if port and not port.isdigit():
            raise ConfigError(f"SSH host {spec!r} has a port that is not a number; write it as [user@]host[:port]")
        values = dict(defaults)
        if user:
            values["user"] = user
        if port:
            values["port"] = int(port)
        return cls(host=host, **values)

    @property
    def login(self) -> str:
        """Return the user name used to log in."""
        return self.user or os.environ.get("USER") or _local_user()

    @property
    def label(self) -> str:
        """Return ``user@host:port``."""
        return f"{self.login}@{self.host}:{self.port}"


def _local_user() -> str:
    import getpass

    return getpass.getuser()


class SshHost:
    """One paramiko connection to a server, reopened on demand after a drop; SFTP for files."""

    def __init__(self, endpoint: SshEndpoint):
        self.endpoint = endpoint
        self.label = endpoint.label
        self._client: Any = None
        self._sftp: Any = None
        self._home: str | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------ connection
    def _connect(self) -> Any:
        import paramiko

        ep = self.endpoint
        client = paramiko.SSHClient()
        known = Path(ep.known_hosts).expanduser()
        if known.exists():
            client.load_host_keys(str(known))
        elif ep.strict_host_keys:
            raise ConfigError(
                f"known_hosts file {known} does not exist; add the host key of {ep.host} there "
                f"(ssh-keyscan -p {ep.port} {ep.host} >> {known}) or set strict_host_keys = false"
            )
        client.set_missing_host_key_policy(paramiko.RejectPolicy() if ep.strict_host_keys else paramiko.AutoAddPolicy())
        keys = [str(Path(k).expanduser()) for k in ep.key_files]
        for k in keys:
            if not Path(k).exists():
                raise ConfigError(f"SSH key file {k} does not exist; fix key_files for {ep.host}")
        try:
            client.connect(ep.host, port=ep.port, username=ep.login, key_filename=keys or None,
                           allow_agent=ep.use_agent, look_for_keys=not keys and not ep.use_agent,
                           timeout=ep.connect_timeout_s, banner_timeout=ep.connect_timeout_s,
                           auth_timeout=ep.connect_timeout_s)
        except paramiko.BadHostKeyException as e:
            raise RemoteError(f"host key of {self.label} does not match {known}: refusing to connect ({e})") from e
        except paramiko.SSHException as e:
            if "not found in known_hosts" in str(e):
                raise RemoteError(f"{self.label} is not in {known}; add its host key (ssh-keyscan) first") from e
            raise RemoteError(f"cannot log in to {self.label}: {e}; check user, key_files or the ssh-agent") from e
        except (TimeoutError, OSError) as e:
            raise RemoteError(f"cannot reach {self.label}: {e}") from e
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        return client

    def client(self) -> Any:
        """Return a live SSHClient, reconnecting when the transport dropped."""
        with self._lock:
            transport = self._client.get_transport() if self._client is not None else None
            if transport is None or not transport.is_active():
                self._drop_quietly()
                self._client = self._connect()
            return self._client

    def sftp(self) -> Any:
        """Return a live SFTP session on the current connection."""
        with self._lock:
            client = self.client()
            channel = self._sftp.get_channel() if self._sftp is not None else None
            if channel is None or channel.closed or channel.get_transport() is not client.get_transport():
                self._sftp = client.open_sftp()
            return self._sftp

    def disconnect(self) -> None:
        """Close the transport (a later call reconnects); used to recover from, or simulate, a drop."""
        with self._lock:
            self._drop_quietly()

    def _drop_quietly(self) -> None:
        for thing in (self._sftp, self._client):
            if thing is not None:
                try:
                    thing.close()
                except (OSError, EOFError):
                    pass  # already gone: that is what we wanted
        self._sftp = None
        self._client = None

    def close(self) -> None:
        """Close the connection."""
        self.disconnect()

    # ------------------------------------------------------------ commands
    def run(self, command: str, timeout: float = 60.0, stdin: bytes | None = None) -> CommandResult:
        """Run a command line under the login user's shell; reconnect once if the channel cannot open.

        A command is never sent twice: once it went out, a dropped connection is an error, so that
        a non-idempotent command (sbatch) cannot run twice.
        """
        import paramiko

        env_prefix = "".join(f"export {k}={shlex.quote(v)}; " for k, v in self.endpoint.env.items())
        channel = None
        for attempt in (1, 2):
            try:
                channel = self.client().get_transport().open_session(timeout=self.endpoint.connect_timeout_s)
                break
            except (paramiko.SSHException, EOFError, OSError, AttributeError) as e:
                self.disconnect()
                if attempt == 2:
                    raise RemoteError(f"lost the connection to {self.label}: {e}") from e
        assert channel is not None
        try:
            channel.settimeout(timeout)
            channel.exec_command(env_prefix + command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = channel.makefile("rb").read(), channel.makefile_stderr("rb").read()
            code = channel.recv_exit_status()
        except TimeoutError as e:
            raise RemoteError(f"command timed out after {timeout:.0f}s on {self.label}: {command[:120]}") from e
        except (paramiko.SSHException, EOFError, OSError) as e:
            self.disconnect()
            raise RemoteError(f"lost the connection to {self.label} while running a command: {e}") from e
        finally:
            channel.close()
        return CommandResult(code, out.decode(errors="replace"), err.decode(errors="replace"))

    # ------------------------------------------------------------ files
    def _sftp_call(self, what: str, fn: Any) -> Any:
        import paramiko

        for attempt in (1, 2):
            try:
                return fn(self.sftp())
            except FileNotFoundError:
                raise
            except (paramiko.SSHException, EOFError, OSError) as e:
                if isinstance(e, PermissionError):
                    raise RemoteError(f"{self.label}: permission denied: {what}") from e
                self.disconnect()
                if attempt == 2:
                    raise RemoteError(f"SFTP to {self.label} failed ({what}): {e}") from e
        raise AssertionError("unreachable")

    def makedirs(self, path: str) -> None:
        """Create a folder and its parents over SFTP."""
        def mk(sftp: Any) -> None:
            parts = path.rstrip("/").split("/")
            for i in range(2, len(parts) + 1):
                sub = "/".join(parts[:i])
                try:
                    sftp.stat(sub)
                except FileNotFoundError:
                    sftp.mkdir(sub)
        self._sftp_call(f"mkdir {path}", mk)

    def write_bytes(self, path: str, data: bytes, private: bool = False) -> None:
        """Write through a temporary name and rename, so readers never see half a file; ``private``: owner only."""
        parent = path.rsplit("/", 1)[0]
        self.makedirs(parent)
        tmp = f"{path}.tmp{os.getpid()}"

        def write(sftp: Any) -> None:
            with sftp.open(tmp, "wb") as f:
                if private:  # before any byte is written
                    f.chmod(0o600)
                f.set_pipelined(True)
                f.write(data)
            sftp.posix_rename(tmp, path)
        self._sftp_call(f"write {path}", write)

    def put_file(self, local: Path, path: str) -> None:
        """Upload a file."""
        self.makedirs(path.rsplit("/", 1)[0])
        tmp = f"{path}.tmp{os.getpid()}"

        def put(sftp: Any) -> None:
            sftp.put(str(local), tmp)
            sftp.posix_rename(tmp, path)
        self._sftp_call(f"put {path}", put)

    def read_bytes(self, path: str, offset: int = 0, limit: int | None = None) -> bytes:
        """Read from offset; a missing file reads as empty."""
        def read(sftp: Any) -> bytes:
            with sftp.open(path, "rb") as f:
                f.seek(offset)
                if limit is None:
                    f.prefetch()
                    return f.read()
                return f.read(limit)
        try:
            return self._sftp_call(f"read {path}", read)
        except FileNotFoundError:
            return b""

    def get_file(self, path: str, local: Path) -> None:
        """Download a file."""
        self._sftp_call(f"get {path}", lambda sftp: sftp.get(path, str(local)))

    def exists(self, path: str) -> bool:
        """Return whether a path exists."""
        try:
            self._sftp_call(f"stat {path}", lambda sftp: sftp.stat(path))
            return True
        except FileNotFoundError:
            return False

    def listdir(self, path: str) -> list[str]:
        """List a folder; missing lists as empty."""
        try:
            return self._sftp_call(f"listdir {path}", lambda sftp: sftp.listdir(path))
        except FileNotFoundError:
            return []

    def home(self) -> str:
        """Return the remote home folder (asked once)."""
        if self._home is None:
            result = self.run('printf %s "$HOME"', timeout=30)
            if not result.ok or not result.stdout.startswith("/"):
                raise RemoteError(f"cannot read $HOME on {self.label}: {result.stderr.strip()}")
            self._home = result.stdout
        return self._home


def endpoint_defaults(settings: Any) -> dict[str, Any]:
    """Return the SshEndpoint keyword arguments shared by every host of a target."""
    return {"port": settings.port, "user": settings.user, "key_files": tuple(settings.key_files),
            "use_agent": settings.use_agent, "known_hosts": settings.known_hosts,
            "strict_host_keys": settings.strict_host_keys, "connect_timeout_s": settings.connect_timeout_s,
            "env": dict(settings.env)}

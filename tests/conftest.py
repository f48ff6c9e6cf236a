"""Session fixtures for real services on loopback: Redis, OpenSSH, a one-node Slurm cluster, PostgreSQL, Label Studio.

Each fixture uses the service when it already answers, starts it with ``tests/services/<svc>.sh``
when its programs are installed, and otherwise skips the test with the reason. With ``CI=true``
a missing service fails the test instead: CI must never skip silently.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# pytester runs the conformance suites the way a plugin author's test run would (tests/kernel)
pytest_plugins = ["pytester", "clean_tree", "engine_services"]

SERVICES_DIR = Path(__file__).parent / "services"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _state_dir(service: str) -> Path:
    """The state folder the service script uses (keep in step with tests/services/*.sh)."""
    override = os.environ.get(f"FORGEML_{service.upper()}_DIR")
    if override:
        return Path(override)
    return Path(os.environ.get("TMPDIR") or "/tmp") / f"forgeml-{service}"


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: services must run in CI; see .ci/run)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def _start_lock(service: str) -> Iterator[None]:
    """Serialize starts across pytest-xdist workers and concurrent test runs."""
    lock_path = Path(os.environ.get("TMPDIR") or "/tmp") / f"forgeml-{service}.lock"
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_script(service: str) -> tuple[bool, str]:
    """Start a service with its script (never installing packages from a test run)."""
    env = {**os.environ, "FORGEML_SERVICES_INSTALL": "0"}
    proc = subprocess.run(
        ["bash", str(SERVICES_DIR / f"{service}.sh"), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode == 0, (proc.stderr or proc.stdout).strip()[-600:]


class _ItemAccess:
    """Lets fixture values be read as attributes or as dict items."""

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


# ---------------------------------------------------------------- redis


def _redis_port() -> int:
    return int(os.environ.get("FORGEML_REDIS_PORT", "6390"))


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real redis-server on 127.0.0.1 (database 0; tests should use their own key prefix)."""
    port = _redis_port()
    if not _redis_answers(port):
        if not shutil.which("redis-server"):
            _unavailable("redis-server is not installed (apt-get install redis-server)")
        with _start_lock("redis"):
            if not _redis_answers(port):
                ok, log = _run_script("redis")
                if not ok or not _redis_answers(port):
                    _unavailable(f"could not start redis on 127.0.0.1:{port}: {log}")
    return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Any]:
    """A redis-server of this test's own (folder, port) that it may kill, freeze and restart; stopped after."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("redis_process", SERVICES_DIR / "redis_process.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not module.RedisProcess.available():
        _unavailable("redis-server is not installed (apt-get install redis-server)")
    server = module.RedisProcess(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError, ValueError, IndexError):
            server.thaw()  # a frozen server would not stop on SIGTERM
        server.stop()


# ---------------------------------------------------------------- postgresql

# The layers whose tests touch the metadata store run once per backend (see forgeml.testing's
# metadata_backend fixture); other tests keep the default SQLite store.
METADATA_AREAS = {"tracking", "jobs", "registry", "features", "datasets", "monitoring", "pipelines", "tuning",
                  "labeling", "experiments", "privacy"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every metadata-touching test that uses the workspace fixture on SQLite and on PostgreSQL."""
    area = Path(str(metafunc.definition.fspath)).relative_to(Path(__file__).parent).parts[0]
    if "metadata_backend" in metafunc.fixturenames and area in METADATA_AREAS:
        metafunc.parametrize("metadata_backend", ["sqlite", "postgres"], indirect=True)


def _postgres_env() -> dict[str, str]:
    env_file = _state_dir("postgres") / "env"
    if not env_file.exists():
        return {}
    line = env_file.read_text().strip().removeprefix("export ")
    key, _, value = line.partition("=")
    return {key: value}


def _postgres_answers(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a real PostgreSQL server on 127.0.0.1 (a superuser role; tests work in schemas of their own)."""
    url = os.environ.get("FORGEML_PG_URL") or _postgres_env().get("FORGEML_PG_URL", "")
    if not url or not _postgres_answers(url):
        if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
            _unavailable("PostgreSQL is not installed (apt-get install postgresql)")
        with _start_lock("postgres"):
            url = _postgres_env().get("FORGEML_PG_URL", "")
            if not url or not _postgres_answers(url):
                ok, log = _run_script("postgres")
                url = _postgres_env().get("FORGEML_PG_URL", "")
                if not ok or not url or not _postgres_answers(url):
                    _unavailable(f"could not start postgres: {log}")
    os.environ["FORGEML_PG_URL"] = url
    return url


# ---------------------------------------------------------------- sshd


@dataclass(frozen=True)
class SshServer(_ItemAccess):
    """A key-only OpenSSH server on loopback and the client files to log in to it."""

    host: str
    port: int
    user: str
    key_filename: str
    known_hosts: str
    ssh_config: str

    def connect(self) -> Any:
        """An open paramiko SSHClient that checks the host key against known_hosts."""
        import paramiko

        client = paramiko.SSHClient()
        client.load_host_keys(self.known_hosts)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            self.host,
            port=self.port,
            username=self.user,
            key_filename=self.key_filename,
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        return client


def _sshd_server() -> SshServer | None:
    state = _state_dir("sshd")
    user_file = state / "user"
    if not (state / "id_ed25519").exists() or not user_file.exists():
        return None
    return SshServer(
        host="127.0.0.1",
        port=int(os.environ.get("FORGEML_SSHD_PORT", "2222")),
        user=user_file.read_text().strip(),
        key_filename=str(state / "id_ed25519"),
        known_hosts=str(state / "known_hosts"),
        ssh_config=str(state / "ssh_config"),
    )


def _sshd_answers(server: SshServer | None) -> bool:
    if server is None:
        return False
    try:
        client = server.connect()
    except Exception:  # noqa: BLE001 - any failure to log in means "not usable", tried again below
        return False
    client.close()
    return True


@pytest.fixture(scope="session")
def sshd_server() -> SshServer:
    """A real OpenSSH server on 127.0.0.1 with key-only login (host, port, user, key_filename, known_hosts)."""
    server = _sshd_server()
    if not _sshd_answers(server):
        if not os.path.exists("/usr/sbin/sshd") or not shutil.which("ssh-keygen"):
            _unavailable("OpenSSH server is not installed (apt-get install openssh-server)")
        with _start_lock("sshd"):
            server = _sshd_server()
            if not _sshd_answers(server):
                ok, log = _run_script("sshd")
                server = _sshd_server()
                if not ok or not _sshd_answers(server):
                    _unavailable(f"could not start sshd: {log}")
    assert server is not None
    return server


# ---------------------------------------------------------------- slurm


@dataclass(frozen=True)
class SlurmCluster(_ItemAccess):
    """A one-node Slurm cluster on loopback with fake GPUs; pass ``env`` to sbatch/squeue/scontrol."""

    env: dict[str, str]
    gpus: int
    partition: str = "debug"
    node: str = "localhost"
    state_dir: str = ""

    def command_env(self) -> dict[str, str]:
        """os.environ merged with the cluster's variables, for subprocess calls."""
        return {**os.environ, **self.env}


def _slurm_cluster() -> SlurmCluster:
    state = _state_dir("slurm")
    gpus_file = state / "gpus"
    gpus = int(gpus_file.read_text().strip()) if gpus_file.exists() else 2
    return SlurmCluster(
        env={"SLURM_CONF": str(state / "slurm.conf")}, gpus=gpus, state_dir=str(state)
    )


def _slurm_answers(cluster: SlurmCluster) -> bool:
    if not Path(cluster.env["SLURM_CONF"]).exists() or not shutil.which("sinfo"):
        return False
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"],
            env=cluster.command_env(),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    states = proc.stdout.split()
    return proc.returncode == 0 and any(s.startswith(("idle", "mixed", "alloc")) for s in states)


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmCluster:
    """A real one-node Slurm cluster (munged, slurmctld, slurmd) with 2 fake GPUs as gres."""
    cluster = _slurm_cluster()
    if not _slurm_answers(cluster):
        if not all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
            _unavailable("Slurm is not installed (apt-get install slurmctld slurmd slurm-client munge)")
        if os.geteuid() != 0:
            _unavailable("starting the test Slurm cluster needs root (munged and slurmd run as root)")
        with _start_lock("slurm"):
            cluster = _slurm_cluster()
            if not _slurm_answers(cluster):
                ok, log = _run_script("slurm")
                cluster = _slurm_cluster()
                if not ok or not _slurm_answers(cluster):
                    _unavailable(f"could not start Slurm: {log}")
    return cluster


# ---------------------------------------------------------------- label studio
@dataclass(frozen=True)
class LabelStudioServer(_ItemAccess):
    """A real Label Studio server on loopback and an API token of its admin user."""

    url: str
    token: str


def _label_studio_server() -> LabelStudioServer | None:
    env_file = _state_dir("label-studio") / "env"
    if not env_file.exists():
        return None
    values = dict(part.split("=", 1) for part in env_file.read_text().removeprefix("export ").split())
    return LabelStudioServer(values["FORGEML_LABEL_STUDIO_URL"], values["FORGEML_LABEL_STUDIO_TOKEN"])


def _label_studio_answers(server: LabelStudioServer | None) -> bool:
    if server is None:
        return False
    import httpx

    try:
        return httpx.get(f"{server.url}/api/current-user/whoami", timeout=5,
                         headers={"Authorization": f"Token {server.token}"}).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def label_studio() -> LabelStudioServer:
    """A real Label Studio server on 127.0.0.1 (tests/services/label-studio.sh) with its admin's API token."""
    server = _label_studio_server()
    if not _label_studio_answers(server):
        try:
            import label_studio_sdk  # noqa: F401 - the client the backend uses
        except ImportError:
            _unavailable("label-studio-sdk is not installed (pip install -e '.[labeling]')")
        venv = Path(os.environ.get("FORGEML_LABEL_STUDIO_VENV")
                    or Path(os.environ.get("TMPDIR") or "/tmp") / "forgeml-label-studio-venv")
        if not (venv / "bin" / "label-studio").exists():
            _unavailable(f"Label Studio is not installed in {venv} (tests/services/label-studio.sh start installs it)")
        with _start_lock("label-studio"):
            server = _label_studio_server()
            if not _label_studio_answers(server):
                ok, log = _run_script("label-studio")
                server = _label_studio_server()
                if not ok or not _label_studio_answers(server):
                    _unavailable(f"could not start Label Studio: {log}")
    assert server is not None
    return server

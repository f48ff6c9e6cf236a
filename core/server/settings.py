"""The [server] section of plugins.toml: where `forgeml server` listens and how it protects itself."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class ServerSettings:
    """The platform API started by `forgeml server`."""

    host: str = setting("127.0.0.1", "Address to listen on; loopback unless you mean to expose it (then use TLS).")
    port: int = setting(8765, "TCP port.")
    rate_per_s: float = setting(200.0, "Requests per second each token may make on average (0: no limit).")
    burst: float = setting(400.0, "Requests a token may make at once before the rate applies.")
    max_body_bytes: int = setting(64 * 1_048_576, "Largest request body accepted (uploads included).")
    max_rows: int = setting(10_000, "Most rows in one online read or push, for views without their own limit "
                                    "(413 above; 0: no limit).", low=0)
    view_max_rows: dict[str, int] | None = setting(
        None, "Row limit per feature view, e.g. { clicks = 100000 } (0: no limit for that view).")
    tls_cert: str = setting("", "PEM certificate file; with tls_key, the server speaks HTTPS.")
    tls_key: str = setting("", "PEM private key file of tls_cert.")
    cors_origins: list[str] = setting([], "Origins browsers may call from; empty: CORS stays off.")

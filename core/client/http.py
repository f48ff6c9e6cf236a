"""The HTTP client of `forgeml server`: one connection pool, errors turned back into ForgeErrors."""

from __future__ import annotations

import time
from typing import Any

from forgeml import errors
from forgeml.errors import ForgeError, RemoteError

_BY_STATUS = {401: errors.AuthenticationError, 403: errors.PermissionDeniedError, 404: errors.NotFoundError,
              409: ForgeError, 422: errors.ValidationError, 429: errors.RateLimitedError}
MAX_RATE_RETRIES = 5


class ServerUnavailableError(RemoteError):
    """The server at FORGEML_URL could not be reached or answered with a server error."""


def _error(status: int, body: Any) -> ForgeError:
    message = body.get("error", str(body)) if isinstance(body, dict) else str(body)
    named = getattr(errors, body.get("type", ""), None) if isinstance(body, dict) else None
    cls = named if isinstance(named, type) and issubclass(named, ForgeError) else _BY_STATUS.get(status, ForgeError)
    if cls is errors.RateLimitedError:
        return errors.RateLimitedError(message, 1.0)
    if cls is errors.DataValidationError:
        return errors.DataValidationError(message)
    return cls(message)


class Client:
    """Calls the platform API at url with a bearer token; ca names a CA bundle for HTTPS."""

    def __init__(self, url: str, token: str = "", ca: str = ""):
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=120.0,
                                 verify=ca or True)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; return its JSON (or bytes for binary answers); raise the server's ForgeError."""
        import httpx

        for _ in range(MAX_RATE_RETRIES + 1):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as e:
                raise ServerUnavailableError(f"forgeml server at {self.url} is unreachable: {e}") from None
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("retry-after", "1")))  # the server said when to come back
        if response.status_code >= 500:
            raise ServerUnavailableError(f"forgeml server at {self.url} failed: {response.text[:300]}")
        if response.headers.get("content-type", "").startswith("application/json"):
            body = response.json()
        else:
            body = response.content
        if response.status_code >= 400:
            raise _error(response.status_code, body)
        return body

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

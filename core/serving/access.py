"""Who may ask the serving process: `forgeml auth` tokens, their roles and scopes, and per-token rate limits.

Enabled by ``[serving] principals = true``; the decision is the service layer's (forgeml.auth), so the
serving process obeys the same rules as `forgeml server` and records every access the same way.
"""

from __future__ import annotations

import math
from typing import Any

from forgeml.auth.ratelimit import RateLimiter
from forgeml.auth.service import acting_as, authenticate, require
from forgeml.errors import AuthenticationError, PermissionDeniedError


class PrincipalGate:
    """Authenticates bearer tokens, applies their rate limit and asks forgeml.auth for the operation."""

    def __init__(self, workspace: Any, rate_per_s: float, burst: float):
        self.workspace = workspace
        self.limiter = RateLimiter(rate_per_s, burst)

    def check(self, header: str, action: str, model: str | None = None, address: str = "",
              limit: bool = True) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """Return None when the caller may proceed, else (status, message, extra headers).

        limit=False skips the rate limit (cheap reads such as listing what is served).
        """
        try:
            principal = authenticate(self.workspace, header, address)
        except AuthenticationError as e:
            return 401, str(e), [(b"www-authenticate", b'Bearer realm="forgeml"')]
        wait = self.limiter.take(principal.token_id or principal.name) if limit else 0.0
        if wait:
            return 429, f"rate limit exceeded for token {principal.token_id}; retry in {wait:.2f}s", [
                (b"retry-after", str(max(1, math.ceil(wait))).encode())]
        try:
            with acting_as(principal):
                require(action, model=model, workspace=self.workspace,
                        subject=f"models/{model}/predict" if model else "models")
        except PermissionDeniedError as e:
            return 403, str(e), []
        return None

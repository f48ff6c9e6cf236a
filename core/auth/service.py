"""Who is acting, and the one decision every door makes: authenticate, authorize, record.

The HTTP server and the serving process authenticate a bearer token into a :class:`Principal` and
run the request inside :func:`acting_as`; library calls, the CLI and the TUI act as the local
principal (the OS user). Service functions call :func:`require`, which decides with the roles and
scopes of whoever is acting and appends the decision to the audit log.
"""

from __future__ import annotations

import contextlib
import getpass
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import orjson

from forgeml.auth import store as db_
from forgeml.auth.policy import Principal, decide
from forgeml.auth.tokens import secret_matches, split_token
from forgeml.buffering import BufferedWriter
from forgeml.errors import AuthenticationError, PermissionDeniedError

REFRESH_S = 1.0  # how stale another process's grant or revocation may be seen here
_acting: ContextVar[Principal | None] = ContextVar("forgeml_principal", default=None)


def resolve_workspace(workspace: Any) -> Any:
    """Return the given workspace or this process's current one."""
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def local_name() -> str:
    """Return the OS user's login name: the local principal."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class _AuthCache:
    """Roles and token hashes of one workspace, reloaded when the auth generation moves."""

    def __init__(self, workspace: Any):
        self.db = db_.auth_db(workspace)
        self.lock = threading.Lock()
        self.generation = -1
        self.checked_at = float("-inf")
        self.forced_at = float("-inf")
        self.roles: dict[str, frozenset[str]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.principals: dict[str, Principal] = {}
        # (token id, client address) -> (the token's principal it was made from, that principal with the address)
        self.addressed: dict[tuple[str, str], tuple[Principal, Principal]] = {}
        self.log = _AccessLog(self.db)
        before_close = getattr(workspace, "before_close", None)
        if before_close is not None:
            before_close(self.log.writer.flush)

    def fresh(self, force: bool = False) -> _AuthCache:
        """Reload when another process changed grants or tokens (checked at most every REFRESH_S)."""
        now = time.monotonic()
        if force:  # an unknown token id may be brand new; bound how often strangers make us re-read
            if now - self.forced_at < 0.2:
                return self
            self.forced_at = now
        elif now - self.checked_at < REFRESH_S:
            return self
        with self.lock:
            self.checked_at = now
            gen = db_.generation(self.db)
            if gen != self.generation:
                self.roles = db_.role_map(self.db)
                rows = db_.token_rows(self.db)
                self.tokens = {r["id"]: r for r in rows}
                self.principals = {r["id"]: self._token_principal(r) for r in rows}
                self.addressed = {}
                self.generation = gen
        return self

    def roles_of(self, name: str) -> frozenset[str]:
        if not self.roles and name == local_name():
            return frozenset({"admin"})  # a personal workspace: nobody was granted anything yet
        return self.roles.get(name, frozenset())

    def _token_principal(self, row: dict[str, Any]) -> Principal:
        ops = frozenset(row["operations"]) if row["operations"] is not None else None
        models = tuple(row["models"]) if row["models"] is not None else None
        return Principal(name=row["principal"], kind="token", roles=self.roles_of(row["principal"]),
                         token_id=row["id"], operations=ops, models=models)


class _AccessLog:
    """Access records buffered in memory and written in batches by a background thread."""

    def __init__(self, db: Any):
        # the detail is encoded by the writer thread, in its batch, not on the request's path
        def write(records: Sequence[tuple[Any, ...]]) -> None:
            db_.write_access(db, [(*r[:4], orjson.dumps(r[4]).decode()) for r in records])

        self.writer = BufferedWriter(write, 0.5, what="access record", label=lambda record: f"{record[2]} {record[3]}")

    def record(self, principal: Principal, action: str, subject: str, reason: str | None) -> None:
        detail = {"allowed": reason is None, "kind": principal.kind}
        if principal.token_id:
            detail["token"] = principal.token_id
        if principal.address:
            detail["from"] = principal.address
        if reason:
            detail["reason"] = reason
        self.writer.append((time.time(), principal.name, f"access.{action}", subject, detail))


_CACHES: weakref.WeakKeyDictionary[Any, _AuthCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_for(workspace: Any) -> _AuthCache:
    """Return the workspace's auth cache, opened once per process."""
    cache = _CACHES.get(workspace)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.get(workspace)
            if cache is None:
                cache = _CACHES[workspace] = _AuthCache(workspace)
    return cache


def invalidate(workspace: Any) -> None:
    """Make the next check re-read grants and tokens (after this process changed them)."""
    cache = cache_for(workspace)
    cache.checked_at = float("-inf")


def roles_of(workspace: Any, name: str) -> frozenset[str]:
    """Return the roles a principal holds in the workspace."""
    return cache_for(workspace).fresh().roles_of(name)


def local_principal(workspace: Any = None) -> Principal:
    """Return the OS user as a principal with the roles granted to that login."""
    name = local_name()
    return Principal(name=name, kind="local", roles=roles_of(resolve_workspace(workspace), name))


def current_principal(workspace: Any = None) -> Principal:
    """Return who is acting: the principal set by acting_as, else the local principal."""
    return _acting.get() or local_principal(workspace)


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Run the block with principal acting (a server request, a TUI action on someone's behalf)."""
    reset = _acting.set(principal)
    try:
        yield principal
    finally:
        _acting.reset(reset)


def authenticate(workspace: Any, authorization: str, address: str = "") -> Principal:
    """Turn an Authorization header ("Bearer fml_...") into the principal its token stands for."""
    scheme, _, given = authorization.partition(" ")
    if not given or scheme.lower() != "bearer":
        raise AuthenticationError("a bearer token is required: send 'Authorization: Bearer fml_...' "
                                  "(create one with `forgeml auth token create`)")
    parts = split_token(given.strip())
    if parts is None:
        raise AuthenticationError("malformed token: forgeml tokens look like fml_<12 hex>_<secret>")
    token_id, secret = parts
    cache = cache_for(workspace).fresh()
    row = cache.tokens.get(token_id)
    if row is None:
        row = cache.fresh(force=True).tokens.get(token_id)
    if row is None or not secret_matches(row, secret):
        raise AuthenticationError(f"unknown or wrong token {token_id}")
    if row["revoked_at"] is not None:
        raise AuthenticationError(f"token {token_id} was revoked")
    if row["expires_at"] is not None and row["expires_at"] <= time.time():
        raise AuthenticationError(f"token {token_id} expired; create a new one with `forgeml auth token create`")
    principal = cache.principals[token_id]
    if address:
        found = cache.addressed.get((token_id, address))
        if found is None or found[0] is not principal:  # made from a principal a reload has since replaced
            found = (principal, Principal(principal.name, principal.kind, principal.roles, principal.token_id,
                                          principal.operations, principal.models, address))
            if len(cache.addressed) >= 4096:  # clients are many behind a NAT; keep the map bounded
                cache.addressed.clear()
            cache.addressed[(token_id, address)] = found
        principal = found[1]
    return principal


def require(action: str, *, model: str | None = None, workspace: Any = None, subject: str = "",
            unless_self: str | None = None) -> Principal:
    """Allow the acting principal to perform action (on model) or raise PermissionDeniedError; record it.

    unless_self names the principal an operation concerns (its own tokens): an unscoped principal
    may manage what is its own without the operation's role.
    """
    ws = resolve_workspace(workspace)
    cache = cache_for(ws)
    principal = _acting.get() or Principal(name=local_name(), kind="local", roles=cache.fresh().roles_of(local_name()))
    if unless_self is not None and unless_self == principal.name and principal.operations is None:
        reason = None
    else:
        reason = decide(principal, action, model)
    cache.log.record(principal, action, subject or (f"models/{model}" if model else ""), reason)
    if reason is not None:
        raise PermissionDeniedError(reason)
    return principal


def flush_access_log(workspace: Any = None) -> int:
    """Write buffered access records now; return how many were written."""
    return cache_for(resolve_workspace(workspace)).log.writer.flush()


def acting_principal() -> Principal | None:
    """Return the principal set by acting_as, or None when the local principal acts."""
    return _acting.get()

"""The request path shared by every route: authenticate, rate-limit, parse, call the service, map errors."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from forgeml.auth.ratelimit import RateLimiter
from forgeml.auth.service import acting_as, authenticate
from forgeml.errors import (
    AuthenticationError,
    ForgeError,
    GateFailedError,
    JobError,
    NotFoundError,
    PermissionDeniedError,
    PromotionConflictError,
    RateLimitedError,
    TooLargeError,
    ValidationError,
)

log = logging.getLogger("forgeml.server")
JSON = "application/json"
PREFIX = "/api/v1"


@dataclass
class ServerOptions:
    """Server-wide protection: rate limits, body size and CORS origins."""

    rate_per_s: float = 200.0
    burst: float = 400.0
    max_body_bytes: int = 64 * 1_048_576
    cors_origins: list[str] = field(default_factory=list)
    max_rows: int = 10_000
    view_max_rows: dict[str, int] = field(default_factory=dict)

    def check_rows(self, given: int, view: str) -> None:
        """Refuse more rows than the view's limit (its own, else max_rows; 0: none) with a TooLargeError."""
        limit = self.view_max_rows.get(view, self.max_rows)
        if limit and given > limit:
            where = f"[server.view_max_rows] {view}" if view in self.view_max_rows else "[server] max_rows"
            raise TooLargeError(f"request of {given} rows for {view!r} exceeds the limit of {limit} rows; "
                                f"split it or raise {where}")


@dataclass
class Param:
    """A path or query parameter of an operation, with its JSON schema."""

    name: str
    where: str  # "path" or "query"
    schema: dict[str, Any]
    required: bool = False
    doc: str = ""


@dataclass
class Operation:
    """One route: its method and path, the service call behind it and what the OpenAPI document says."""

    method: str
    path: str
    call: Callable[[Call], Any]
    summary: str
    tag: str
    params: list[Param] = field(default_factory=list)
    body: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    raw_body: bool = False  # the body is bytes (an artifact upload), not JSON
    status: int = 200
    # answers from memory on the event loop when it can (None: go to a thread), skipping the
    # thread hand-off that dominates a cheap read's latency under concurrency
    fast: Callable[[Call], Any] | None = None


@dataclass
class Call:
    """What a service call gets: the workspace, who is acting, parameters and the parsed body."""

    workspace: Any
    principal: Any
    path: dict[str, str]
    query: dict[str, Any]
    body: Any
    request: Request
    options: ServerOptions = field(default_factory=ServerOptions)
    checked: set[str] = field(default_factory=set)  # operations already authorized for this request


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Return body as JSON (numpy values and datetimes included)."""
    data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=_default)
    return Response(data, status, headers, JSON)


def _default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"cannot serialize {type(value).__name__}")


_STATUS: list[tuple[type[BaseException], int]] = [
    (AuthenticationError, 401), (PermissionDeniedError, 403), (NotFoundError, 404), (RateLimitedError, 429),
    (GateFailedError, 409), (PromotionConflictError, 409), (JobError, 409), (TooLargeError, 413),
    (ValidationError, 422),
]


def error_response(e: ForgeError) -> Response:
    """Map a ForgeError to its HTTP status with a one-line JSON message."""
    status = next((code for cls, code in _STATUS if isinstance(e, cls)), 400)
    headers = {}
    if isinstance(e, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(e.retry_after_s)))
    if isinstance(e, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="forgeml"'
    return json_response({"error": str(e), "type": type(e).__name__}, status, headers)


def _coerce(param: Param, raw: str) -> Any:
    kind = param.schema.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
        if kind == "boolean":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return raw.lower() in ("true", "1")
    except ValueError:
        raise ValidationError(f"query parameter {param.name!r} must be a {kind}, got {raw!r}") from None
    return raw


class Door:
    """The state of one running server: workspace, limits, and the handler every route goes through."""

    def __init__(self, workspace: Any, options: ServerOptions):
        self.workspace = workspace
        self.options = options
        self.limiter = RateLimiter(options.rate_per_s, options.burst)

    def endpoint(self, op: Operation) -> Endpoint:
        """Return the ASGI app of an operation (Starlette routes to it as it is)."""
        return Endpoint(self, op)

    async def respond(self, op: Operation, request: Request) -> Response:
        """Answer one request of an operation: always a Response, errors included."""
        try:
            call = await self._prepare(op, request)
            result = self._invoke_with(op.fast, call) if op.fast is not None else None
            if result is None:
                result = await run_in_threadpool(self._invoke, op, call)
        except ForgeError as e:
            return error_response(e)
        except Exception as e:  # a bug must answer 500 in JSON, and be logged, not kill the connection
            log.exception("%s %s failed", op.method, op.path)
            return json_response({"error": f"internal error: {type(e).__name__}: {e}"}, 500)
        if isinstance(result, Response):
            return result
        return json_response(result, op.status)

    async def _prepare(self, op: Operation, request: Request) -> Call:
        scope = request.scope
        client = scope.get("client")
        principal = authenticate(self.workspace, request.headers.get("authorization", ""),
                                 client[0] if client else "")
        wait = self.limiter.take(principal.token_id or principal.name)
        if wait:
            raise RateLimitedError(f"rate limit of {self.options.rate_per_s:g} requests/s exceeded for token "
                                   f"{principal.token_id}; retry in {wait:.2f}s", wait)
        query: dict[str, Any] = {}
        given = _query(scope["query_string"]) if op.params else _NO_QUERY
        for param in op.params:
            if param.where == "query":
                raw = given.get(param.name)
                if raw is None:
                    if param.required:
                        raise ValidationError(f"query parameter {param.name!r} is required")
                    continue
                query[param.name] = _coerce(param, raw)
        body: Any = None
        if op.body is not None or op.raw_body:
            data = await self._read(request)
            if op.raw_body:
                body = data
            else:
                try:
                    body = orjson.loads(data) if data else {}
                except orjson.JSONDecodeError as e:
                    raise ValidationError(f"request body is not valid JSON: {e}") from None
                if not isinstance(body, dict):
                    raise ValidationError("the request body must be a JSON object")
        return Call(self.workspace, principal, dict(request.path_params), query, body, request, self.options)

    async def _read(self, request: Request) -> bytes:
        limit = self.options.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise TooLargeError(f"request body of {declared} bytes exceeds the {limit}-byte limit")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLargeError(f"request body exceeds the {limit}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _invoke(op: Operation, call: Call) -> Any:
        return Door._invoke_with(op.call, call)

    @staticmethod
    def _invoke_with(function: Callable[[Call], Any], call: Call) -> Any:
        with acting_as(call.principal):
            return function(call)


class Endpoint:
    """One operation as an ASGI app: no per-request function wrapping, the Door answers every error."""

    __slots__ = ("door", "op", "__name__")

    def __init__(self, door: Door, op: Operation):
        self.door, self.op = door, op
        self.__name__ = op.call.__name__

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        response = await self.door.respond(self.op, Request(scope, receive, send))
        await response(scope, receive, send)


_NO_QUERY: dict[str, str] = {}
_QUERIES: dict[bytes, dict[str, str]] = {}  # clients repeat the same few query strings (a resolve's uri)


def _query(raw: bytes) -> dict[str, str]:
    """Return a query string's parameters (the last of repeated ones), parsed once per distinct string."""
    found = _QUERIES.get(raw)
    if found is None:
        found = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
        if len(raw) <= 1024:  # bounded: the query string is the client's to choose
            if len(_QUERIES) >= 1024:
                _QUERIES.clear()
            _QUERIES[raw] = found
    return found


def body_field(call: Call, name: str, kind: type | tuple[type, ...], default: Any = ..., what: str = "") -> Any:
    """Return a field of the JSON body checked against a type, or a ValidationError naming it."""
    if name not in call.body:
        if default is ...:
            raise ValidationError(f"the body needs {name!r}{' (' + what + ')' if what else ''}")
        return default
    value = call.body[name]
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = "/".join(t.__name__ for t in _as_tuple(kind))
        raise ValidationError(f"{name!r} must be {names}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def str_map(value: Any, name: str) -> dict[str, str]:
    """Return a JSON object of scalars as a str -> str dict, or a ValidationError."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float | bool) for v in value.values()):
        raise ValidationError(f"{name!r} must be an object of strings, numbers or booleans")
    return {str(k): str(v) for k, v in value.items()}

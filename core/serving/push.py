"""POST /v1/push/{view}: rows pushed over HTTP to a feature view, as ``forgeml.push`` does in process."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

MAX_ROWS = 100_000
TARGETS = ("online_and_offline", "online", "offline")


def _reply(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _rows_table(view: Any, rows: list[dict[str, Any]], read_times: bool = True) -> Any:
    """Return JSON rows as Arrow, with ISO text in the view's timestamp column read as instants."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from forgeml.errors import ValidationError

    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValidationError(f"rows do not form a table (mixed types in one column?): {e}") from e
    name = view.timestamp_field
    if read_times and name in table.column_names and pa.types.is_string(table.column(name).type):
        try:
            stamped = pc.cast(table.column(name), pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid as e:
            raise ValidationError(f"{name!r} must be ISO times with a zone, e.g. 2024-05-01T12:00:00Z ({e})") from e
        table = table.set_column(table.column_names.index(name), name, stamped)
    return table


async def authorized_body(request: Request) -> tuple[Any, Any] | Response:
    """Check the caller's token and parse the JSON body: (serving state, body), or the error to answer."""
    from forgeml.serving.state import authorized

    state = request.app.state.serving
    if not authorized(state, request):
        return _reply({"error": "missing or wrong bearer token"}, 401)
    try:
        return state, orjson.loads(await request.body())
    except orjson.JSONDecodeError as e:
        return _reply({"error": f"the body is not JSON: {e}"}, 400)


async def push_rows(request: Request) -> Response:
    """Push a JSON body {"rows": [...], "to": "online_and_offline"} to a feature view; answer the rows written."""
    from forgeml.errors import ForgeError, NotFoundError
    from forgeml.features import store_for

    parsed = await authorized_body(request)
    if isinstance(parsed, Response):
        return parsed
    state, body = parsed
    rows = body.get("rows") if isinstance(body, dict) else None
    to = body.get("to", "online_and_offline") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return _reply({"error": 'send {"rows": [{column: value, ...}, ...]}'}, 422)
    if len(rows) > MAX_ROWS:
        return _reply({"error": f"at most {MAX_ROWS} rows per push, got {len(rows)}"}, 413)
    if to not in TARGETS:
        return _reply({"error": f'"to" must be one of {", ".join(TARGETS)}'}, 422)
    bad_rows = body.get("bad_rows", "refuse")
    if bad_rows not in ("refuse", "dead_letter"):
        return _reply({"error": '"bad_rows" must be "refuse" or "dead_letter"'}, 422)
    if bad_rows == "dead_letter":  # as text, like a stream's records: each is cast, or set aside, on its own
        rows = [{k: v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for k, v in r.items()}
                for r in rows]
    store = store_for(state.workspace)
    name = request.path_params["view"]

    def push() -> int:
        view = store.get_feature_view(name)
        return store.push(name, _rows_table(view, rows, bad_rows == "refuse"), to=to, bad_rows=bad_rows)

    try:
        written = await run_in_threadpool(push)
    except NotFoundError as e:
        return _reply({"error": str(e)}, 404)
    except ForgeError as e:
        return _reply({"error": str(e)}, 422)
    if bad_rows == "dead_letter":
        return _reply({"view": name, "rows": written, "dead_letters": len(rows) - written})
    return _reply({"view": name, "rows": written})

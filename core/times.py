"""Time in one convention: epoch microseconds UTC inside, aware datetimes at the API, and one formatter
for people that always says UTC.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from forgeml.errors import ValidationError

if TYPE_CHECKING:
    import pyarrow as pa

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_utc_micros(value: Any) -> int | None:
    """Return a datetime (tz-aware), ISO string or epoch-microsecond int as epoch microseconds UTC."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ValidationError(f"expected a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is None:
        raise ValidationError(f"timestamp {value.isoformat()} has no time zone; give an aware datetime "
                              f"(e.g. datetime(..., tzinfo=timezone.utc))")
    return (value - EPOCH) // timedelta(microseconds=1)


def timestamp_micros(column: pa.ChunkedArray | pa.Array, where: str) -> pa.Array:
    """Return a tz-aware timestamp column as int64 epoch microseconds; naive timestamps are an error."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_timestamp(column.type):
        raise ValidationError(f"{where} must be a timestamp column, got {column.type}")
    if column.type.tz is None:
        raise ValidationError(f"{where} has timestamps without a time zone; make them aware, e.g. "
                              f"pandas: df[col] = df[col].dt.tz_localize('UTC')")
    return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC"), safe=False), pa.int64())


def format_utc(value: Any, seconds: bool = True, short: bool = False) -> str:
    """Return a time for people as ``2026-12-07 11:49:14 UTC``; empty for None, NaN and NaT.

    Accepts epoch seconds, an aware datetime or a pandas Timestamp; naive datetimes are taken as UTC.
    ``seconds=False`` drops the seconds; ``short`` gives ``12-07 11:49Z`` (ISO 8601's UTC mark) for narrow tables.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "NaT":
        return ""
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        when = datetime.fromtimestamp(float(value), UTC)
    pattern = "%m-%d %H:%MZ" if short else "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    return when.astimezone(UTC).strftime(pattern)

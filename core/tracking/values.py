"""What a tracking write may hold: keys, steps, timestamps, numbers and text sizes, checked at the call.

NaN is a documented value: a metric logged as NaN is stored as a missing value and read back as NaN
by every reader (history, latest values, search). Infinities are stored and read back as they are.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from forgeml.errors import ValidationError

MAX_KEY = 250
MAX_TEXT = 65_536
INT64 = 2**63
# year 10000: a timestamp beyond it is almost always milliseconds or nanoseconds by mistake
MAX_TIMESTAMP = 253_402_300_800.0


def check_key(key: object, kind: str = "metric") -> str:
    """Return a key (1-250 printable characters without surrounding spaces) or raise ValidationError."""
    if key.__class__ is not str or not key or len(key) > MAX_KEY:  # type: ignore[arg-type]
        raise ValidationError(f"{kind} key must be a string of 1 to {MAX_KEY} characters, got {_short(key)}")
    if not key.isprintable() or key != key.strip():  # type: ignore[union-attr]
        raise ValidationError(f"{kind} key {key!r} holds control characters or surrounding spaces")
    return key  # type: ignore[return-value]


def check_step(step: object) -> int:
    """Return a step as an int in the signed 64-bit range or raise ValidationError."""
    if step.__class__ is not int:
        if isinstance(step, numbers.Integral) and not isinstance(step, bool):
            step = int(step)
        elif isinstance(step, float) and step.is_integer():
            step = int(step)
        else:
            raise ValidationError(f"step must be a whole number, got {_short(step)}")
    if not -INT64 <= step < INT64:  # type: ignore[operator]
        raise ValidationError(f"step {step} is outside the 64-bit range [-2**63, 2**63)")
    return step  # type: ignore[return-value]


def check_timestamp(timestamp: object) -> float:
    """Return a timestamp in seconds since the epoch (0 to year 10000) or raise ValidationError."""
    try:
        value = float(timestamp)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(f"timestamp must be seconds since the epoch, got {_short(timestamp)}") from None
    if not 0.0 <= value < MAX_TIMESTAMP:  # also refuses NaN
        raise ValidationError(f"timestamp {value!r} is not seconds since the epoch between 1970 and 9999 "
                              "(milliseconds by mistake?)")
    return value


def check_value(value: object, key: str) -> float:
    """Return a metric value as a float (NaN and infinities allowed) or raise ValidationError.

    A negative zero comes back as 0.0, as SQLite would read it, so that every store reads a zero alike;
    callers that skip this check for plain floats add 0.0 themselves.
    """
    if isinstance(value, str | bytes):
        raise ValidationError(f"metric {key!r} must be a number, got {_short(value)}")
    try:
        return float(value) + 0.0  # type: ignore[arg-type]
    except OverflowError:
        raise ValidationError(f"metric {key!r} = {_short(value)} is too large for a 64-bit float") from None
    except (TypeError, ValueError):
        raise ValidationError(f"metric {key!r} must be a number, got {_short(value)}") from None


def check_text(key: str, text: str, kind: str) -> str:
    """Return a param or tag value's text when it fits (64 KiB) or raise ValidationError."""
    if len(text) > MAX_TEXT:
        raise ValidationError(f"{kind} {key!r} is {len(text)} characters; the limit is {MAX_TEXT}")
    if "\x00" in text:
        raise ValidationError(f"{kind} {key!r} holds a NUL character")
    return text


def check_texts(values: Any, kind: str) -> dict[str, str]:
    """Return params or tags as {key: text} after checking every key and value, or raise ValidationError."""
    if not hasattr(values, "items"):
        raise ValidationError(f"{kind}s must be a mapping of key to value, got {_short(values)}")
    out = {}
    for key, value in values.items():
        text = value if isinstance(value, str) else str(value)
        out[check_key(key, kind)] = check_text(key, text, kind)
    return out


def read_value(value: Any) -> float:
    """Return a stored metric value as a float: a missing value (a logged NaN) reads back as NaN."""
    return math.nan if value is None else value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

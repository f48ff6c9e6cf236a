"""One time convention: epoch microseconds UTC inside, and one formatter for people that labels UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from forgeml.errors import ValidationError
from forgeml.times import format_utc, to_utc_micros


def test_format_utc_labels_the_zone_whatever_the_input() -> None:
    """Epoch seconds, aware datetimes in another zone and pandas Timestamps all print in UTC, labelled."""
    assert format_utc(0) == "1970-01-01 00:00:00 UTC"
    paris = datetime(2026, 12, 7, 12, 30, 5, tzinfo=timezone(timedelta(hours=1)))
    assert format_utc(paris) == "2026-12-07 11:30:05 UTC"
    assert format_utc(pd.Timestamp("2026-12-07 11:30:05", tz="UTC"), seconds=False) == "2026-12-07 11:30 UTC"
    assert format_utc(datetime(2026, 12, 7, 11, 30, 5)) == "2026-12-07 11:30:05 UTC"  # naive: taken as UTC


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NaT])
def test_format_utc_leaves_missing_times_empty(missing: object) -> None:
    """A run that has not ended shows an empty cell, not 'NaT' or an error."""
    assert format_utc(missing) == ""


def test_to_utc_micros_refuses_naive_times_and_converts_zones() -> None:
    """A naive datetime is a ValidationError; an aware one in any zone becomes the same UTC instant."""
    with pytest.raises(ValidationError, match="no time zone"):
        to_utc_micros(datetime(2026, 1, 1))
    aware = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert to_utc_micros(aware) == to_utc_micros("2026-01-01T00:00:00+00:00") == 1767225600 * 1_000_000


def test_short_form_keeps_the_utc_mark() -> None:
    """Narrow tables get month-day hour:minute with ISO 8601's Z, still unambiguous."""
    assert format_utc(0, short=True) == "01-01 00:00Z"

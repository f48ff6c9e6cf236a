"""Request rows against a signature: the all-number fast path agrees with the field-by-field checks."""

from __future__ import annotations

import pytest

from forgeml.serving.signature import ColumnSpec, SchemaMismatch, rows_to_columns

COLUMNS = [ColumnSpec(f"x{i}") for i in range(4)]


def _row(**changes):
    row = {"x0": 1.0, "x1": 2, "x2": -3.5, "x3": 0.0}
    row.update(changes)
    return {k: v for k, v in row.items() if v is not ...}


def test_number_rows_come_back_column_wise_with_their_types():
    rows = [_row(), _row(x1=7.25), _row(x0=-1)]
    assert rows_to_columns(rows, COLUMNS) == {"x0": [1.0, 1.0, -1], "x1": [2, 7.25, 2], "x2": [-3.5] * 3,
                                              "x3": [0.0] * 3}
    # the same rows through the field-by-field path (extras allowed) give the same columns
    assert rows_to_columns(rows, COLUMNS, allow_extra=True) == rows_to_columns(rows, COLUMNS)


@pytest.mark.parametrize(("bad", "field"), [
    (_row(x2=True), "rows[1].x2"),
    (_row(x1=None), "rows[1].x1"),
    (_row(x3="1.5"), "rows[1].x3"),
    (_row(x3=float("inf")), "rows[1].x3"),
    (_row(x0=...), "rows[1].x0"),
    (_row(extra=1.0), "rows[1].extra"),
    (_row(x1=[1.0]), "rows[1].x1"),
])
def test_a_bad_field_is_named_exactly(bad, field):
    with pytest.raises(SchemaMismatch) as info:
        rows_to_columns([_row(), bad], COLUMNS)
    assert info.value.field == field
    with pytest.raises(SchemaMismatch) as single:
        rows_to_columns([bad], COLUMNS)
    assert single.value.field == field.replace("rows[1]", "rows[0]")


def test_an_integer_too_large_for_a_float_is_refused_not_failed_later():
    with pytest.raises(SchemaMismatch) as info:
        rows_to_columns([_row(x1=10 ** 400)], COLUMNS)
    assert info.value.field == "rows[0].x1" and "too large" in str(info.value)
    assert rows_to_columns([_row(x1=10 ** 300)], COLUMNS)["x1"] == [10 ** 300]

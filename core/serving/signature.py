"""A model's input schema as serving sees it: validating request rows and building the model's batch."""

from __future__ import annotations

import itertools
import math
import operator
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# JSON-schema type for each spelling of a column type that registries and frameworks use
_JSON_TYPES = {
    "double": "number", "float": "number", "float64": "number", "float32": "number", "float16": "number",
    "number": "number", "decimal": "number",
    "long": "integer", "int": "integer", "int64": "integer", "int32": "integer", "int16": "integer",
    "int8": "integer", "integer": "integer", "uint8": "integer", "uint16": "integer", "uint32": "integer",
    "uint64": "integer",
    "string": "string", "str": "string", "large_string": "string", "object": "string", "category": "string",
    "bool": "boolean", "boolean": "boolean",
}


_FLOAT_MAX = sys.float_info.max


class SchemaMismatch(ValueError):
    """A request does not fit the model's signature; ``field`` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class ColumnSpec:
    """One named input column and its JSON type (number, integer, string, boolean)."""

    name: str
    json_type: str = "number"
    required: bool = True


@dataclass
class Signature:
    """The named input columns a model takes, in the order it takes them."""

    inputs: list[ColumnSpec] = field(default_factory=list)
    output_type: str = "number"

    @property
    def names(self) -> list[str]:
        """Return the input column names in order."""
        return [c.name for c in self.inputs]

    @classmethod
    def parse(cls, raw: Any) -> Signature:
        """Read a signature in the common shapes: {"inputs": [{"name","type"}]}, {"inputs": {name: type}}, or a list."""
        if isinstance(raw, Signature):
            return raw
        if raw is None:
            return cls()
        if isinstance(raw, str):
            import json

            raw = json.loads(raw)
        inputs = raw.get("inputs", raw.get("input", [])) if isinstance(raw, Mapping) else raw
        outputs = raw.get("outputs") if isinstance(raw, Mapping) else None
        if isinstance(inputs, Mapping) and ("columns" in inputs or "fields" in inputs):
            inputs = inputs.get("columns", inputs.get("fields"))
        cols: list[ColumnSpec] = []
        if isinstance(inputs, Mapping):
            for name, tp in inputs.items():
                cols.append(ColumnSpec(str(name), _json_type(tp)))
        else:
            for spec in inputs or []:
                if isinstance(spec, Mapping):
                    name = spec.get("name")
                    if name is None:
                        continue
                    tp = spec.get("type", spec.get("dtype", "double"))
                    optional = bool(spec.get("optional", False)) or spec.get("required") is False
                    cols.append(ColumnSpec(str(name), _json_type(tp), not optional))
                elif isinstance(spec, list | tuple) and len(spec) == 2:
                    cols.append(ColumnSpec(str(spec[0]), _json_type(spec[1])))
                elif isinstance(spec, str):
                    cols.append(ColumnSpec(spec))
        out_type = "number"
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], Mapping):
            out_type = _json_type(outputs[0].get("type", outputs[0].get("dtype", "double")))
        elif isinstance(outputs, Mapping) and outputs:
            first = next(iter(outputs.values()))
            out_type = _json_type(first.get("type") if isinstance(first, Mapping) else first)
        return cls(cols, out_type)

    def json_schema(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Return the JSON schema of one row holding the given columns (default: every input)."""
        wanted = set(names) if names is not None else None
        props: dict[str, Any] = {}
        required: list[str] = []
        for c in self.inputs:
            if wanted is not None and c.name not in wanted:
                continue
            props[c.name] = _column_schema(c.json_type)
            if c.required:
                required.append(c.name)
        schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            schema["required"] = required
        return schema


def _json_type(tp: Any) -> str:
    text = str(tp).lower().strip()
    if text.startswith("tensor") or text.startswith("array"):
        return "number"
    return _JSON_TYPES.get(text, "number" if "float" in text or "double" in text else
                           "integer" if "int" in text else "string" if "str" in text else "number")


def _column_schema(json_type: str) -> dict[str, Any]:
    if json_type == "number":
        return {"type": "number"}
    if json_type == "integer":
        return {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    return {"type": json_type}


def check_value(value: Any, json_type: str, where: str) -> Any:
    """Return value when it fits json_type (ints are numbers; bools are not), else raise SchemaMismatch."""
    if json_type == "number":
        if type(value) is float:
            if math.isfinite(value):
                return value
            raise SchemaMismatch(where, "must be a finite number")
        if type(value) is int:
            if -_FLOAT_MAX <= value <= _FLOAT_MAX:
                return value
            raise SchemaMismatch(where, "must be a finite number (this integer is too large for a float)")
        raise SchemaMismatch(where, f"expected a number, got {_kind(value)}")
    if json_type == "integer":
        if type(value) is int and -(2**63) <= value < 2**63:
            return value
        if type(value) is float and value.is_integer() and abs(value) < 2**63:
            return int(value)
        raise SchemaMismatch(where, f"expected an integer, got {_kind(value)}")
    if json_type == "string":
        if type(value) is str:
            return value
        raise SchemaMismatch(where, f"expected a string, got {_kind(value)}")
    if json_type == "boolean":
        if type(value) is bool:
            return value
        raise SchemaMismatch(where, f"expected true or false, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def rows_to_columns(rows: Any, columns: Sequence[ColumnSpec], where: str = "rows",
                    allow_extra: bool = False) -> dict[str, list[Any]]:
    """Validate a list of row objects against columns and return them column-wise.

    With ``allow_extra``, fields outside the columns pass through when they hold scalars (request
    values that on-demand features read); otherwise they are errors.
    """
    if not isinstance(rows, list):
        raise SchemaMismatch(where, f"expected a list of objects, got {_kind(rows)}")
    if not rows:
        raise SchemaMismatch(where, "must hold at least one row")
    if not allow_extra:
        fast = _all_numbers(rows, columns)
        if fast is not None:
            return fast
    specs = [(c.name, c.json_type, c.required) for c in columns]
    out: dict[str, list[Any]] = {c.name: [] for c in columns}
    extras: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        if type(row) is not dict:
            raise SchemaMismatch(f"{where}[{i}]", f"expected an object, got {_kind(row)}")
        present = 0
        for name, json_type, required in specs:
            value = row.get(name)
            if value is None:
                if name in row:
                    present += 1
                if required:
                    raise SchemaMismatch(f"{where}[{i}].{name}", "required field is missing"
                                         if name not in row else "must not be null")
                out[name].append(None)
                continue
            present += 1
            # the hot path: a finite float or an int for a number column, checked without a call
            if json_type == "number" and (type(value) is float and value - value == 0
                                          or type(value) is int and -_FLOAT_MAX <= value <= _FLOAT_MAX):
                out[name].append(value)
            else:
                out[name].append(check_value(value, json_type, f"{where}[{i}].{name}"))
        if len(row) > present:
            _extras(row, out, extras, i, where, allow_extra)
    for key, values in extras.items():
        if len(values) != len(rows):
            raise SchemaMismatch(f"{where}[*].{key}", "must be given in every row or none")
        out[key] = values
    return out


_NUMBER_TYPES = frozenset((int, float))
_PLANS: dict[int, tuple[Sequence[ColumnSpec], tuple[str, ...], Any]] = {}


def _plan(columns: Sequence[ColumnSpec]) -> tuple[Sequence[ColumnSpec], tuple[str, ...], Any]:
    """The column names and, when every column is a number, one getter that reads them all at once."""
    plan = _PLANS.get(id(columns))
    if plan is not None and plan[0] is columns:  # holding the list keeps its id from being reused
        return plan
    names = tuple(c.name for c in columns)
    numeric = len(names) > 1 and len(set(names)) == len(names) and all(c.json_type == "number" for c in columns)
    plan = (columns, names, operator.itemgetter(*names) if numeric else None)
    if len(_PLANS) > 256:
        _PLANS.clear()
    _PLANS[id(columns)] = plan
    return plan


def _all_numbers(rows: list[Any], columns: Sequence[ColumnSpec]) -> dict[str, list[Any]] | None:
    """The common request, all-number columns each given once as a finite number, checked in C loops.

    Returns None for anything else (a missing, extra, null or mistyped field), which the
    field-by-field path then reports precisely.
    """
    _, names, getter = _plan(columns)
    if getter is None:
        return None
    width = len(names)
    try:
        if len(rows) == 1:
            row = rows[0]
            if type(row) is not dict or len(row) != width:
                return None
            values = getter(row)
            if not set(map(type, values)) <= _NUMBER_TYPES or not math.isfinite(sum(values)):
                return None
            return {name: [value] for name, value in zip(names, values)}
        if not all(type(row) is dict and len(row) == width for row in rows):
            return None
        tuples = [getter(row) for row in rows]
        flat = list(itertools.chain.from_iterable(tuples))
        if not set(map(type, flat)) <= _NUMBER_TYPES or not math.isfinite(sum(flat)):
            return None
    except (KeyError, OverflowError):  # a field missing, or an integer too large for a float
        return None
    return {name: list(col) for name, col in zip(names, zip(*tuples))}


def _extras(row: dict[str, Any], known: dict[str, list[Any]], extras: dict[str, list[Any]], i: int, where: str,
            allow: bool) -> None:
    for key, value in row.items():
        if key in known:
            continue
        if not allow:
            raise SchemaMismatch(f"{where}[{i}].{key}", "unknown field; the model takes " + ", ".join(sorted(known)))
        if not isinstance(value, str | int | float | bool) or (type(value) is float and not math.isfinite(value)):
            raise SchemaMismatch(f"{where}[{i}].{key}", f"a request value must be a finite scalar, got {_kind(value)}")
        extras.setdefault(key, []).append(value)

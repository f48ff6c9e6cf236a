"""The expectations themselves: one check function per kind, and drift through the monitor plugins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ValidationError

TYPE_FAMILIES = {
    "numeric": lambda t, pa: pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t),
    "integer": lambda t, pa: pa.types.is_integer(t),
    "float": lambda t, pa: pa.types.is_floating(t),
    "string": lambda t, pa: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t),
    "bool": lambda t, pa: pa.types.is_boolean(t),
    "timestamp": lambda t, pa: pa.types.is_timestamp(t) or pa.types.is_date(t),
    "categorical": lambda t, pa: pa.types.is_dictionary(t) or pa.types.is_string(t) or pa.types.is_large_string(t),
}


@dataclass
class Expectation:
    """One check: ``kind`` plus its parameters, e.g. ``Expectation("range", column="age", min=0, max=120)``."""

    kind: str
    column: str | list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __init__(self, kind: str, column: str | list[str] | None = None, **params: Any):
        self.kind = kind
        self.column = column
        self.params = params

    def describe(self) -> str:
        """Return a short human label such as ``range(age, min=0, max=120)``."""
        args = ([str(self.column)] if self.column is not None else []) + [f"{k}={v!r}" for k, v in self.params.items()]
        return f"{self.kind}({', '.join(args)})"


@dataclass
class ExpectationResult:
    """The verdict of one expectation."""

    expectation: str
    passed: bool
    message: str
    skipped: bool = False
    details: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ the checks
def _columns(exp: Expectation, table: Any) -> list[str]:
    cols = [exp.column] if isinstance(exp.column, str) else list(exp.column or [])
    if not cols:
        raise ValidationError(f"{exp.describe()}: needs column=...")
    return cols


def _missing(cols: list[str], table: Any) -> str | None:
    gone = [c for c in cols if c not in table.column_names]
    return f"missing column(s) {', '.join(gone)}" if gone else None


def _schema(exp: Expectation, table: Any, ctx: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    import pyarrow as pa

    wanted: Mapping[str, str] = exp.params.get("columns") or {}
    if isinstance(exp.column, Mapping):
        wanted = exp.column
    problems = []
    actual = {f.name: f.type for f in table.schema}
    for name, tp in wanted.items():
        if name not in actual:
            problems.append(f"missing column {name}")
        elif not _type_matches(actual[name], tp, pa):
            problems.append(f"{name} is {actual[name]}, expected {tp}")
    if exp.params.get("strict"):
        problems += [f"unexpected column {c}" for c in actual if c not in wanted]
    return not problems, "; ".join(problems) or "schema matches", {"actual": {k: str(v) for k, v in actual.items()}}


def _type_matches(actual: Any, wanted: str, pa: Any) -> bool:
    if wanted in TYPE_FAMILIES:
        return TYPE_FAMILIES[wanted](actual, pa)
    return str(actual) == wanted


def _type(exp: Expectation, table: Any, ctx: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    import pyarrow as pa

    bad = [f"{c} is {table.schema.field(c).type}" for c in _columns(exp, table)
           if not _type_matches(table.schema.field(c).type, exp.params["type"], pa)]
    return not bad, "; ".join(bad) + f", expected {exp.params['type']}" if bad else "types match", {}


def _not_null(exp: Expectation, table: Any, ctx: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    mostly = float(exp.params.get("mostly", 1.0))
    counts = {c: table[c].null_count for c in _columns(exp, table)}
    n = max(table.num_rows, 1)
    bad = {c: k for c, k in counts.items() if (n - k) / n < mostly}
    msg = "; ".join(f"{c} has {k} nulls ({k / n:.1%})" for c, k in bad.items())
    return not bad, msg or "no nulls", {"nulls": counts}


def _range(exp: Expectation, table: Any, ctx: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    import pyarrow.compute as pc

    lo, hi = exp.params.get("min"), exp.params.get("max")
    if lo is None and hi is None:
        raise ValidationError(f"{exp.describe()}: give min=, max= or both")
    problems, details = [], {}
    for c in _columns(exp, table):
        mm = pc.min_max(table[c])
        cmin, cmax = mm["min"].as_py(), mm["max"].as_py()
        details[c] = {"min": cmin, "max": cmax}
        outside = 0
        if lo is not None:
            outside += pc.sum(pc.less(table[c], lo)).as_py() or 0
        if hi is not None:
            outside += pc.sum(pc.greater(table[c], hi)).as_py() or 0
        if outside:
            problems.append(f"{c} has {outside} values outside [{lo}, {hi}] (seen {cmin}..{cmax})")
    return not problems, "; ".join(problems) or "all values in range", details


def _allowed_values(exp: Expectation, table: Any, ctx: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    allowed = list(exp.params.get("values", []))
    problems, details = [], {}
    for c in _columns(exp, table):
        col = table[c]
        seen = pc.unique(col.filter(pc.is_valid(col)))
        unexpected = pc.filter(seen, pc.invert(pc.is_in(seen, value_set=pa.array(allowed, type=seen.type))))
        values = unexpected.to_pylist()
        details[c] = values[:20]
        if values:
            problems.append(f"{c} has values outside the allowed set: {', '.join(map(repr, values[:5]))}"
                            + (f" and {len(values) - 5} more" if len(values) > 5 else ""))
    return not problems, "; ".join(problems) or "all values allowed", details


def _unique(exp: Expectation, table: Any, ctx: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    cols = _columns(exp, table)
    distinct = table.group_by(cols).aggregate([]).num_rows
    dupes = table.num_rows - distinct
    label = "+".join(cols)
    return not dupes, f"{label} has {dupes} duplicate rows" if dupes else f"{label} is unique", {"duplicates": dupes}


def _row_count(exp: Expectation, table: Any, ctx: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
    n = table.num_rows
    lo, hi = exp.params.get("min"), exp.params.get("max")
    problems = []
    if lo is not None and n < lo:
        problems.append(f"{n} rows, fewer than {lo}")
    if hi is not None and n > hi:
        problems.append(f"{n} rows, more than {hi}")
    details: dict[str, Any] = {"rows": n}
    pct = exp.params.get("within_pct")
    if pct is not None:
        prev = ctx.get("previous_rows")
        if prev is None:
            if not problems:
                return True, f"{n} rows; no previous version to compare with", {**details, "skipped_previous": True}
        else:
            details["previous_rows"] = prev
            change = (n - prev) / prev * 100 if prev else (0.0 if n == 0 else float("inf"))
            details["change_pct"] = change
            if abs(change) > float(pct):
                problems.append(f"{n} rows vs {prev} in the previous version ({change:+.1f}%, allowed ±{pct}%)")
    return not problems, "; ".join(problems) or f"{n} rows", details


CHECKS = {"schema": _schema, "type": _type, "not_null": _not_null, "range": _range, "allowed_values": _allowed_values,
          "unique": _unique, "row_count": _row_count}


def _shift(exp: Expectation, table: Any, ctx: dict[str, Any], ws: Any) -> ExpectationResult:
    """Compare columns with a reference through the monitor plugins."""
    import pyarrow as pa

    label = exp.describe()
    reference = ctx.get("reference")
    if reference is None:
        return ExpectationResult(label, False, "no reference given: pass reference= (a dataset ref or table) or "
                                 "reference = \"name@v1\" in the expectation", skipped=True)
    monitors = ws.plugins.providers("monitors") if ws is not None else {}
    if not monitors:
        return ExpectationResult(label, False, "skipped: no monitor plugin is registered (enable the 'monitors' "
                                 "plugin to check distribution shift)", skipped=True)
    wanted = exp.params.get("test")
    if wanted is not None and wanted not in monitors:
        from forgeml.errors import unknown_name

        raise unknown_name("monitor", wanted, monitors, label)
    built: dict[str, Any] = {}
    drifted, details = [], {}
    for c in _columns(exp, table):
        if c not in table.column_names:
            drifted.append(f"{c} is missing")
            continue
        if c not in reference.column_names:
            drifted.append(f"{c} is missing from the reference")
            continue
        numeric = pa.types.is_integer(table[c].type) or pa.types.is_floating(table[c].type)
        kind = "numeric" if numeric else "categorical"
        name = wanted
        if name is None:
            name = next((n for n in (("psi", "ks") if numeric else ("chi2", "jensen_shannon", "psi")) if n in monitors), None)
        if name is None:
            name = next((n for n, p in sorted(monitors.items())
                         if kind in getattr(_build(built, p, ws), "kinds", (kind,))), None)
        if name is None:
            details[c] = "no monitor handles this column kind"
            continue
        monitor = _build(built, monitors[name], ws)
        ref, cur = _samples(kind, reference[c], table[c])
        result = monitor.compare(c, ref, cur)
        details[c] = {"test": result.test, "statistic": result.statistic, "p_value": result.p_value,
                      "effect_size": result.effect_size, "drifted": result.drifted}
        if result.drifted:
            drifted.append(f"{c} shifted ({result.test} statistic {result.statistic:.4g})")
    return ExpectationResult(label, not drifted, "; ".join(drifted) or "no shift detected", details=details)


def _samples(kind: str, ref: Any, cur: Any) -> tuple[Any, Any]:
    """Prepare two columns as the Monitor contract asks: sorted float arrays, or shared-category counts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from forgeml.contracts import CategoricalSample

    if kind == "numeric":
        out = []
        for col in (ref, cur):
            values = pc.drop_null(col).to_numpy().astype(np.float64)
            out.append(np.sort(values[~np.isnan(values)]))
        return out[0], out[1]
    strings = [pc.fill_null(col.cast(pa.string()), "(null)") for col in (ref, cur)]
    encoded = pa.chunked_array(strings[0].chunks + strings[1].chunks, type=pa.string()).combine_chunks()
    encoded = encoded.dictionary_encode()
    codes, k, n = encoded.indices.to_numpy(), len(encoded.dictionary), len(ref)
    categories = tuple(encoded.dictionary.to_pylist())
    return (CategoricalSample(np.bincount(codes[:n], minlength=k).astype(np.float64), categories),
            CategoricalSample(np.bincount(codes[n:], minlength=k).astype(np.float64), categories))


def _build(cache: dict[str, Any], provider: Any, ws: Any) -> Any:
    if provider.name not in cache:
        settings = provider.settings() if provider.settings else None
        cache[provider.name] = provider.build(settings, ws)
    return cache[provider.name]



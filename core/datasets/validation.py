"""Expectation suites: schema, types, nulls, ranges, allowed values, uniqueness, row count, drift."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import DataValidationError, ValidationError

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


@dataclass
class ValidationReport:
    """Every expectation's verdict for one dataset."""

    dataset: str
    results: list[ExpectationResult]

    @property
    def passed(self) -> bool:
        """Return True when no expectation failed (skipped ones do not fail)."""
        return all(r.passed or r.skipped for r in self.results)

    @property
    def failures(self) -> list[ExpectationResult]:
        """Return the failing expectations."""
        return [r for r in self.results if not r.passed and not r.skipped]

    def summary(self) -> str:
        """Return one line per failing expectation (or a pass line)."""
        if self.passed:
            return f"{self.dataset}: all {len(self.results)} expectations passed"
        lines = [f"{self.dataset}: {len(self.failures)} of {len(self.results)} expectations failed:"]
        lines += [f"  - {r.expectation}: {r.message}" for r in self.failures]
        return "\n".join(lines)

    def raise_for_failures(self) -> ValidationReport:
        """Raise DataValidationError listing the failing expectations; return self when all passed."""
        if not self.passed:
            raise DataValidationError(
                f"{self.dataset} failed validation: " + "; ".join(f"{r.expectation}: {r.message}" for r in self.failures),
                report=self,
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return {"dataset": self.dataset, "passed": self.passed, "results": [asdict(r) for r in self.results]}


@dataclass
class ExpectationSuite:
    """A named list of expectations, loadable from JSON, YAML or TOML."""

    expectations: list[Expectation]
    name: str = "default"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> ExpectationSuite:
        """Build a suite from ``{"name": ..., "expectations": [{"expect": "not_null", "column": "x"}, ...]}``."""
        items = data.get("expectations", []) if isinstance(data, Mapping) else data
        name = data.get("name", "default") if isinstance(data, Mapping) else "default"
        expectations = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or "expect" not in item:
                raise ValidationError(f"expectation #{i + 1} must be a table with an 'expect' key, got {item!r}")
            params = {k: v for k, v in item.items() if k not in ("expect", "column", "columns")}
            expectations.append(Expectation(item["expect"], item.get("column", item.get("columns")), **params))
        return cls(expectations, name)

    @classmethod
    def from_file(cls, path: str | Path) -> ExpectationSuite:
        """Load a suite from a .json, .yaml/.yml or .toml file."""
        path = Path(path)
        if not path.is_file():
            raise ValidationError(f"expectation suite {str(path)!r} does not exist")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            elif path.suffix == ".toml":
                import tomllib

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except Exception as e:  # parse errors of three libraries share no base class
            raise ValidationError(f"cannot parse expectation suite {str(path)!r}: {e}") from e
        return cls.from_dict(data)


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
        cache[provider.name] = provider.factory(settings, ws)
    return cache[provider.name]


def _as_table(data: Any, ws: Any) -> tuple[Any, str, Any]:
    import pyarrow as pa

    from forgeml.datasets.versions import DatasetVersion, get_dataset_version, read_dataset

    if isinstance(data, str | DatasetVersion):
        dv = data if isinstance(data, DatasetVersion) else get_dataset_version(data, workspace=ws)
        return read_dataset(dv, workspace=ws), dv.ref, dv
    if isinstance(data, pa.Table):
        return data, "table", None
    if type(data).__name__ == "DataFrame":
        return pa.Table.from_pandas(data, preserve_index=False), "dataframe", None
    raise ValidationError(f"cannot validate {type(data).__name__}; give a dataset reference, Arrow table or DataFrame")


def validate(data: Any, suite: ExpectationSuite | Sequence[Any] | Mapping[str, Any] | str | Path, *,
             reference: Any = None, previous_rows: int | None = None, raise_on_failure: bool = False,
             workspace: Any = None) -> ValidationReport:
    """Run an expectation suite over a dataset version or table and return the report.

    ``raise_on_failure=True`` raises DataValidationError listing the failures, which stops a pipeline step.
    """
    from forgeml.datasets.versions import previous_version
    from forgeml.errors import WorkspaceError

    ws = workspace
    if ws is None:
        try:
            from forgeml.workspace import current

            ws = current()
        except WorkspaceError:
            if isinstance(data, str) or reference is not None:
                raise
    if isinstance(suite, str | Path):
        suite = ExpectationSuite.from_file(suite)
    elif not isinstance(suite, ExpectationSuite):
        items = suite.get("expectations", suite) if isinstance(suite, Mapping) else suite
        if all(isinstance(e, Expectation) for e in items):
            suite = ExpectationSuite(list(items))
        else:
            suite = ExpectationSuite.from_dict(suite)
    table, label, dv = _as_table(data, ws)
    ctx: dict[str, Any] = {"previous_rows": previous_rows}
    if previous_rows is None and dv is not None:
        prev = previous_version(dv, workspace=ws)
        ctx["previous_rows"] = prev.num_rows if prev else None
    results = []
    for exp in suite.expectations:
        label_e = exp.describe()
        if exp.kind == "distribution_shift":
            ref = exp.params.get("reference", reference)
            ctx["reference"] = None if ref is None else _as_table(ref, ws)[0]
            results.append(_shift(exp, table, ctx, ws))
            continue
        check = CHECKS.get(exp.kind)
        if check is None:
            from forgeml.errors import unknown_name

            raise unknown_name("expectation", exp.kind, [*CHECKS, "distribution_shift"], suite.name)
        if exp.kind not in ("schema", "row_count"):
            gone = _missing(_columns(exp, table), table)
            if gone:
                results.append(ExpectationResult(label_e, False, gone))
                continue
        passed, message, details = check(exp, table, ctx)
        results.append(ExpectationResult(label_e, passed, message, details=details))
    report = ValidationReport(label, results)
    if dv is not None and ws is not None:
        from forgeml.datasets.schema import store

        store(ws).execute("INSERT INTO dataset_validations (name, version, passed, report, at) VALUES (?,?,?,?,?)",
                          (dv.name, dv.version, int(report.passed), json.dumps(report.to_dict(), default=str),
                           time.time()))
    if raise_on_failure:
        report.raise_for_failures()
    return report

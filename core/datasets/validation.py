"""Expectation suites: schema, types, nulls, ranges, allowed values, uniqueness, row count, drift."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from forgeml.datasets.expectations import CHECKS, Expectation, ExpectationResult, _columns, _missing, _shift
from forgeml.errors import DataValidationError, ValidationError


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
        from forgeml.documents import read_document

        data = read_document(path, "expectation suite", default_format="json", allow_list=True)
        return cls.from_dict(data)


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

"""Expectation suites: each expectation passing and failing, reports, blocking errors, drift via monitors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from forgeml import hookimpl
from forgeml.contracts import MonitorResult
from forgeml.datasets import Expectation, ExpectationSuite, register_dataset, validate
from forgeml.errors import DataValidationError, NotFoundError, ValidationError


def _good(n=100):
    return pa.table({"id": list(range(n)), "age": [20 + i % 50 for i in range(n)],
                     "country": ["fr" if i % 2 else "de" for i in range(n)], "score": [i / n for i in range(n)]})


SUITE = [
    {"expect": "schema", "columns": {"id": "integer", "age": "numeric", "country": "string"}},
    {"expect": "type", "column": "score", "type": "float"},
    {"expect": "not_null", "columns": ["id", "age"]},
    {"expect": "range", "column": "age", "min": 0, "max": 120},
    {"expect": "allowed_values", "column": "country", "values": ["fr", "de"]},
    {"expect": "unique", "column": "id"},
    {"expect": "row_count", "min": 10, "within_pct": 20},
]


def test_clean_data_passes_every_expectation(workspace):
    register_dataset("people", _good())
    report = validate("people@v1", SUITE)
    assert report.passed, report.summary()
    assert len(report.results) == len(SUITE)


def test_failures_are_listed_and_block_with_an_error(workspace):
    register_dataset("people", _good())
    bad = pa.table({"id": [1, 1, 2] * 20, "age": [10, None, 300] * 20, "country": ["fr", "us", "xx"] * 20,
                    "score": [1, 2, 3] * 20})
    register_dataset("people", bad)
    report = validate("people@v2", SUITE)
    failed = {r.expectation.split("(")[0] for r in report.failures}
    assert failed == {"type", "not_null", "range", "allowed_values", "unique", "row_count"}
    assert "us" in report.summary() and "-40.0%" in report.summary()
    with pytest.raises(DataValidationError) as err:
        validate("people@v2", SUITE, raise_on_failure=True)
    assert "unique(id)" in str(err.value) and err.value.report.failures
    stored = workspace.metadata.query("SELECT passed FROM dataset_validations ORDER BY id")
    assert [r["passed"] for r in stored] == [0, 0]


def test_suite_from_file_and_objects(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"name": "s", "expectations": [{"expect": "not_null", "column": "a", "mostly": 0.5}]}))
    table = pa.table({"a": [1, None, 3]})
    assert validate(table, path).passed
    assert not validate(table, [Expectation("not_null", "a")]).passed
    assert ExpectationSuite.from_file(path).name == "s"


def test_bad_suites():
    table = pa.table({"a": [1]})
    with pytest.raises(NotFoundError, match="unknown expectation 'not_nul'"):
        validate(table, [{"expect": "not_nul", "column": "a"}])
    with pytest.raises(ValidationError, match="'expect' key"):
        validate(table, [{"column": "a"}])
    with pytest.raises(ValidationError, match="give min=, max="):
        validate(table, [{"expect": "range", "column": "a"}])
    report = validate(table, [{"expect": "not_null", "column": "b"}])
    assert report.failures[0].message == "missing column(s) b"


class KsMonitors:
    """A throwaway monitor plugin (two-sample KS with scipy) so the shift expectation has a test to call."""

    class Ks:
        name = "test_ks"
        kinds = ("numeric",)

        def compare(self, column, reference, current):
            from scipy.stats import ks_2samp

            res = ks_2samp(reference, current)
            return MonitorResult("test_ks", column, float(res.statistic), float(res.pvalue), float(res.statistic),
                                 bool(res.pvalue < 0.01))

    @staticmethod
    @hookimpl
    def forgeml_register_monitors(register):
        register("test_ks", lambda settings, ws: KsMonitors.Ks())


def _workspace_with(tmp_path, extra):
    from forgeml.plugin_manager import make_plugin_manager
    from forgeml.workspace import Workspace

    host = make_plugin_manager(disabled=["monitors"], extra=extra)
    (tmp_path / "w" / ".forgeml").mkdir(parents=True)
    return Workspace(tmp_path / "w", host=host)


def test_distribution_shift_through_monitor_plugins(tmp_path):
    ws = _workspace_with(tmp_path, [("test_monitors", KsMonitors)])
    rng = np.random.default_rng(0)
    ref = pa.table({"x": rng.normal(size=2000)})
    same = pa.table({"x": rng.normal(size=2000)})
    moved = pa.table({"x": rng.normal(loc=0.5, size=2000)})
    suite = [{"expect": "distribution_shift", "column": "x", "test": "test_ks"}]
    assert validate(same, suite, reference=ref, workspace=ws).passed
    report = validate(moved, suite, reference=ref, workspace=ws)
    assert not report.passed and "x shifted" in report.failures[0].message
    ws.close()


def test_distribution_shift_is_skipped_clearly_without_monitors(tmp_path):
    ws = _workspace_with(tmp_path, [])
    table = pa.table({"x": [1.0, 2.0]})
    report = validate(table, [{"expect": "distribution_shift", "column": "x"}], reference=table, workspace=ws)
    assert report.passed and report.results[0].skipped
    assert "no monitor plugin is registered" in report.results[0].message
    ws.close()

"""Dataset versions: content hashes, immutable snapshots, addressing, lineage and bad input (real Parquet/DuckDB)."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgeml.datasets import (
    diff,
    get_dataset_version,
    lineage,
    list_datasets,
    list_versions,
    read_dataset,
    record_use,
    register_dataset,
    restore_files,
)
from forgeml.errors import NotFoundError, ValidationError


def _write_csvs(folder, shift=0.0):
    folder.mkdir(parents=True, exist_ok=True)
    for part in range(2):
        df = pd.DataFrame({"user": [f"u{part}{i}" for i in range(50)],
                           "x": [i * 0.5 + shift + part for i in range(50)],
                           "y": [i % 2 for i in range(50)]})
        df.to_csv(folder / f"part{part}.csv", index=False)


class TestVersions:
    def test_old_version_reads_back_identical_after_source_changed(self, workspace, tmp_path):
        src = tmp_path / "raw"
        _write_csvs(src)
        originals = {p.name: p.read_bytes() for p in src.iterdir()}
        v1 = register_dataset("events", src)
        snapshot_v1 = workspace.artifacts.get_bytes(v1.path)
        before = read_dataset("events@v1")

        _write_csvs(src, shift=100.0)  # the source files change in place
        (src / "part2.csv").write_text("user,x,y\nz,1.0,1\n")
        v2 = register_dataset("events", src)

        assert (v1.version, v2.version) == (1, 2) and v1.digest != v2.digest
        after = read_dataset("events@v1")
        assert after.equals(before)
        assert after.num_rows == 100 and read_dataset("events@v2").num_rows == 101
        assert workspace.artifacts.get_bytes(v1.path) == snapshot_v1
        restored = restore_files("events@v1", tmp_path / "restored")
        assert {p.name: p.read_bytes() for p in restored} == originals

    def test_same_content_is_the_same_version_and_hash_addressing_works(self, workspace, tmp_path):
        table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
        v1 = register_dataset("small", table)
        again = register_dataset("small", table.to_pandas())
        assert again.version == v1.version == 1
        assert get_dataset_version(f"small@{v1.digest[:10]}").version == 1
        assert get_dataset_version("small@1").digest == v1.digest
        assert get_dataset_version("small").version == 1
        v2 = register_dataset("small", table.cast(pa.schema([("a", pa.float64()), ("b", pa.string())])))
        assert v2.version == 2, "a schema change is a new version even with equal values"
        assert [v.version for v in list_versions("small")] == [1, 2]
        assert list_datasets()[0]["latest"] == 2

    def test_any_fsspec_url(self, workspace):
        import fsspec

        fs = fsspec.filesystem("memory")
        with fs.open("/forgeml-test/a.jsonl", "wb") as f:
            f.write(b'{"k": 1, "v": "x"}\n{"k": 2, "v": "y"}\n')
        try:
            dv = register_dataset("mem", "memory://forgeml-test")
            assert dv.num_rows == 2 and dv.files[0]["path"] == "a.jsonl"
            fs.rm("/forgeml-test", recursive=True)
            assert read_dataset("mem@v1")["v"].to_pylist() == ["x", "y"]
        finally:
            if fs.exists("/forgeml-test"):
                fs.rm("/forgeml-test", recursive=True)

    def test_duckdb_query_source_and_diff(self, workspace):
        pq.write_table(pa.table({"k": list(range(10)), "v": [float(i) for i in range(10)]}), workspace.root / "t.parquet")
        v1 = register_dataset("q", query="SELECT k, v FROM 't.parquet' WHERE k < 5 ORDER BY k")
        register_dataset("q", query="SELECT k, v, v * 2 AS w FROM 't.parquet' ORDER BY k")
        assert v1.source_kind == "query" and v1.num_rows == 5
        d = diff("q@v1", "q@v2")
        assert d["rows"] == [5, 10] and d["added_columns"] == ["w"] and not d["same_content"]
        assert next(c for c in d["columns"] if c["column"] == "v")["mean"] == [2.0, 4.5]

    def test_query_paths_resolve_from_the_workspace_wherever_the_process_runs(self, workspace, tmp_path, monkeypatch):
        """Relative paths in a query are the workspace's; the process's working directory is left alone."""
        import os

        pq.write_table(pa.table({"k": [1, 2, 3]}), workspace.root / "t.parquet")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        assert register_dataset("q", query="SELECT k FROM 't.parquet'").num_rows == 3
        assert os.getcwd() == str(elsewhere)

    def test_lineage_lists_sources_runs_and_models(self, workspace, tmp_path):
        from sklearn.dummy import DummyClassifier

        from forgeml.registry import register_model

        src = tmp_path / "raw"
        _write_csvs(src)
        dv = register_dataset("events", src)
        record_use("events@v1", "run123")
        record_use("events@v1", "run123")  # recording twice keeps one row
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        register_model("m", model, flavor="sklearn", datasets=["events@" + dv.digest[:8]])
        from forgeml.tracking import log_input, start_run

        with start_run(name="train") as run:
            log_input(dataset="events@v1")
        with start_run(name="other"):
            log_input(dataset="events@v9")  # a version that does not exist is not this one
        lin = lineage("events@v1")
        assert [r["run_id"] for r in lin["runs"]] == ["run123", run.id]
        assert lin["models"] == ["m@1"]
        assert sorted(f["path"] for f in lin["files"]) == ["part0.csv", "part1.csv"]


class TestBadInput:
    def test_unknown_dataset_suggests_close_name(self, workspace):
        register_dataset("customers", pa.table({"a": [1]}))
        with pytest.raises(NotFoundError, match="did you mean 'customers'"):
            read_dataset("customer@v1")

    def test_unknown_version_and_bad_selector(self, workspace):
        register_dataset("d", pa.table({"a": [1]}))
        with pytest.raises(NotFoundError, match="no version 7"):
            read_dataset("d@v7")
        with pytest.raises(ValidationError, match="invalid dataset selector"):
            read_dataset("d@latest-ish")
        with pytest.raises(NotFoundError, match="hash starts with"):
            read_dataset("d@abcdef12")

    def test_missing_source_bad_name_and_mixed_schemas(self, workspace, tmp_path):
        with pytest.raises(NotFoundError, match="does not exist"):
            register_dataset("d", tmp_path / "nope")
        with pytest.raises(ValidationError, match="invalid dataset name"):
            register_dataset("bad name", pa.table({"a": [1]}))
        with pytest.raises(ValidationError, match="not both"):
            register_dataset("d", pa.table({"a": [1]}), query="SELECT 1")
        with pytest.raises(ValidationError, match="cannot make a dataset"):
            register_dataset("d", [1, 2, 3])
        mixed = tmp_path / "mixed"
        mixed.mkdir()
        (mixed / "a.csv").write_text("a\n1\n")
        (mixed / "b.csv").write_text("a\nnot-a-number\n")
        with pytest.raises(ValidationError, match="share one schema"):
            register_dataset("d", mixed)
        with pytest.raises(ValidationError, match="query failed"):
            register_dataset("d", query="SELEC nonsense")
        for nothing in (";", "-- a comment only"):
            with pytest.raises(ValidationError, match="returns no table"):
                register_dataset("d", query=nothing)
        assert list_datasets() == [], "failed registrations leave nothing behind"

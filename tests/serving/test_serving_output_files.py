"""Family 4: files the CLI writes appear whole or not at all, and an input is never modified."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import register_function

from forgeml.errors import ForgeError, ValidationError
from forgeml.serving import predict_batch


def fails_on_negative(frame: pd.DataFrame):
    """x*2, but the whole call raises when any x is negative (a model that breaks half-way through a file)."""
    x = frame["x"].to_numpy(dtype=float)
    if (x < 0).any():
        raise RuntimeError("negative input")
    return x * 2


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.part"))


@pytest.fixture
def doubler(workspace):
    from forgeml.registry import promote

    promote("dbl", register_function("dbl", fails_on_negative).version, "production", reason="test")
    return "dbl@production"


def _write(path, values):
    pq.write_table(pa.table({"x": pa.array(values, pa.float64())}), path)


def test_output_equal_to_the_input_is_refused_and_the_input_kept(doubler, workspace):
    path = workspace.root / "in.parquet"
    _write(path, [1.0, 2.0, 3.0])
    before = _digest(path)
    with pytest.raises(ValidationError, match="would overwrite the input"):
        predict_batch(doubler, str(path), str(path))
    folder = workspace.root / "folder"
    folder.mkdir()
    _write(folder / "part-0.parquet", [1.0])
    with pytest.raises(ValidationError, match="would overwrite the input"):
        predict_batch(doubler, str(folder), str(folder / "out.parquet"))
    assert _digest(path) == before
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]


def test_a_corrupt_input_is_a_one_line_error_through_the_cli(doubler, workspace, capsys):
    from forgeml.cli import main

    bad = workspace.root / "bad.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", doubler, "--input", str(bad), "--output", str(workspace.root / "o.pq")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "not a readable Parquet file" in err and len(err.strip().splitlines()) == 1
    assert not (workspace.root / "o.pq").exists()


@settings(max_examples=12, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(values=st.lists(st.sampled_from([1.0, 2.5, -1.0, 4.0]), min_size=1, max_size=40),
       chunk=st.integers(1, 16), existing=st.booleans())
def test_predict_output_is_whole_or_untouched(doubler, workspace, values, chunk, existing):
    src = workspace.root / "fuzz-in.parquet"
    _write(src, values)
    out = workspace.root / "results" / "fuzz-out.parquet"
    out.unlink(missing_ok=True)
    if existing:
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(b"an earlier result")
    before = out.read_bytes() if existing else None
    source_digest = _digest(src)
    try:
        result = predict_batch(doubler, str(src), str(out), chunk_size=chunk)
    except ForgeError as e:
        assert any(v < 0 for v in values)
        assert "model dbl v1 raised RuntimeError" in str(e)
        assert (out.read_bytes() if out.exists() else None) == before
    else:
        assert result.rows == len(values)
        assert pq.read_table(out).column("prediction").to_pylist() == (np.array(values) * 2).tolist()
    assert _digest(src) == source_digest
    assert _leftovers(workspace.root) == []


def test_a_download_with_a_corrupt_object_leaves_nothing_behind(workspace, tmp_path):
    import forgeml
    from forgeml.errors import CorruptObjectError
    from forgeml.tracking import download_artifacts

    with forgeml.start_run(capture_context=False, system_metrics=False) as run:
        good = run.log_text("fine", "a/good.txt")
        bad = run.log_text("will rot", "b/bad.txt")
    obj = workspace.artifacts._path(bad.digest)
    with open(obj, "r+b") as f:
        f.write(b"X")
    dest = tmp_path / "dest"
    with pytest.raises(CorruptObjectError):
        download_artifacts(run.id, dest)
    assert [p for p in dest.rglob("*") if p.is_file()] == []
    assert good.digest != bad.digest

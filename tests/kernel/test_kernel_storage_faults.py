"""Family 6: a full disk, a read-only workspace and damaged storage are reported plainly and lose nothing more.

A full disk is made real with RLIMIT_FSIZE in a child process (a write past the limit fails with
EFBIG, through the same code path as ENOSPC); a read-only workspace is a read-only bind mount when
the tests run as root (root ignores file modes) and plain file modes otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgeml.errors import StorageError

FULL_DISK_CHILD = textwrap.dedent("""
    import json, os, resource, signal, sys
    import forgeml
    from forgeml.errors import ForgeError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    big = sys.argv[1]
    # nothing may grow past the size of the artifact minus one byte: its temporary copy cannot complete
    limit = os.path.getsize(big) - 1
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    out = {}
    try:
        with forgeml.start_run(capture_context=False, system_metrics=False) as run:
            out["run"] = run.id
            run.log_artifact(big)
    except ForgeError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
""")


def test_a_full_disk_while_logging_an_artifact(workspace, tmp_path):
    from forgeml.tracking import get_run

    big = tmp_path / "weights.bin"
    big.write_bytes(os.urandom(3 << 20))
    env = {**os.environ, "FORGEML_HOME": str(workspace.root)}
    proc = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(big)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["error"].startswith("StorageError: cannot store") and "weights.bin" in out["error"]
    assert "File too large" in out["error"] or "No space" in out["error"]
    tmp_dirs = [p for p in workspace.root.rglob("tmp") if p.is_dir()]
    assert all(not any(d.iterdir()) for d in tmp_dirs), [list(d.iterdir()) for d in tmp_dirs]
    assert get_run(out["run"]).status == "FAILED"


def test_a_run_whose_points_cannot_be_written_ends_failed_not_running(workspace):
    """The store is made to refuse writes (as a full disk would) by swapping the writer's batch function."""
    import forgeml
    from forgeml.tracking import get_run

    run = forgeml.start_run(capture_context=False, system_metrics=False)
    real = run._writer.write_batch

    def full(rows):
        raise StorageError("database or disk is full")

    run._writer.write_batch = full
    run.log_metric("loss", 1.0)
    try:
        with pytest.raises(StorageError, match="disk is full"):
            run.end()
    finally:
        run._writer.write_batch = real
    run._writer.flush()  # the kept point goes in once the store accepts writes again
    assert get_run(run.id).status == "FAILED"
    assert get_run(run.id).metrics == {"loss": 1.0}


@pytest.fixture
def read_only_workspace(workspace):
    """The workspace's .forgeml folder made read-only (a read-only bind mount under root)."""
    import forgeml
    from forgeml.workspace import set_current

    with forgeml.start_run(capture_context=False, system_metrics=False):
        pass
    workspace.close()
    set_current(None)
    dot = workspace.dot
    if os.geteuid() == 0:
        bind = subprocess.run(["mount", "--bind", str(dot), str(dot)], capture_output=True, text=True)
        if bind.returncode != 0:
            pytest.skip(f"running as root and cannot bind-mount read-only: {bind.stderr.strip()}")
        subprocess.run(["mount", "-o", "remount,ro,bind", str(dot)], check=True)
        try:
            yield workspace
        finally:
            subprocess.run(["umount", "-l", str(dot)], check=True)  # lazily: the failed open may hold a handle
    else:
        modes = {p: p.stat().st_mode for p in [dot, *dot.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield workspace
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


def test_a_read_only_workspace_is_reported_as_read_only(read_only_workspace, capsys):
    from forgeml.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "ls"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "read-only" in err and "move it aside" not in err and "not a usable" not in err, err
    assert len(err.strip().splitlines()) == 1


def _doctor(name: str, deep: bool = False):
    from forgeml.doctor import run_checks

    return {c.name: c for c in run_checks(deep=deep)}.get(name)


def _logged(workspace, n: int) -> list:
    import forgeml

    with forgeml.start_run(capture_context=False, system_metrics=False) as run:
        # fresh contents each time, so earlier damage to an object cannot leak into the next example
        return [run.log_text(f"artifact {i} of run {run.id}", f"a{i}.txt") for i in range(n)]


@settings(max_examples=8, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(n=st.integers(1, 4), damage=st.lists(st.sampled_from(["keep", "delete", "flip", "truncate"]), min_size=4,
                                             max_size=4))
def test_doctor_finds_every_missing_or_corrupt_artifact(workspace, n, damage):
    records = _logged(workspace, n)
    broken = 0
    for record, how in zip(records, damage):
        path = Path(workspace.artifacts._path(record.digest))
        if how == "delete":
            path.unlink()
        elif how == "flip":
            data = bytearray(path.read_bytes())
            data[0] ^= 0xFF
            path.write_bytes(bytes(data))
        elif how == "truncate":
            path.write_bytes(path.read_bytes()[:-1])
        broken += how != "keep"
    quick = _doctor("artifacts")  # by default only existence is checked: no object's bytes are read
    assert quick.ok == ("delete" not in damage[:n]), quick.detail
    check = _doctor("artifacts", deep=True)
    assert check.ok == (broken == 0), check.detail
    for record, how in zip(records, damage):
        if how == "delete":
            assert record.digest[:12] in check.detail and "missing" in check.detail
        elif how != "keep":
            assert record.digest[:12] in check.detail and "corrupt" in check.detail
    from forgeml.tracking import purge_runs

    purge_runs([records[0].run_id])  # the next example starts with no damaged references


def test_doctor_notices_an_empty_database_beside_existing_artifacts(workspace):
    from forgeml.workspace import Workspace, set_current

    _logged(workspace, 2)
    assert _doctor("metadata") is None
    workspace.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{workspace.dot / 'metadata.db'}{suffix}").unlink(missing_ok=True)
    set_current(Workspace(workspace.root))
    check = _doctor("metadata")
    assert check is not None and not check.ok and "holds 2 object(s)" in check.detail


def test_doctor_checks_database_integrity(workspace):
    check = _doctor("database integrity")
    assert check.ok and check.detail == "ok"


@pytest.mark.parametrize("metadata_backend", ["sqlite", "postgres"], indirect=True)
def test_doctor_asks_every_layer_for_the_artifacts_it_references(workspace, metadata_backend):
    """Runs, model versions, dataset versions and pipeline outputs each report their digests; doctor checks all."""
    import pandas as pd

    from forgeml.datasets import register_dataset
    from forgeml.doctor import referenced_artifacts
    from forgeml.registry import register_model

    (logged,) = _logged(workspace, 1)
    table = workspace.root / "rows.csv"
    pd.DataFrame({"x": [1, 2, 3]}).to_csv(table, index=False)
    dataset = register_dataset("rows", str(table), workspace=workspace)
    model_file = workspace.root / "model.bin"
    model_file.write_bytes(b"model weights")
    version = register_model("m", path=str(model_file), flavor="python", workspace=workspace)
    found = referenced_artifacts(workspace)
    assert logged.digest in found["tracking"]
    assert version.artifact_digest in found["registry"]
    assert dataset.path in found["datasets"]
    assert set(found) == {"tracking", "registry", "datasets", "pipelines"}
    Path(workspace.artifacts._path(dataset.path)).unlink()
    check = _doctor("artifacts")
    assert not check.ok and dataset.path[:12] in check.detail, check.detail

"""Family 3: tracking writes are checked at the call, one bad row never blocks the rest, values read back exact."""

from __future__ import annotations

import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forgeml
from forgeml.errors import StorageError, ValidationError
from forgeml.tracking import get_run, search_runs, start_run
from forgeml.tracking.transfer import metric_histories


@pytest.mark.parametrize("args,match", [
    (("loss", 1.0, 2**63), "64-bit range"),
    (("loss", 1.0, -(2**63) - 1), "64-bit range"),
    (("loss", 1.0, 1.5), "whole number"),
    (("loss", 1.0, "3"), "whole number"),
    (("loss", 1.0, True), "whole number"),
    (("loss", "abc"), "must be a number"),
    (("loss", None), "must be a number"),
    (("loss", 10**400), "too large"),
    (("", 1.0), "1 to 250"),
    (("a" * 251, 1.0), "1 to 250"),
    ((3, 1.0), "1 to 250"),
    (("lo\nss", 1.0), "control characters"),
    ((" loss", 1.0), "surrounding spaces"),
    (("loss", 1.0, 0, float("nan")), "seconds since the epoch"),
    (("loss", 1.0, 0, 1.7e12), "milliseconds by mistake"),
    (("loss", 1.0, 0, -1.0), "seconds since the epoch"),
])
def test_bad_values_are_refused_at_the_call(tracked, args, match):
    with start_run(capture_context=False) as run:
        with pytest.raises(ValidationError, match=match):
            run.log_metric(*args)
        run.log_metric("loss", 0.5)  # the run goes on
    assert get_run(run.id).metrics == {"loss": 0.5}


def test_param_and_tag_sizes_and_keys_are_checked(tracked):
    with start_run(capture_context=False) as run:
        with pytest.raises(ValidationError, match="limit is 65536"):
            run.log_param("blob", "x" * 70_000)
        with pytest.raises(ValidationError, match="NUL"):
            run.set_tag("t", "a\x00b")
        with pytest.raises(ValidationError, match="control characters"):
            run.log_params({"a\tb": 1})
        run.log_param("ok", 1)
    assert get_run(run.id).params == {"ok": "1"}


def test_a_row_the_store_refuses_is_set_aside_and_later_points_are_written(tracked, capsys):
    """Points that slipped past the call's checks (here appended to the writer directly) cannot block others."""
    with start_run(capture_context=False) as run:
        writer = run._writer
        seq = run._seq
        now = time.time()
        writer.extend([(seq, "m", 0, now, 1.0), (seq, "m", 2**70, now, 2.0), (seq, "m", 2, now, 3.0)])
        assert writer.flush() == 2
        assert [p[2] for p in writer.rejected] == [2**70]
        assert "refused 1 metric point(s) (m@" in capsys.readouterr().err
        run.log_metric("m", 4.0, step=3)
        assert writer.flush() == 1
        assert writer.pending() == 0
    assert [(s, v) for _, s, _, v in forgeml.tracking.store.tracking_store(tracked).metric_history(run.id)] == \
        [(0, 1.0), (2, 3.0), (3, 4.0)]


def test_a_transient_store_failure_keeps_every_point_for_the_retry(tracked):
    with start_run(capture_context=False) as run:
        writer = run._writer
        real = writer.write_batch
        calls = []

        def locked(rows):
            calls.append(len(rows))
            raise StorageError("database is locked", transient=True)

        writer.write_batch = locked
        run.log_metrics({"a": 1.0, "b": 2.0})
        with pytest.raises(StorageError, match="locked"):
            writer.flush()
        assert calls == [2] and writer.pending() == 2 and not writer.rejected
        writer.write_batch = real
        assert writer.flush() == 2
    assert get_run(run.id).metrics == {"a": 1.0, "b": 2.0}


def _bits(value: float) -> str:
    return "nan" if math.isnan(value) else struct.pack(">d", value).hex()


finite_or_not = st.one_of(st.just(-0.0), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=40, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(value=finite_or_not, step=st.integers(-(2**63), 2**63 - 1),
       key=st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1,
                   max_size=30).filter(lambda k: k.isprintable() and k == k.strip()))
def test_a_value_reads_back_bit_identical_through_every_reader(tracked, value, step, key):
    """NaN reads back as NaN (stored as missing); -0.0 reads back as 0.0 on every store (SQLite keeps no
    sign on a zero, so none does)."""
    with start_run(capture_context=False) as run:
        run.log_metric(key, value, step=step)
    expected = _bits(value + 0.0)
    assert _bits(get_run(run.id).metrics[key]) == expected
    store = forgeml.tracking.store.tracking_store(tracked)
    assert [_bits(v) for k, _, _, v in store.metric_history(run.id)] == [expected]
    found = search_runs(f'attributes.run_id = "{run.id}"')
    assert _bits(float(found[f"metrics.{key}"].iloc[0])) == expected
    table = metric_histories([run.id])
    assert [_bits(v if v is not None else math.nan) for v in table.column("value").to_pylist()] == [expected]


def test_a_run_whose_process_was_killed_is_marked_killed(tracked, run_python):
    from forgeml.tracking.liveness import reap_orphaned_runs

    code = textwrap.dedent("""
        import sys, time, forgeml
        run = forgeml.start_run(capture_context=False)
        print(run.id, flush=True)
        time.sleep(60)
    """)
    env = {**os.environ, "FORGEML_HOME": str(tracked.root)}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    run_id = child.stdout.readline().strip()
    with start_run(capture_context=False) as alive:
        assert reap_orphaned_runs() == []
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert get_run(run_id).status == "RUNNING"
        assert reap_orphaned_runs() == [run_id]
    assert get_run(run_id).status == "KILLED" and get_run(run_id).end_time is not None
    assert get_run(alive.id).status == "FINISHED"


def test_doctor_marks_orphaned_runs(tracked, run_python):
    from forgeml.doctor import run_checks

    run_python("import forgeml, os\nrun = forgeml.start_run(capture_context=False)\nprint(run.id)\nos._exit(0)")
    [check] = [c for c in run_checks() if c.name == "orphaned runs"]
    assert check.ok and "marked KILLED 1 run(s)" in check.detail


def test_several_processes_attaching_to_a_new_run_id_all_succeed(tracked):
    start_at = time.time() + 1.5
    code = textwrap.dedent(f"""
        import time, forgeml
        time.sleep(max(0.0, {start_at} - time.time()))
        with forgeml.start_run(run_id="shared0001", capture_context=False) as run:
            run.log_metric("rank", 1.0)
    """)
    env = {**os.environ, "FORGEML_HOME": str(tracked.root)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert get_run("shared0001").metrics == {"rank": 1.0}


def test_a_negative_zero_is_stored_as_zero_by_every_write_path(tracked):
    from forgeml.tracking.batch import log_batch

    with start_run(capture_context=False) as run:
        run.log_metric("local", -0.0)
        run.log_metrics({"many": -0.0})
    log_batch(run.id, {"keys": ["batched"], "values": [-0.0]})
    store = forgeml.tracking.store.tracking_store(tracked)
    assert {k: _bits(v) for k, _, _, v in store.metric_history(run.id)} == {
        "batched": _bits(0.0), "local": _bits(0.0), "many": _bits(0.0)}
    assert all(_bits(v) == _bits(0.0) for v in get_run(run.id).metrics.values())

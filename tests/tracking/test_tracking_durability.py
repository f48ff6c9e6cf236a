"""Durable, concurrent logging: many writer processes, a writer killed with SIGKILL, forked children."""

from __future__ import annotations

import time

import pytest

import forgeml
from forgeml.tracking import create_run, get_metric_history, get_run, start_run
from forgeml.tracking.store import tracking_store


def count_points(ws, run_id: str, key: str | None = None) -> int:
    return tracking_store(ws).count_points(run_id, key)


def test_eight_processes_write_one_run_concurrently_without_loss(tracked, run_python):
    """Forked workers (like DataLoader or DDP ranks); the benchmark runs 8 separate interpreters.

    The forking parent is a fresh interpreter: forking the test process itself would copy the locks that
    other tests' leftover threads hold at that instant, which no program of a user's shares.
    """
    run = create_run(name="ddp-like")
    per_process = 2000
    run_python(f"""
        import multiprocessing, os, sys
        import forgeml

        def write_points(writer):
            os.environ["RANK"] = "1"  # a worker rank: logs, never ends the run
            with forgeml.start_run(run_id="{run.id}"):
                for step in range({per_process}):
                    forgeml.log_metric(f"loss/{{writer}}", 1.0 / (step + 1), step=step)

        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=write_points, args=(i,)) for i in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(100)
        codes = [p.exitcode for p in procs]
        for p in procs:
            if p.exitcode is None:
                p.kill()
        sys.exit(0 if codes == [0] * 8 else f"worker exit codes {{codes}}")
    """, timeout=150)
    assert count_points(tracked, run.id) == 8 * per_process
    latest = get_run(run.id).metrics
    assert latest == {f"loss/{i}": pytest.approx(1.0 / per_process) for i in range(8)}
    assert get_metric_history(run.id, "loss/3")["step"].tolist() == list(range(per_process))
    assert get_run(run.id).status == "RUNNING"


def test_flushed_points_survive_kill_9(tracked, run_python):
    run = create_run(name="killed")
    done = run_python(f"""
        import os, signal, forgeml
        with forgeml.start_run(run_id="{run.id}"):
            for step in range(5000):
                forgeml.log_metric("loss", step, step=step)
            forgeml.flush()
            for step in range(5000, 5010):
                forgeml.log_metric("unflushed", step, step=step)
            os.kill(os.getpid(), signal.SIGKILL)
    """, check=False)
    assert done.returncode == -9
    assert count_points(tracked, run.id, "loss") == 5000
    assert get_run(run.id).metrics["loss"] == 4999
    assert get_run(run.id).status == "RUNNING"  # nobody ended it: the scheduler records the kill


def test_the_background_writer_flushes_within_a_second(tracked, run_python):
    run = create_run(name="no-explicit-flush")
    done = run_python(f"""
        import os, signal, time, forgeml
        with forgeml.start_run(run_id="{run.id}"):
            for step in range(1000):
                forgeml.log_metric("loss", step, step=step)
            time.sleep(1.5)  # the writer flushes at least once a second; no flush() here
            os.kill(os.getpid(), signal.SIGKILL)
    """, check=False)
    assert done.returncode == -9
    assert count_points(tracked, run.id, "loss") == 1000


def test_a_forked_child_logs_into_the_parents_run_without_duplicates(tracked, run_python):
    done = run_python("""
        import multiprocessing, sys
        import forgeml

        with forgeml.start_run(name="parent") as run:
            for step in range(100):
                forgeml.log_metric("parent", step)  # buffered, not flushed, when the child forks

            def child():
                for step in range(200):
                    forgeml.log_metric("child", step, step=step)

            p = multiprocessing.get_context("fork").Process(target=child)
            p.start()
            p.join(60)
            if p.exitcode is None:
                p.kill()
            if p.exitcode != 0:
                sys.exit(f"child exit code {p.exitcode}")
        print(run.id)
    """)
    run_id = done.stdout.split()[-1]
    assert count_points(tracked, run_id, "parent") == 100
    assert count_points(tracked, run_id, "child") == 200  # flushed by the child's exit, not lost
    assert get_run(run_id).status == "FINISHED"


def test_a_write_failure_keeps_the_points_for_the_next_flush(tracked):
    from forgeml.errors import StorageError

    with start_run() as run:
        writer = run._writer
        real = writer.write_batch
        calls = []

        def failing(points):
            calls.append(len(points))
            if len(calls) == 1:
                raise StorageError("disk full")
            real(points)

        writer.write_batch = failing
        try:
            forgeml.log_metric("loss", 1.0)
            with pytest.raises(StorageError, match="disk full"):
                forgeml.flush()
            forgeml.log_metric("loss", 2.0)
            assert forgeml.flush() == 2
        finally:
            writer.write_batch = real
    assert count_points(tracked, run.id, "loss") == 2


def test_log_metric_does_not_touch_the_database(tracked):
    with start_run() as run:
        writer = run._writer
        before = writer.pending()
        started = time.perf_counter()
        for step in range(1000):
            forgeml.log_metric("fast", step)
        elapsed = time.perf_counter() - started
        assert writer.pending() - before <= 1000
    assert count_points(tracked, run.id, "fast") == 1000
    assert elapsed < 5  # a loose sanity bound only; the real figure is in benchmarks/tracking.py


def test_an_idle_writer_thread_exits_and_the_next_point_restarts_it(monkeypatch):
    from forgeml import buffering
    from forgeml.tracking import writer as writer_module

    monkeypatch.setattr(buffering, "IDLE_EXIT_S", 0.2)
    written = []
    writer = writer_module.MetricWriter(written.extend, interval_s=0.05)
    writer.append((1, "loss", 0, 0.0, 1.0))
    deadline = time.time() + 10
    while writer._thread is not None and time.time() < deadline:
        time.sleep(0.05)
    assert writer._thread is None and written == [(1, "loss", 0, 0.0, 1.0)]
    writer.append((1, "loss", 1, 0.0, 2.0))
    assert writer._thread is not None
    assert writer.flush() == 1 and len(written) == 2

"""Durable, concurrent logging: many writer processes, a writer killed with SIGKILL, forked children."""

from __future__ import annotations

import os
import time

import pytest

import forgeml
from forgeml.tracking import create_run, get_metric_history, get_run, start_run
from forgeml.tracking.store import tracking_store


def count_points(ws, run_id: str, key: str | None = None) -> int:
    return tracking_store(ws).count_points(run_id, key)


def _write_points(run_id: str, writer: int, points: int) -> None:
    os.environ["RANK"] = "1"  # a worker rank: logs, never ends the run
    with forgeml.start_run(run_id=run_id):
        for step in range(points):
            forgeml.log_metric(f"loss/{writer}", 1.0 / (step + 1), step=step)


def test_eight_processes_write_one_run_concurrently_without_loss(tracked):
    """Forked workers (like DataLoader or DDP ranks); the benchmark runs 8 separate interpreters."""
    import multiprocessing

    run = create_run(name="ddp-like")
    per_process = 2000
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_points, args=(run.id, i, per_process)) for i in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
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


def test_a_forked_child_logs_into_the_parents_run_without_duplicates(tracked):
    import multiprocessing

    with start_run(name="parent") as run:
        for step in range(100):
            forgeml.log_metric("parent", step)  # buffered, not flushed, when the child forks

        def child() -> None:
            for step in range(200):
                forgeml.log_metric("child", step, step=step)

        ctx = multiprocessing.get_context("fork")
        p = ctx.Process(target=child)
        p.start()
        p.join(60)
        assert p.exitcode == 0
    assert count_points(tracked, run.id, "parent") == 100
    assert count_points(tracked, run.id, "child") == 200  # flushed by the child's exit, not lost
    assert get_run(run.id).status == "FINISHED"


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

"""Conformance suites for executors and GPU inventories (contracts: :class:`forgeml.contracts.Executor`,
:class:`forgeml.contracts.GpuInventory`).

:class:`ExecutorSuite` needs an ``open_executor`` fixture: a picklable, zero-argument callable opening
the executor (each call a new instance, as after a restart of forgeml). Rules it enforces:

- ``launch`` returns at once with a string handle; the attempt runs detached in ``workdir`` with
  ``env``, its output (stdout and stderr) going to the log;
- ``poll`` says ``running`` until the attempt ends, then ``succeeded`` with exit code 0, or
  ``failed`` with the exit code (negative for a signal) and a reason;
- ``logs(handle, offset)`` returns the text after the byte offset and the new offset, so a reader
  that follows along gets every line exactly once;
- ``cancel`` stops the attempt within its grace period;
- a new executor instance, here or in another process, polls and reads handles an earlier one returned;
- ``check`` returns HealthCheck values; a handle it never issued raises ForgeError.

:class:`GpuInventorySuite` needs an ``inventory`` fixture. Rules: ``devices`` returns GpuDevice values
with unique indices and UUIDs, 0 <= free <= total memory, utilization within 0..100, and the same
GPUs (indices, names, UUIDs) on every call.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forgeml.contracts import ExecutionStatus, Executor, GpuDevice, GpuInventory, HealthCheck, LaunchRequest
from forgeml.errors import ForgeError
from forgeml.testing.process import call_opened, close, run_elsewhere

TERMINAL = ("succeeded", "failed", "cancelled", "lost")


def wait_for_end(executor: Any, handle: str, timeout_s: float = 120.0) -> ExecutionStatus:
    """Poll until the attempt leaves ``running``; fail the test when it does not within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = executor.poll(handle)
        assert isinstance(status, ExecutionStatus), f"poll must return ExecutionStatus, got {status!r}"
        if status.state != "running":
            return status
        if time.monotonic() > deadline:
            pytest.fail(f"attempt {handle!r} still running after {timeout_s:.0f}s", pytrace=False)
        time.sleep(0.1)


def _poll_elsewhere(open_executor: Callable[[], Any], handle: str) -> tuple[str, int | None]:
    executor = open_executor()
    try:
        status = wait_for_end(executor, handle)
        return status.state, status.exit_code
    finally:
        close(executor)


def _logs_elsewhere(open_executor: Callable[[], Any], handle: str) -> tuple[str, int]:
    return call_opened(open_executor, "logs", handle, 0)


class ExecutorSuite:
    """Tests every executor must pass; subclass it and define an ``open_executor`` fixture."""

    @pytest.fixture
    def open_executor(self) -> Callable[[], Any]:
        """A picklable callable opening the executor under test: override it."""
        pytest.fail("define an `open_executor` fixture returning a picklable callable that opens your executor "
                    "(see forgeml.testing.process)", pytrace=False)

    @pytest.fixture
    def executor(self, open_executor: Callable[[], Any]) -> Any:
        """The executor under test."""
        executor = open_executor()
        yield executor
        close(executor)

    @pytest.fixture
    def python(self) -> str:
        """The interpreter the attempts run (override for a remote target with another path)."""
        return sys.executable

    @pytest.fixture
    def make_request(self, tmp_path: Path, python: str) -> Callable[..., LaunchRequest]:
        """Build a LaunchRequest running a Python snippet, with its log in a fresh folder."""
        def make(code: str, **env: str) -> LaunchRequest:
            from forgeml.jobs.spec import JobSpec

            job_id = f"conf-{uuid.uuid4().hex[:8]}"
            argv = [python, "-c", code]
            return LaunchRequest(job_id=job_id, attempt=1, argv=argv, env={**os.environ, **env},
                                 workdir=str(tmp_path), log_path=str(tmp_path / job_id / "attempt-1.log"),
                                 spec=JobSpec(command=argv, workdir=str(tmp_path)))

        return make

    def test_implements_the_contract(self, executor: Any) -> None:
        """The executor has every method of the Executor protocol and a name."""
        assert isinstance(executor, Executor)
        assert isinstance(executor.name, str) and executor.name

    def test_success_with_output_and_environment(self, executor: Any, make_request: Callable[..., Any]) -> None:
        """An attempt sees its environment; its output reaches the log; it ends succeeded with exit code 0."""
        request = make_request("import os; print('hello', os.environ['FORGEML_CONFORMANCE'], flush=True)",
                               FORGEML_CONFORMANCE="value-42")
        handle = executor.launch(request)
        assert isinstance(handle, str) and handle, f"launch must return a non-empty string handle, got {handle!r}"
        status = wait_for_end(executor, handle)
        assert (status.state, status.exit_code) == ("succeeded", 0), f"expected succeeded with 0, got {status}"
        text, _ = executor.logs(handle, 0)
        assert "hello value-42" in text, f"expected 'hello value-42' in the log, got {text!r}"

    def test_failure_reports_the_exit_code(self, executor: Any, make_request: Callable[..., Any]) -> None:
        """A non-zero exit is failed with that exit code and a reason."""
        handle = executor.launch(make_request("import sys; print('bye', flush=True); sys.exit(3)"))
        status = wait_for_end(executor, handle)
        assert (status.state, status.exit_code) == ("failed", 3), f"expected failed with exit code 3, got {status}"

    def test_logs_follow_from_an_offset(self, executor: Any, make_request: Callable[..., Any]) -> None:
        """Reading from the returned offset gives only what came after; together every line exactly once."""
        handle = executor.launch(make_request("print('one', flush=True); print('two', flush=True)"))
        wait_for_end(executor, handle)
        text, offset = executor.logs(handle, 0)
        assert offset == len(text.encode()), f"offset must be the bytes read: expected {len(text.encode())}, got {offset}"
        first_line = text.index("\n") + 1
        rest, end = executor.logs(handle, len(text[:first_line].encode()))
        assert text[:first_line] + rest == text and end == offset, f"expected {text!r} in two reads, got {rest!r}"
        assert executor.logs(handle, offset) == ("", offset)

    def test_cancel_stops_the_attempt(self, executor: Any, make_request: Callable[..., Any]) -> None:
        """A cancelled attempt ends within its grace period and is not reported as succeeded."""
        handle = executor.launch(make_request("import time; print('up', flush=True); time.sleep(120)"))
        executor.cancel(handle, grace_s=1.0)
        status = wait_for_end(executor, handle, timeout_s=60.0)
        assert status.state in TERMINAL and status.state != "succeeded", f"expected a stopped attempt, got {status}"

    def test_a_new_instance_and_another_process_follow_a_handle(self, executor: Any, open_executor: Callable[[], Any],
                                                                make_request: Callable[..., Any]) -> None:
        """Handles survive a restart of forgeml: a new executor, here or in another process, polls and reads them."""
        handle = executor.launch(make_request("print('persisted', flush=True)"))
        again = open_executor()
        try:
            status = wait_for_end(again, handle)
        finally:
            close(again)
        assert status.state == "succeeded", f"a new instance expected succeeded, got {status}"
        assert run_elsewhere(_poll_elsewhere, open_executor, handle) == ("succeeded", 0)
        text, _ = run_elsewhere(_logs_elsewhere, open_executor, handle)
        assert "persisted" in text, f"another process expected 'persisted' in the log, got {text!r}"

    def test_check_and_unknown_handles(self, executor: Any) -> None:
        """check() returns HealthCheck values; a handle the executor never issued raises ForgeError."""
        checks = executor.check()
        assert checks and all(isinstance(c, HealthCheck) for c in checks), f"expected HealthChecks, got {checks!r}"
        with pytest.raises(ForgeError):
            executor.poll("not-a-handle")


class GpuInventorySuite:
    """Tests every GPU inventory must pass; subclass it and define an ``inventory`` fixture."""

    @pytest.fixture
    def inventory(self) -> Any:
        """The inventory under test: override it."""
        pytest.fail("define an `inventory` fixture returning your GPU inventory", pytrace=False)

    def test_implements_the_contract(self, inventory: Any) -> None:
        """The inventory has the devices() method of the GpuInventory protocol."""
        assert isinstance(inventory, GpuInventory)

    def test_devices_are_consistent(self, inventory: Any) -> None:
        """Each device is a GpuDevice with a name, sane memory and utilization; indices and UUIDs are unique."""
        devices = inventory.devices()
        assert isinstance(devices, list), f"devices() must return a list, got {type(devices).__name__}"
        for d in devices:
            assert isinstance(d, GpuDevice), f"expected GpuDevice values, got {d!r}"
            assert d.name, f"GPU {d.index} has no name"
            assert 0 <= d.memory_free_mb <= d.memory_total_mb, f"GPU {d.index}: expected 0 <= free <= total, got {d}"
            assert 0.0 <= d.utilization_pct <= 100.0, f"GPU {d.index}: utilization {d.utilization_pct} not in 0..100"
        indices = [d.index for d in devices]
        assert len(set(indices)) == len(indices), f"GPU indices must be unique, got {indices}"
        uuids = [d.uuid for d in devices if d.uuid]
        assert len(set(uuids)) == len(uuids), f"GPU UUIDs must be unique, got {uuids}"

    def test_the_same_gpus_on_every_call(self, inventory: Any) -> None:
        """Two calls list the same GPUs (index, name, UUID, total memory): placement relies on it."""
        first = [(d.index, d.name, d.uuid, d.memory_total_mb) for d in inventory.devices()]
        second = [(d.index, d.name, d.uuid, d.memory_total_mb) for d in inventory.devices()]
        assert first == second, f"expected the same GPUs twice, got {first} then {second}"

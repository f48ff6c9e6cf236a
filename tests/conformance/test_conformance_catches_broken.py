"""The suites fail broken providers, on the rule they break, and say what was expected and what came back.

Each test writes a plugin author's test module holding a correct provider and broken ones (test
doubles built on the real engines), runs pytest on it in a subprocess, and reads the outcome.
"""

from __future__ import annotations

import pytest

BROKEN_ONLINE_STORES = '''
import functools
import shutil
import tempfile

import pytest
from forgeml.storage.online import SQLiteOnlineStore
from forgeml.testing import OnlineStoreSuite


class AmnesiacStore(SQLiteOnlineStore):
    """Keeps everything in a private temporary file: lost on restart, invisible to other processes."""

    def __init__(self, path):
        super().__init__(tempfile.mkdtemp() + "/private.db")


class IsolatedStore(SQLiteOnlineStore):
    """Works on a private copy taken at open and saved back at close: never sees another process's writes."""

    def __init__(self, path):
        self.shared = str(path)
        private = tempfile.mkdtemp() + "/copy.db"
        try:
            shutil.copy(self.shared, private)
        except FileNotFoundError:
            pass
        super().__init__(private)
        self.private = private

    def write(self, *args, **kwargs):
        written = super().write(*args, **kwargs)
        self.close()
        shutil.copy(self.private, self.shared)
        return written


class MillisecondStore(SQLiteOnlineStore):
    """read_rows returns event times in milliseconds instead of microseconds."""

    def read_rows(self, view, keys):
        return [None if r is None else (r[0] // 1000, r[1]) for r in super().read_rows(view, keys)]


class TestGood(OnlineStoreSuite):
    @pytest.fixture
    def open_store(self, tmp_path):
        return functools.partial(SQLiteOnlineStore, tmp_path / "online.db")


class TestAmnesiac(OnlineStoreSuite):
    @pytest.fixture
    def open_store(self, tmp_path):
        return functools.partial(AmnesiacStore, tmp_path / "online.db")


class TestIsolated(OnlineStoreSuite):
    @pytest.fixture
    def open_store(self, tmp_path):
        return functools.partial(IsolatedStore, tmp_path / "online.db")


class TestMilliseconds(OnlineStoreSuite):
    @pytest.fixture
    def open_store(self, tmp_path):
        return functools.partial(MillisecondStore, tmp_path / "online.db")
'''


def run_suite(pytester: pytest.Pytester, source: str) -> tuple[set[str], pytest.RunResult]:
    """Run a plugin author's test module in a subprocess with forgeml's pytest plugin; return the failed tests."""
    pytester.makepyfile(test_author=source)
    result = pytester.runpytest_subprocess("-q", "-rf", "-p", "no:cacheprovider", "-p", "forgeml.testing.fixtures",
                                           "-p", "no:randomly", "-p", "no:xdist")
    failed = {line.split("::", 2)[1] + "::" + line.split("::", 2)[2].split(" ")[0]
              for line in result.outlines if line.startswith("FAILED ")}
    return failed, result


@pytest.fixture(autouse=True)
def _only_forgeml_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner runs load forgeml's pytest plugin (named with -p) and no other installed one."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def test_online_suite_fails_stores_that_forget_isolate_or_use_milliseconds(pytester: pytest.Pytester) -> None:
    """Restart loss, blindness to other processes and millisecond event times each fail their rule."""
    failed, result = run_suite(pytester, BROKEN_ONLINE_STORES)
    out = result.stdout.str()
    assert not {f for f in failed if f.startswith("TestGood::")}, out
    assert {"TestAmnesiac::test_values_survive_a_reopen",
            "TestAmnesiac::test_another_process_sees_the_writes"} <= failed, out
    assert "TestIsolated::test_another_process_sees_the_writes" in failed, out
    assert "TestIsolated::test_values_survive_a_reopen" not in failed, out
    assert {f for f in failed if f.startswith("TestMilliseconds::")} >= {
        "TestMilliseconds::test_read_rows_gives_event_time_in_epoch_microseconds"}, out
    # the message says what was expected and what came back (assertion rewriting shows both values)
    assert "expected 1714566615123456" in out and "got 1714566615123" in out, out


BROKEN_POLICIES = '''
import pytest
from forgeml.jobs.placement import Placement
from forgeml.plugins.local.placement import DefaultPlacementPolicy
from forgeml.testing import PlacementPolicySuite


class Stacker:
    """Puts every GPU job on the first GPUs, whoever holds them."""

    def place(self, pending, gpus, resources):
        return [Placement(r.job_id, tuple(range(r.gpus))) for r in pending]


class Lazy:
    """Never starts anything."""

    def place(self, pending, gpus, resources):
        return []


class TestGood(PlacementPolicySuite):
    @pytest.fixture
    def policy(self):
        return DefaultPlacementPolicy()


class TestStacker(PlacementPolicySuite):
    @pytest.fixture
    def policy(self):
        return Stacker()


class TestLazy(PlacementPolicySuite):
    @pytest.fixture
    def policy(self):
        return Lazy()
'''


def test_placement_suite_fails_a_policy_that_shares_gpus_and_one_that_never_places(pytester: pytest.Pytester) -> None:
    """Sharing an exclusive GPU fails the kernel's plan check; never placing fails the progress rules."""
    failed, result = run_suite(pytester, BROKEN_POLICIES)
    out = result.stdout.str()
    assert not {f for f in failed if f.startswith("TestGood::")}, out
    assert {"TestStacker::test_exclusive_jobs_never_share_a_gpu", "TestStacker::test_held_gpus_are_left_alone",
            "TestStacker::test_gpu_type_and_memory_are_respected"} <= failed, out
    assert "which an exclusive job already holds" in out, out
    assert {"TestLazy::test_starts_a_job_that_fits_an_idle_machine",
            "TestLazy::test_higher_priority_gets_the_last_gpu"} <= failed, out


BROKEN_RUNTIME_MONITOR_NOTIFIER = '''
import functools
import pickle

import numpy as np
import pandas as pd
import pytest
from forgeml.contracts import MonitorResult
from forgeml.errors import PluginError
from forgeml.testing import ModelRuntimeSuite, MonitorSuite, NotifierSuite

_MEMORY = {}


def double(frame):
    frame = frame if isinstance(frame, pd.DataFrame) else frame.to_pandas()
    return (2 * frame["x"]).to_numpy()


class Loaded:
    def __init__(self, fn):
        self.fn = fn

    def predict(self, inputs):
        return self.fn(inputs)


class PickleRuntime:
    flavor = "pickled"

    def save(self, model, path):
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.pkl").write_bytes(pickle.dumps(model))

    def load(self, path, device=None):
        try:
            return Loaded(pickle.loads((path / "model.pkl").read_bytes()))
        except FileNotFoundError as e:
            raise PluginError(f"no model.pkl in {path}") from e


class InMemoryRuntime(PickleRuntime):
    """Keeps the model in this process and writes only a marker: nothing survives elsewhere."""

    def save(self, model, path):
        path.mkdir(parents=True, exist_ok=True)
        _MEMORY[str(path)] = model
        (path / "model.pkl").write_bytes(b"")

    def load(self, path, device=None):
        if str(path) not in _MEMORY:
            raise PluginError(f"no model at {path}")
        return Loaded(_MEMORY[str(path)])


class AlwaysDrift:
    """Says drift whatever the samples."""

    name = "always"
    kinds = ("numeric",)

    def compare(self, column, reference, current):
        return MonitorResult("always", column, 1.0, 0.0, 1.0, True, "major")


class Swallowing:
    """Drops alerts it cannot deliver without saying so."""

    name = "swallow"

    def __init__(self, sink, broken=False):
        self.sink, self.broken = sink, broken

    def notify(self, alert):
        if not self.broken:
            self.sink.append(dict(alert))


def _example():
    frame = pd.DataFrame({"x": np.arange(5.0)})
    return double, frame, 2 * np.arange(5.0)


class TestGoodRuntime(ModelRuntimeSuite):
    open_runtime = pytest.fixture(lambda self: PickleRuntime)
    example = pytest.fixture(lambda self: _example())


class TestInMemoryRuntime(ModelRuntimeSuite):
    open_runtime = pytest.fixture(lambda self: InMemoryRuntime)
    example = pytest.fixture(lambda self: _example())


class TestAlwaysDrift(MonitorSuite):
    monitor = pytest.fixture(lambda self: AlwaysDrift())


class TestSwallowing(NotifierSuite):
    @pytest.fixture
    def sink(self):
        return []

    notifier = pytest.fixture(lambda self, sink: Swallowing(sink))
    delivered = pytest.fixture(lambda self, sink: lambda: sink)
    failing_notifier = pytest.fixture(lambda self, sink: Swallowing(sink, broken=True))
'''


def test_runtime_monitor_and_notifier_suites_fail_broken_ones(pytester: pytest.Pytester) -> None:
    """A runtime keeping models in memory, a monitor that always drifts and a notifier that swallows failures fail."""
    failed, result = run_suite(pytester, BROKEN_RUNTIME_MONITOR_NOTIFIER)
    out = result.stdout.str()
    assert not {f for f in failed if f.startswith("TestGoodRuntime::")}, out
    assert "TestInMemoryRuntime::test_another_process_loads_what_was_saved" in failed, out
    assert "TestAlwaysDrift::test_same_distribution_is_not_drift" in failed, out
    assert "TestSwallowing::test_a_failed_delivery_raises_forge_error" in failed, out
    assert {"TestSwallowing::test_every_field_arrives_unchanged",
            "TestSwallowing::test_alerts_arrive_once_in_order"}.isdisjoint(failed), out

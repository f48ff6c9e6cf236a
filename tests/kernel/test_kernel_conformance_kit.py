"""The conformance kit as a plugin author uses it: subclass a suite in your own test file and run pytest.

The suites must pass a correct store and fail a broken one, on the behaviour that is broken.
"""

from __future__ import annotations

import pytest

GOOD_AND_BROKEN_ARTIFACT_STORES = '''
import os
import shutil
import tempfile

import pytest
from forgeml.storage.artifacts import FsspecArtifactStore
from forgeml.testing import ArtifactStoreSuite


class TrustingStore(FsspecArtifactStore):
    """Reads objects back without checking their digest."""

    def get_bytes(self, digest):
        with self.fs.open(self._path(digest), "rb") as f:
            return f.read()


class PrivateCopyStore(FsspecArtifactStore):
    """Works on a private copy of its root: nothing it stores reaches another instance or process."""

    def __init__(self, root):
        copy = tempfile.mkdtemp(prefix="private-")
        if os.path.isdir(root):
            shutil.copytree(root, copy, dirs_exist_ok=True)
        super().__init__(copy)
        self.root = root


class TestGood(ArtifactStoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        return FsspecArtifactStore(str(tmp_path / "objects"))


class TestTrusting(ArtifactStoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        return TrustingStore(str(tmp_path / "objects"))


class TestPrivateCopy(ArtifactStoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        return PrivateCopyStore(str(tmp_path / "objects"))
'''

GOOD_AND_BROKEN_METADATA_STORES = '''
from contextlib import contextmanager

import pytest
from forgeml.storage.relational import SQLTransaction
from forgeml.storage.sqlite import SQLiteMetadataStore
from forgeml.testing import MetadataStoreSuite


class NoRollbackStore(SQLiteMetadataStore):
    """Commits a transaction even when its body raised."""

    @contextmanager
    def transaction(self):
        conn = self.connection()
        if conn.connection.dbapi_connection.in_transaction:
            yield SQLTransaction(self, conn)
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield SQLTransaction(self, conn)
        finally:
            conn.exec_driver_sql("COMMIT")


class TestGood(MetadataStoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        return SQLiteMetadataStore(tmp_path / "good.db")

    @pytest.fixture
    def reopen(self, tmp_path):
        return lambda: SQLiteMetadataStore(tmp_path / "good.db")


class TestNoRollback(MetadataStoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        return NoRollbackStore(tmp_path / "broken.db")

    @pytest.fixture
    def reopen(self, tmp_path):
        return lambda: NoRollbackStore(tmp_path / "broken.db")
'''


@pytest.fixture(autouse=True)
def _only_forgeml_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs load no other installed pytest plugin (some cannot run nested in one process)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # in a child process: an in-process run would drop the modules it imported (sqlalchemy's compiled
    # parts among them), which cannot be imported again in this one
    return pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", *args)


def _failed_tests(result: pytest.RunResult) -> set[str]:
    return {line.split("::", 2)[1] + "::" + line.split("::", 2)[2].split(" ")[0]
            for line in result.outlines if line.startswith("FAILED ")}


def test_artifact_suite_passes_a_good_store_and_fails_a_trusting_one(pytester: pytest.Pytester) -> None:
    """A store that reads without verifying fails the damaged-object tests; one on a private copy fails the sharing ones."""
    pytester.makepyfile(test_my_store=GOOD_AND_BROKEN_ARTIFACT_STORES)
    result = _run(pytester, "-rf")
    failed = _failed_tests(result)
    assert failed == {"TestTrusting::test_corrupt_object_is_detected",
                      "TestTrusting::test_truncated_object_is_detected",
                      "TestTrusting::test_unknown_digest_is_not_found",
                      "TestPrivateCopy::test_objects_survive_a_reopen",
                      "TestPrivateCopy::test_another_process_sees_the_objects"}, result.stdout.str()
    assert result.parseoutcomes()["passed"] >= 40


def test_metadata_suite_passes_a_good_store_and_fails_one_without_rollback(pytester: pytest.Pytester) -> None:
    """A store whose transactions commit on error fails the rollback tests and nothing else."""
    pytester.makepyfile(test_my_metadata=GOOD_AND_BROKEN_METADATA_STORES)
    result = _run(pytester, "-rf")
    failed = _failed_tests(result)
    assert not {f for f in failed if f.startswith("TestGood::")}, result.stdout.str()
    assert {"TestNoRollback::test_transaction_rolls_back_on_error",
            "TestNoRollback::test_nested_transaction_joins_the_outer_one"} <= failed, result.stdout.str()


def test_a_suite_without_a_store_fixture_says_what_to_define(pytester: pytest.Pytester) -> None:
    """Forgetting the store fixture fails with a message naming it."""
    pytester.makepyfile(test_forgot="""
        from forgeml.testing import ArtifactStoreSuite

        class TestForgot(ArtifactStoreSuite):
            pass
    """)
    result = _run(pytester, "-k", "round_trip_under")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*define a `store` fixture*"])

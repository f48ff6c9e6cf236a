"""What keeps a forgeml process cheap to start: lazy layer packages, plain-file metadata reads, lazy fsspec.

Checks that need a fresh interpreter (what a first import loads) run in a subprocess.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
import textwrap

import pytest

from forgeml import installed

LAYERS = ["tracking", "jobs", "features", "datasets", "registry", "evaluation", "monitoring", "pipelines",
          "tuning", "serving", "recsys"]


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("layer", LAYERS)
def test_every_exported_name_resolves_and_is_listed(layer: str) -> None:
    package = importlib.import_module(f"forgeml.{layer}")
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    assert set(package.__all__) <= set(dir(package))
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018


def test_settings_modules_do_not_import_their_layer() -> None:
    """The plugins read settings dataclasses in every process; that must not load the layers' services."""
    out = _fresh("""
        import sys
        import forgeml.tracking.settings, forgeml.monitoring.settings, forgeml.pipelines.settings
        import forgeml.registry.settings, forgeml.serving.settings, forgeml.tuning.settings, forgeml.jobs.settings
        print(sorted(m for m in sys.modules if m.startswith("forgeml.") and m.count(".") == 2
                     and not m.endswith(".settings")))
    """)
    assert out == "[]"


def test_function_wins_over_a_same_named_submodule_imported_first() -> None:
    out = _fresh("""
        import forgeml.pipelines.triggers, forgeml.registry.evaluations, forgeml.evaluation.compare
        import forgeml.features.status
        from forgeml.pipelines import triggers
        from forgeml.registry import evaluations
        from forgeml.evaluation import compare
        from forgeml.features import status
        print(all(callable(f) and type(f).__name__ == "function" for f in (triggers, evaluations, compare, status)))
    """)
    assert out == "True"


def test_importing_forgeml_and_a_layer_loads_no_heavy_library() -> None:
    out = _fresh("""
        import sys
        import forgeml, forgeml.tracking, forgeml.jobs, forgeml.features, forgeml.registry, forgeml.tuning
        from forgeml.tracking import start_run
        heavy = ("torch", "duckdb", "lancedb", "paramiko", "textual", "pandas", "numpy", "pyarrow", "fsspec")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
    """)
    assert out == "[]"


def test_entry_points_match_importlib_metadata() -> None:
    for group in ("forgeml", "console_scripts", "pytest11"):
        expected = sorted((ep.name, ep.value, ep.dist.name if ep.dist else None, ep.dist.version if ep.dist else None)
                          for ep in importlib.metadata.entry_points(group=group))
        found = sorted((ep.name, ep.value, ep.dist.name if ep.dist else None, ep.dist.version if ep.dist else None)
                       for ep in installed.entry_points(group))
        assert found == expected, group


def test_versions_match_importlib_metadata() -> None:
    names = [dist.metadata["Name"] for dist in importlib.metadata.distributions()][:60]
    names += ["Scikit_Learn", "forgeml", "no-such-distribution-here"]
    expected = {}
    for name in names:
        try:
            expected[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    assert installed.versions(names) == expected
    assert "no-such-distribution-here" not in installed.versions(names)


def test_entry_point_load_resolves_module_and_attribute() -> None:
    ep = installed.EntryPoint("x", "forgeml.installed:EntryPoint.load", "g", None)
    assert ep.load() is installed.EntryPoint.load
    with pytest.raises(ValueError, match="malformed"):
        installed.EntryPoint("x", "not a target!", "g", None).load()


def test_local_artifact_store_stores_without_loading_fsspec(tmp_path) -> None:
    out = _fresh(f"""
        import sys
        from forgeml.storage.artifacts import FsspecArtifactStore
        store = FsspecArtifactStore({str(tmp_path / "objects")!r})
        digest = store.put_bytes(b"diff")
        assert store.exists(digest) and store.put_bytes(b"diff") == digest
        before = "fsspec" in sys.modules
        assert store.get_bytes(digest) == b"diff"
        print(before, [i.digest for i in store.list()] == [digest])
    """)
    assert out == "False True"

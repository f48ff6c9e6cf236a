"""Pytest fixtures for forgeml and its plugin authors (loaded through the ``pytest11`` entry point)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from forgeml.testing import _SUITES

# The suites are imported after this plugin loads, so pytest rewrites their asserts: a failing rule
# then shows the values it compared (expected and got), as in the author's own tests.
pytest.register_assert_rewrite(*sorted(set(_SUITES.values())))


PG_URL_ENV = "FORGEML_PG_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def metadata_section(backend: str, schema: str = "") -> str:
    """Return the plugins.toml ``[storage.metadata]`` table for a backend ("sqlite" or "postgres")."""
    if backend == "sqlite":
        return '[storage.metadata]\nplugin = "sqlite"\n'
    return f'[storage.metadata]\nplugin = "postgres"\nurl = {{ env = "{PG_URL_ENV}" }}\nschema = "{schema}"\n'


def with_metadata_section(text: str, section: str) -> str:
    """Return plugins.toml text with its ``[storage.metadata]`` table replaced by ``section``."""
    kept, skipping = [], False
    for line in text.splitlines():
        header = line.strip()
        if header.startswith("[") and not header.startswith("[["):
            skipping = header == "[storage.metadata]"
        if not skipping:
            kept.append(line)
    return "\n".join(kept).rstrip() + "\n\n" + section


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of a PostgreSQL server for tests, from $FORGEML_PG_URL (skipped when unset, failed under CI)."""
    url = os.environ.get(PG_URL_ENV, "")
    if not url:
        reason = f"set {PG_URL_ENV} to a PostgreSQL server to run the metadata tests on PostgreSQL"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true)", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def metadata_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The metadata store behind the ``workspace`` fixture: "sqlite", or "postgres" when parametrized so.

    With "postgres" each test gets a schema of its own on the server from ``postgres_url`` (dropped
    afterwards), named in plugins.toml, so child processes the test starts use it too. A test run
    chooses backends with ``metafunc.parametrize("metadata_backend", ["sqlite", "postgres"], indirect=True)``.
    """
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield "sqlite"
        return
    url = request.getfixturevalue("postgres_url")
    os.environ.setdefault(PG_URL_ENV, url)
    request.node.forgeml_pg_schema = f"t_{uuid.uuid4().hex[:16]}"
    yield backend


def _metadata_text(request: pytest.FixtureRequest, backend: str) -> str:
    return metadata_section(backend, getattr(request.node, "forgeml_pg_schema", ""))


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metadata_backend: str,
              request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh workspace in a temporary folder, made current for the module-level API."""
    from forgeml.workspace import Workspace, default_config_text, set_current

    root = tmp_path / "ws"
    if metadata_backend != "sqlite":
        root.mkdir(parents=True)
        text = with_metadata_section(default_config_text(), _metadata_text(request, metadata_backend))
        (root / "plugins.toml").write_text(text)
    ws = Workspace.init(root)
    monkeypatch.setenv("FORGEML_HOME", str(root))
    # host-wide GPU leases of a test stay in the test: never the machine's shared host folder
    monkeypatch.setenv("FORGEML_HOST_DIR", str(tmp_path / "host"))
    monkeypatch.chdir(root)
    set_current(ws)
    try:
        yield ws
    finally:
        set_current(None)
        if metadata_backend != "sqlite":
            # the schema holds nothing another test needs: drop it so a long run does not fill the server,
            # once buffered writes (the access log) have reached it
            from forgeml.tracking.writer import flush_all

            ws.flush_pending()
            flush_all()  # writers of other Workspace objects this test opened on the same schema
            ws.metadata.execute(f'DROP SCHEMA IF EXISTS "{request.node.forgeml_pg_schema}" CASCADE')
        ws.close()


@pytest.fixture
def make_plugin_manager() -> Callable[..., Any]:
    """A factory building a PluginHost from the installed plugins plus throwaway ones.

    ``make_plugin_manager(plugin, ("name", other), disabled=["nvml"], local=[...], base_dir=...)``:
    each extra plugin is a module, class or object with ``@hookimpl`` functions, optionally
    given as a ``(name, plugin)`` pair; unnamed ones are named after their ``__name__``. Messages
    about plugins that failed to load are collected in the returned host's ``load_reports``.
    """
    from forgeml.plugin_manager import make_plugin_manager as build

    def factory(
        *plugins: Any,
        disabled: Iterable[str] = (),
        local: Iterable[str] = (),
        base_dir: Path | None = None,
    ) -> Any:
        extra = []
        for i, plugin in enumerate(plugins):
            if isinstance(plugin, tuple):
                extra.append(plugin)
            else:
                name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
                extra.append((name, plugin))
        reports: list[str] = []
        host = build(disabled=disabled, local=local, base_dir=base_dir, extra=extra, report=reports.append)
        host.load_reports = reports
        return host

    return factory


@pytest.fixture
def configure(workspace: object, metadata_backend: str,
              request: pytest.FixtureRequest) -> Iterator[Callable[[str], object]]:
    """Write plugins.toml into the test workspace and reopen it (made current) with that configuration.

    On a parametrized PostgreSQL run the text's ``[storage.metadata]`` table is replaced by the test's.
    """
    from forgeml.workspace import Workspace, set_current

    opened: list[Workspace] = []

    def apply(text: str) -> Workspace:
        if metadata_backend != "sqlite":
            text = with_metadata_section(text, _metadata_text(request, metadata_backend))
        (workspace.root / "plugins.toml").write_text(text)  # type: ignore[attr-defined]
        ws = Workspace(workspace.root)  # type: ignore[attr-defined]
        set_current(ws)
        opened.append(ws)
        return ws

    yield apply
    for ws in opened:
        ws.close()

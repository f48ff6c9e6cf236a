"""Every hook is documented, and README, CI and the default configuration agree with the code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from forgeml import hookspecs
from forgeml.layers import LAYERS, Layer
from forgeml.plugin_manager import PluginHost

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("forgeml_"))


def test_there_are_hooks() -> None:
    """The spec module defines the provider, decision and event hooks."""
    assert len(HOOKS) >= 20
    assert "forgeml_register_artifact_stores" in HOOKS and "forgeml_on_run_finished" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring_saying_what_to_return(hook: str) -> None:
    """Each hook spec says when it is called and what to return."""
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc.splitlines()) >= 2, f"{hook} needs a docstring: when it is called, its arguments, what to return"
    assert "return" in doc.lower(), f"{hook}'s docstring must say what to return"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_docs_plugins_md(hook: str) -> None:
    """docs/plugins.md has a section for each hook with its signature and an example."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    match = re.search(rf"^## `{hook}`\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/plugins.md has no '## `{hook}`' section"
    section = match.group(1)
    params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert re.search(rf"^{hook}\(" + r".*".join(params), section, re.M), f"signature of {hook} is out of date"
    assert f"def {hook}(" in section, f"docs/plugins.md has no example implementing {hook}"


def test_docs_list_no_hook_that_does_not_exist() -> None:
    """A hook removed from hookspecs is removed from the docs too."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    documented = set(re.findall(r"^## `(forgeml_\w+)`", text, re.M))
    assert documented - set(HOOKS) == set()


@pytest.mark.parametrize("hook", [h for h in HOOKS if h.startswith("forgeml_on_")])
def test_every_event_has_a_typed_facade_method(hook: str) -> None:
    """Services announce events through PluginHost, one method per event hook."""
    method = hook.removeprefix("forgeml_")
    assert callable(getattr(PluginHost, method, None)), f"PluginHost lacks {method}()"
    spec_params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    facade_params = list(inspect.signature(getattr(PluginHost, method)).parameters)[1:]
    assert facade_params == spec_params


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)][:2]


def test_readme_opens_with_the_two_fresh_machine_commands() -> None:
    """README's first two commands install and run forgeml, then install and run the tests."""
    run, test = _readme_commands()
    assert run.startswith("pip install torch==2.13.0 && pip install -e . && ")
    assert "forgeml doctor" in run or "forgeml quickstart" in run
    assert test.startswith("pip install torch==2.13.0 && pip install -e '.[dev]' && ")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run installs torch first, then the dev extras, lints, then runs README's test command."""
    test_command = _readme_commands()[1].split(" && ")[-1]
    script = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in script.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert test_command in lines, f".ci/run must run {test_command!r} as its own line"
    order = [next(i for i, line in enumerate(lines) if needle in line) for needle in
             ("torch==2.13.0", "-e '.[dev]'", "ruff check .", "lint-imports")]
    assert order == sorted(order)
    assert lines.index(test_command) > order[-1]
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert "export CI=true" in script and "trap finish EXIT" in script
    finish = script[script.index("finish() {"):]
    assert "stop_services" in finish.split("}")[0] and "kill_strays" in finish.split("}")[0]
    for service in ("redis", "sshd", "slurm"):
        assert f"tests/services/{service}.sh start" in script and f"tests/services/{service}.sh stop" in script
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111


def test_top_level_plugins_toml_is_the_documented_default() -> None:
    """The repository's plugins.toml is exactly what ``forgeml config default`` and ``forgeml init`` write."""
    from forgeml.workspace import default_config_text

    assert (ROOT / "plugins.toml").read_text() == default_config_text(), (
        "plugins.toml is out of date: regenerate it with `forgeml config default > plugins.toml`"
    )


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_every_layer_is_documented_with_its_contract_and_suite(layer: Layer) -> None:
    """Each row of the layer table has its hook in docs/plugins.md naming the contract and the suite to run."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    match = re.search(rf"^## `{layer.hook}`\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/plugins.md has no '## `{layer.hook}`' section"
    section = match.group(1)
    assert f"forgeml.contracts.{layer.contract.__name__}" in section
    assert f"forgeml.testing.{layer.suite}" in section
    if layer.section:
        assert f"[{layer.section}" in section


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_every_layer_has_its_hook_contract_and_suite(layer: Layer) -> None:
    """The table's hook exists as a spec, its contract is a Protocol in forgeml.contracts, its suite is exported."""
    import typing

    from forgeml import contracts, testing

    assert callable(getattr(hookspecs, layer.hook, None)), f"{layer.hook} is not a hook spec"
    assert getattr(contracts, layer.contract.__name__) is layer.contract
    assert getattr(layer.contract, "_is_protocol", False), f"{layer.contract.__name__} is not a Protocol"
    assert layer.suite in testing.__all__, f"forgeml.testing does not export {layer.suite}"
    assert typing.get_type_hints(getattr(hookspecs, layer.hook))["register"] is hookspecs.RegisterProvider

"""Each layer of the layer table has its suite in forgeml.testing, and the built-ins run every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import forgeml.testing
from forgeml.layers import LAYERS

TESTS = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda layer: layer.name)
def test_every_layer_has_a_suite_that_the_built_ins_run(layer) -> None:
    """The suite the layer table names is importable, and some test class in tests/ subclasses it."""
    suite = getattr(forgeml.testing, layer.suite)
    assert suite.__name__ == layer.suite and suite.__doc__
    users = [p for p in TESTS.rglob("test_*.py") if re.search(rf"class \w+\({layer.suite}\)", p.read_text())]
    assert users, f"no test runs {layer.suite} on the built-in {layer.noun}s"


@pytest.mark.parametrize("layer", [layer for layer in LAYERS if layer.name != "metadata_stores"],
                         ids=lambda layer: layer.name)
def test_every_suite_module_states_its_rules(layer) -> None:
    """A suite's module docstring lists the rules it enforces, for plugin authors."""
    module = __import__(getattr(forgeml.testing, layer.suite).__module__, fromlist=["_"])
    assert module.__doc__ and len(module.__doc__.splitlines()) >= 3, f"{module.__name__} needs its rules documented"

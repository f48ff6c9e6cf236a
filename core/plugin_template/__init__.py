"""``forgeml plugin new KIND NAME``: a ready plugin package that passes its layer's conformance suite as written.

The package holds a pyproject with the ``forgeml`` entry point, the provider with a settings
dataclass, and a test subclassing the layer's suite from :mod:`forgeml.testing`; a README says how
to install it and select it in plugins.toml.
"""

from __future__ import annotations

import re
from pathlib import Path

from forgeml.errors import ValidationError, unknown_name

PYPROJECT = '''[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "forgeml-{dist}"
version = "0.1.0"
description = "{description}"
requires-python = ">=3.11"
dependencies = ["forgeml"]

[project.optional-dependencies]
test = ["pytest>=8"]

# forgeml finds the plugin through this entry point, like its own built-ins
[project.entry-points.forgeml]
{name} = "{package}.plugin"

[tool.setuptools]
packages = ["{package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

README = '''# forgeml-{dist}

{description}

    pip install -e .[test]     # forgeml now lists it: forgeml plugins list
    pytest                     # runs forgeml.testing.{suite} against it

Select it in plugins.toml:

{selection}
'''

HEADER = '''"""{description}"""

from __future__ import annotations

{imports}
from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting
'''

def _kinds() -> dict[str, dict[str, str]]:
    from forgeml.plugin_template.compute import COMPUTE
    from forgeml.plugin_template.observing import OBSERVING
    from forgeml.plugin_template.queues import QUEUES
    from forgeml.plugin_template.ranking import RANKING
    from forgeml.plugin_template.stores import STORES

    return {**OBSERVING, **STORES, **COMPUTE, **QUEUES, **RANKING}


KINDS: dict[str, dict[str, str]] = _kinds()
"""Every kind ``plugin new`` writes, each with its suite, description, plugins.toml selection, provider and test."""


def new_plugin(kind: str, name: str, dest: Path) -> Path:
    """Write a plugin package for ``kind`` named ``name`` into dest/forgeml-NAME; return its folder."""
    if kind not in KINDS:
        raise unknown_name("plugin kind", kind, KINDS, "plugin new")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name):
        raise ValidationError(f"plugin name {name!r}: use lower-case letters, digits and _ (a Python identifier)")
    spec = KINDS[kind]
    dist = name.replace("_", "-")
    package = f"forgeml_{name}"
    cls = "".join(part.title() for part in name.split("_")) + "".join(
        part.title() for part in kind.replace("gpu_", "").split("_"))
    values = {"name": name, "dist": dist, "package": package, "cls": cls, "suite": spec["suite"],
              "description": spec["description"]}
    root = dest / f"forgeml-{dist}"
    if root.exists():
        raise ValidationError(f"{root} already exists; choose another name or folder")
    files = {
        "pyproject.toml": PYPROJECT.format(**values),
        "README.md": README.format(selection=spec["selection"].format(**values), **values),
        f"{package}/__init__.py": f'"""{spec["description"]}"""\n',
        f"{package}/plugin.py": HEADER.format(description=spec["description"], imports=spec["imports"])
        + "\n" + spec["plugin"].format(**values),
        f"tests/test_{name}.py": f'"""The {name} {kind} passes forgeml\'s conformance suite."""\n\n'
        + spec["test"].format(**values),
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root

"""Runs one pipeline step inside a scheduler job: ``python -m forgeml.pipelines.worker PAYLOAD RESULT``."""

from __future__ import annotations

import importlib
import importlib.util
import json
import pickle
import sys
from pathlib import Path
from typing import Any


def _function(payload: dict[str, Any]) -> Any:
    """Import the step's module (by name, or from its file) and return the plain step function."""
    module_name, file = payload["module"], payload.get("file")
    if module_name in sys.modules:
        module = sys.modules[module_name]
    elif module_name != "__main__" and not module_name.startswith("forgeml_pipelines_"):
        module = importlib.import_module(module_name)
    else:
        # a script's own __main__ guard must not run again here
        name = "forgeml_step_module" if module_name == "__main__" else module_name
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot import the step's module from {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    found: Any = module
    for part in payload["qualname"].split("."):
        found = getattr(found, part)
    return getattr(found, "fn", found)


def main(argv: list[str] | None = None) -> None:
    """Load the payload from the artifact store, run the step, store its output and write the result file."""
    from forgeml.pipelines.cache import save_output
    from forgeml.workspace import Workspace

    digest, result = (argv or sys.argv[1:])[:2]
    ws = Workspace.find()
    payload = pickle.loads(ws.artifacts.get_bytes(digest))
    value = _function(payload)(*payload["args"], **payload["kwargs"])
    stored = save_output(ws, value)
    Path(result).write_text(json.dumps({"digest": stored.digest, "format": stored.format}))


if __name__ == "__main__":
    main()

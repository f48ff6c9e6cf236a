"""Built-in labeling providers: the local annotation backend and the active-learning query strategies."""

from __future__ import annotations

from forgeml import hookimpl
from forgeml.plugins.labeling.local import LocalBackend, LocalSettings
from forgeml.plugins.labeling.strategies import STRATEGIES


@hookimpl
def forgeml_register_annotation_backends(register):
    """Offer the local backend: tasks kept in the workspace, labelled in ``forgeml tui`` or the API."""
    register("local", LocalBackend, settings=LocalSettings,
             description="tasks in the workspace, labelled in the terminal UI (no server)")


@hookimpl
def forgeml_register_query_strategies(register):
    """Offer least confidence, margin, entropy, diverse (uncertainty plus k-center) and random sampling."""
    for name, (cls, description) in STRATEGIES.items():
        register(name, cls, description=description)

"""Column roles: identifiers, labels and timestamps are described, not compared, by drift reports.

A column's role comes from the workspace's definitions: entity join keys and timestamp fields of the
feature views, entity keys of registered models, and the targets that evaluations used. A drift
report over "every shared column" leaves these out and says why in its ``skipped``.
"""

from __future__ import annotations

from typing import Any

from forgeml.errors import ForgeError


def column_roles(workspace: Any = None, model: str | None = None) -> dict[str, str]:
    """Map each identifier, label and timestamp column of the workspace to why it has that role.

    With ``model`` (a registered model, ``name`` or ``name@ref``), that version's entity keys and its
    feature views' keys and event times come first; every model's entity keys count as identifiers.
    """
    if workspace is None:
        from forgeml.workspace import current

        try:
            workspace = current()
        except ForgeError:  # outside a workspace nothing is known about the columns
            return {}
    roles: dict[str, str] = {}
    from forgeml.features import store_for

    views = {v.name: v for v in store_for(workspace).list_feature_views()}
    if model:
        _model_roles(workspace, model, views, roles)
    for view in views.values():
        for key in view.join_keys:
            roles.setdefault(key, f"identifier: entity key of feature view {view.name!r}")
        if view.timestamp_field:
            roles.setdefault(view.timestamp_field, f"timestamp: event time of feature view {view.name!r}")
    from forgeml.registry.evaluations import evaluation_targets

    for target, dataset in evaluation_targets(workspace).items():
        roles.setdefault(target, f"label: the target evaluations read from {dataset}")
    from forgeml.registry import list_models, resolve

    for row in list_models(workspace=workspace):
        mv = resolve(f"{row['name']}@{row['production'] or row['latest']}", workspace=workspace)
        for key in mv.entity_keys:
            roles.setdefault(key, f"identifier: entity key of model {mv.uri!r}")
    return roles


def _model_roles(workspace: Any, model: str, views: dict[str, Any], roles: dict[str, str]) -> None:
    """Add the roles one registered model's version declares: its entity keys and its views' keys and times."""
    from forgeml.registry import resolve
    from forgeml.registry.models import parse_uri

    name, ref = parse_uri(model)
    mv = None
    # the version asked for, else production, else the newest; a model that was never registered
    # (only its prediction log exists) declares nothing
    for uri in (f"{name}@{'production' if ref == 'latest' else ref}", f"{name}@latest"):
        try:
            mv = resolve(uri, workspace=workspace)
            break
        except ForgeError:
            continue
    if mv is None:
        return
    for key in mv.entity_keys:
        roles.setdefault(key, f"identifier: entity key of model {mv.uri!r}")
    for ref_name in mv.feature_views:
        view = views.get(ref_name.split(":", 1)[0].split("@", 1)[0])
        if view is None:
            continue
        for key in view.join_keys:
            roles.setdefault(key, f"identifier: entity key of feature view {view.name!r}, read by {mv.uri!r}")
        if view.timestamp_field:
            roles.setdefault(view.timestamp_field,
                             f"timestamp: event time of feature view {view.name!r}, read by {mv.uri!r}")

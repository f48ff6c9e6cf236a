"""Column roles: identifiers, labels and timestamps are described, not compared, by drift reports.

A column's role comes from the workspace's definitions: entity join keys and timestamp fields of the
feature views, entity keys of registered models, and the targets that evaluations used. A drift
report over "every shared column" leaves these out and says why in its ``skipped``.
"""

from __future__ import annotations

from typing import Any

from forgeml.errors import ForgeError


def column_roles(workspace: Any = None) -> dict[str, str]:
    """Map each identifier, label and timestamp column of the workspace to why it has that role."""
    if workspace is None:
        from forgeml.workspace import current

        try:
            workspace = current()
        except ForgeError:  # outside a workspace nothing is known about the columns
            return {}
    roles: dict[str, str] = {}
    from forgeml.features import store_for

    for view in store_for(workspace).list_feature_views():
        for key in view.join_keys:
            roles.setdefault(key, f"identifier: entity key of feature view {view.name!r}")
        if view.timestamp_field:
            roles.setdefault(view.timestamp_field, f"timestamp: event time of feature view {view.name!r}")
    from forgeml.registry.evaluations import evaluation_targets

    for target, dataset in evaluation_targets(workspace).items():
        roles.setdefault(target, f"label: the target evaluations read from {dataset}")
    return roles

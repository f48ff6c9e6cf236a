"""Interleaving experiments on the recommendation endpoint: two recommenders' lists merged by team draft.

``forgeml experiment start NAME --policy interleave --arm control=shop --arm candidate=shop_v2`` writes
an experiment file for endpoint ``recommender.shop``; while it runs, each request to
``/v1/recommenders/shop/recommend`` runs both recommenders on the same input, returns one list merged
by team draft (a coin hashed from the request id breaks ties), and logs which arm contributed each
shown item. Clicks come back through ``POST /v1/outcomes`` as the outcome the experiment names, with
the clicked item's 1-based position as the value; ``forgeml experiment status`` credits them.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from forgeml.serving.arms import read_layout, shares_path

INTERLEAVE = "interleave"
TEAM_COLUMN = "team"


class InterleavingLayouts:
    """The running interleaving experiment of each recommender, re-read only when its file changes."""

    def __init__(self, workspace: Any, prefix: str):
        self.dot = getattr(workspace, "dot", None)
        self.prefix = prefix
        self._seen: dict[str, tuple[int, dict[str, Any] | None]] = {}
        self._paths: dict[str, str] = {}  # a pathlib join costs more than the stat checked on every request

    def running(self, name: str) -> dict[str, Any] | None:
        """Return the layout of a running interleaving experiment on recommender ``name``, else None."""
        if self.dot is None:
            return None
        endpoint = self.prefix + name
        path = self._paths.get(name)
        if path is None:
            path = self._paths[name] = str(shares_path(self.dot, endpoint))
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return None
        cached = self._seen.get(name)
        if cached is None or cached[0] != stamp:
            doc = read_layout(self.dot, endpoint)
            ok = doc is not None and doc.get("kind") == INTERLEAVE and doc.get("status") == "running"
            cached = (stamp, doc if ok else None)
            self._seen[name] = cached
        return cached[1]


def merge_answers(layout: dict[str, Any], first: Any, second: Any, request_id: str) -> tuple[dict[str, Any], list[Any]]:
    """Merge the control's and the candidate's answers; return the reply body and (candidate, arm, ranker) rows."""
    from forgeml.feedback.interleaving import team_draft

    control, candidate = layout["arms"]
    rankers = layout["rankers"]
    by_team = {"a": {c.item: c for c in first.items}, "b": {c.item: c for c in second.items}}
    length = max(len(first.items), len(second.items))
    merged = team_draft([c.item for c in first.items], [c.item for c in second.items], length or None,
                        key=request_id) if length else None
    rows = []
    for item, team in zip(merged.items, merged.teams, strict=True) if merged else ():
        arm = control if team == "a" else candidate
        rows.append((by_team[team][item], arm, rankers[arm]))
    body = {**first.to_dict(), "items": [{"item": c.item, "score": c.score, "source": c.source, "sources": c.sources,
                                          TEAM_COLUMN: arm, "ranker": ranker} for c, arm, ranker in rows],
            "experiment": layout["experiment"], "interleaved": dict(rankers),
            "stages_ms": {f"{rankers[control]}.{k}": v for k, v in first.stages_ms.items()}
            | {f"{rankers[candidate]}.{k}": v for k, v in second.stages_ms.items()},
            "fallback": first.fallback or second.fallback}
    return body, rows


def log_impressions(predlog: Any, model: str, layout: dict[str, Any], user: Any, rows: list[Any],
                    request_id: str, latency_ms: float) -> None:
    """Log each shown item with its position, the arm that contributed it and the experiment's name."""
    if predlog is None or not rows:
        return
    n = len(rows)
    inputs = {"user": [str(user)] * n, "item": [str(c.item) for c, _, _ in rows], "position": list(range(1, n + 1)),
              "source": [c.source for c, _, _ in rows], TEAM_COLUMN: [arm for _, arm, _ in rows],
              "ranker": [r for _, _, r in rows], "_experiment": [layout["experiment"]] * n}
    predlog.log(model, 0, INTERLEAVE, request_id, dt.datetime.now(dt.UTC), latency_ms, inputs,
                [c.score for c, _, _ in rows], n)

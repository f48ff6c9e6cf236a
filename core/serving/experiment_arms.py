"""An endpoint's running experiment: its arms as model slots, routing with propensities, the holdout answer.

`forgeml experiment start` writes the experiment file of an endpoint (arms, URIs, holdout, shares);
the endpoint reads it when it starts and on every registry poll, loads the arms' models like any other
arm, and from then on routes each request through the allocator. Each logged prediction carries the
experiment's name and the propensity of its arm (columns ``_experiment`` and ``_propensity``). When the
experiment stops, routing returns to the endpoint's own traffic policy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError
from forgeml.serving.arms import HOLDOUT, Allocator, ArmsConfig, read_layout

log = logging.getLogger("forgeml.serving")
RESERVED_ARMS = ("primary", "shadow", "a", "b", "canary", "backup", "constant")


class ExperimentArms:
    """Mixin for Endpoint: the experiment's allocator and arms, refreshed from the experiment file."""

    name: str
    slots: dict[str, Any]
    predlog: Any
    allocator: Allocator | None
    experiment_doc: dict[str, Any] | None

    def _experiment_dir(self) -> Path | None:
        for slot in self.slots.values():
            workspace = getattr(slot.source, "workspace", None)
            if workspace is not None:
                return Path(workspace.dot)
        return None

    def _read_experiment(self) -> tuple[bool, dict[str, Any] | None, dict[str, Any], Allocator | None]:
        """Read the experiment file: (changed?, the file, slots to add for new arms, the allocator or None)."""
        dot = self._experiment_dir()
        doc = read_layout(dot, self.name) if dot is not None else None
        if doc == self.experiment_doc:
            return False, doc, {}, self.allocator
        if doc is None or doc.get("status") != "running" or "uris" not in doc:
            return True, doc, {}, None
        arms = list(doc["arms"])
        bad = [a for a in arms if a in RESERVED_ARMS]
        if bad:
            raise ConfigError(f"experiment {doc['experiment']!r}: arm name(s) {', '.join(bad)} are taken by the "
                              "endpoint's own arms; rename them")
        uris = dict(doc["uris"])
        if doc.get("holdout_model"):
            uris[HOLDOUT] = doc["holdout_model"]
        new = {}
        for arm, uri in uris.items():
            if not uri:
                raise ConfigError(f"experiment {doc['experiment']!r}: arm {arm!r} has no model URI to serve")
            slot = self.slots.get(arm)
            if slot is None or slot.uri != uri:
                new[arm] = self._make_slot(arm, uri)
        allocator = Allocator(doc["experiment"], ArmsConfig(arms, holdout=float(doc.get("holdout", 0.0))),
                              [float(s) for s in doc["shares"]])
        return True, doc, new, allocator

    def _apply_experiment(self, doc: dict[str, Any] | None, allocator: Allocator | None) -> None:
        if self.allocator is not None and allocator is None:
            log.info("%s: experiment %s ended; routing by the endpoint's own policy", self.name,
                     self.allocator.experiment)
        self.experiment_doc, self.allocator = doc, allocator

    def setup_experiment(self, make_slot: Callable[[str, str], Any]) -> None:
        """At start-up: read the experiment file and add its arms as slots, loaded with the endpoint's others."""
        self._make_slot = make_slot
        self.allocator, self.experiment_doc = None, None
        try:
            _, doc, new, allocator = self._read_experiment()
        except Exception as e:  # a broken experiment file must not stop serving
            log.warning("%s: experiment file not applied: %s", self.name, e)
            return
        self.slots.update(new)
        self._apply_experiment(doc, allocator)

    async def refresh_experiment(self) -> list[str]:
        """On each poll: re-read the experiment file, load new arms' models, then switch routing over."""
        try:
            changed, doc, new, allocator = self._read_experiment()
        except Exception as e:  # the last routing stands until the file is fixed
            log.warning("%s: experiment file not applied: %s", self.name, e)
            return []
        if not changed:
            return []
        loop = asyncio.get_running_loop()
        try:
            for slot in new.values():
                slot.install(await loop.run_in_executor(None, slot.load_and_warm))
        except Exception as e:  # the next poll tries again; until then routing stays as it was
            log.warning("%s: experiment arm not loaded: %s: %s", self.name, type(e).__name__, e)
            return []
        self.slots.update(new)  # every arm is loaded before the allocator may route to it
        self._apply_experiment(doc, allocator)
        return [f"experiment:{doc['experiment'] if doc else 'none'}"] + [
            f"{arm}:v{slot.served.version}" for arm, slot in new.items()]

    def route_experiment(self, key: str) -> tuple[str, dict[str, Any]] | None:
        """Return the experiment arm for a routing key and its log columns, or None without an experiment."""
        allocator = self.allocator
        if allocator is None:
            return None
        arm, propensity = allocator.assign(key)
        return arm, {"_experiment": allocator.experiment, "_propensity": propensity}

    def holdout_answer(self, served: Any, item: Any, request_id: str, started: float,
                       tags: dict[str, Any]) -> dict[str, Any]:
        """Answer a held-out request without any model: the experiment's constant (the baseline decision)."""
        doc = self.experiment_doc or {}
        value = float(doc.get("holdout_constant") or 0.0)
        predictions = [value] * item.n
        if self.predlog is not None:
            inputs = {**item.columns, **{k: [v] * item.n for k, v in tags.items()}}
            self.predlog.log(self.name, 0, HOLDOUT, request_id, dt.datetime.now(dt.UTC),
                             (time.perf_counter() - started) * 1000.0, inputs, predictions, item.n)
        return {"model": self.name, "version": None, "arm": HOLDOUT, "link": "holdout",
                "request_id": request_id, "predictions": predictions}

"""Feature references, retrieval plans and the online answer with per-feature freshness."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from forgeml.errors import ValidationError, unknown_name
from forgeml.features.definitions import FeatureView, OnDemandFeatureView


@dataclass
class ViewPart:
    """The features one stored view contributes to a retrieval."""

    view: FeatureView
    features: list[str]  # what is read (requested plus what on-demand views need)
    outputs: list[str]  # output names, parallel to features
    returned: list[bool]  # whether each feature was requested (else only an on-demand input)
    instants: list[int] | None = None  # positions of the timestamp features (stored as epoch µs); set on first use


@dataclass
class OnDemandPart:
    """An on-demand view's requested features."""

    view: OnDemandFeatureView
    features: list[str]
    outputs: list[str]


@dataclass
class Plan:
    """How to answer a list of feature references."""

    parts: list[ViewPart] = field(default_factory=list)
    on_demand: list[OnDemandPart] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # output names in request order


def parse_ref(ref: str) -> tuple[str, str]:
    """Split "view:feature" into its two names."""
    if not isinstance(ref, str) or ref.count(":") != 1:
        raise ValidationError(f"feature reference {ref!r} must be written 'view:feature'")
    view, feature = ref.split(":")
    return view, feature


def make_plan(refs: Sequence[str], views: dict[str, FeatureView], odfvs: dict[str, OnDemandFeatureView],
              full_feature_names: bool) -> Plan:
    """Resolve references against the registry; unknown names give did-you-mean errors."""
    if isinstance(refs, str) or not refs:
        raise ValidationError("features must be a non-empty list of 'view:feature' references")
    plan = Plan()
    parts: dict[str, ViewPart] = {}
    seen: dict[str, str] = {}

    def part_for(view: FeatureView) -> ViewPart:
        if view.name not in parts:
            parts[view.name] = ViewPart(view, [], [], [])
            plan.parts.append(parts[view.name])
        return parts[view.name]

    def add(view: FeatureView, feature: str, returned: bool) -> None:
        part = part_for(view)
        out = f"{view.name}__{feature}" if full_feature_names else feature
        if feature in part.features:
            i = part.features.index(feature)
            part.returned[i] = part.returned[i] or returned
            return
        part.features.append(feature)
        part.outputs.append(out)
        part.returned.append(returned)

    for ref in refs:
        view_name, feature = parse_ref(ref)
        if view_name in odfvs:
            odfv = odfvs[view_name]
            if feature not in odfv.feature_names:
                raise unknown_name(f"feature of on-demand view {view_name!r}", feature, odfv.feature_names)
            part = next((p for p in plan.on_demand if p.view.name == view_name), None)
            if part is None:
                part = OnDemandPart(odfv, [], [])
                plan.on_demand.append(part)
            out = f"{view_name}__{feature}" if full_feature_names else feature
            part.features.append(feature)
            part.outputs.append(out)
        elif view_name in views:
            view = views[view_name]
            view.feature(feature)  # raises a did-you-mean error for unknown features
            add(view, feature, True)
            out = f"{view_name}__{feature}" if full_feature_names else feature
        else:
            raise unknown_name("feature view", view_name, [*views, *odfvs])
        if out in seen and seen[out] != ref:
            raise ValidationError(f"features {seen[out]!r} and {ref!r} would both be returned as {out!r}; "
                                  f"pass full_feature_names=True")
        seen[out] = ref
        plan.order.append(out)
    for od in plan.on_demand:
        for source in od.view.source_views:
            for feature in views[source].feature_names:
                add(views[source], feature, False)
    return plan


class OnlineFeatures:
    """Values for each entity row plus, per feature, the event time and age of the value served."""

    def __init__(self, entities: dict[str, list[Any]], values: dict[str, list[Any]],
                 event_us: dict[str, list[int | None]], order: list[str]):
        self._entities = entities
        self._values = values
        self._event_us = event_us
        self._order = order
        self.served_at = time.time()

    def to_dict(self) -> dict[str, list[Any]]:
        """Return {column: values}: the entity keys, then each requested feature."""
        out = dict(self._entities)
        for name in self._order:
            out[name] = self._values[name]
        return out

    def to_arrow(self) -> Any:
        """Return the answer as an Arrow table."""
        import pyarrow as pa

        return pa.table(self.to_dict())

    def to_df(self) -> Any:
        """Return the answer as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    to_pandas = to_df

    @property
    def event_timestamps(self) -> dict[str, list[datetime | None]]:
        """Per feature, the event time of each value served (None where nothing was stored)."""
        return {name: [None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC) for us in self._event_us[name]]
                for name in self._order if name in self._event_us}

    @property
    def freshness(self) -> dict[str, list[float | None]]:
        """Per feature, the age in seconds of each value served (None where nothing was stored)."""
        now = self.served_at
        return {name: [None if us is None else now - us / 1e6 for us in self._event_us[name]]
                for name in self._order if name in self._event_us}

    def __repr__(self) -> str:
        return f"OnlineFeatures({self.to_dict()!r})"

"""Per-request warnings about inputs training never saw: unseen categories, numbers outside its range.

Built once per loaded model from the statistics stored with it (only those taken from the training
data, never from a small sample); a request costs a set lookup or two comparisons per value checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MAX_WARNINGS = 20


class InputProfile:
    """What training saw of each input column: the range of a number, the values of a category."""

    def __init__(self, stats: Mapping[str, Mapping[str, Any]], dataset: str = ""):
        self.dataset = dataset or "the training data"
        self.ranges: dict[str, tuple[float, float]] = {}
        self.categories: dict[str, frozenset[str]] = {}
        for name, s in stats.items():
            if not s.get("training"):
                continue
            if s.get("kind") == "number" and "min" in s and "max" in s:
                self.ranges[name] = (float(s["min"]), float(s["max"]))
            elif s.get("kind") == "category" and "values" in s:
                self.categories[name] = frozenset(s["values"])

    def __bool__(self) -> bool:
        return bool(self.ranges or self.categories)

    def warnings(self, columns: Mapping[str, Sequence[Any]], rows: int, where: str) -> list[dict[str, str]]:
        """Return one warning per input value outside what training saw (at most MAX_WARNINGS, then a count)."""
        out: list[dict[str, str]] = []
        more = 0
        for name, seen in self.categories.items():
            values = columns.get(name)
            if values is None:
                continue
            for i in range(min(rows, len(values))):
                value = values[i]
                if value is None or str(value) in seen:
                    continue
                if len(out) < MAX_WARNINGS:
                    out.append({"field": f"{where}[{i}].{name}", "kind": "unseen_category",
                                "message": f"{name} = {value!r} was not seen in {self.dataset}"})
                else:
                    more += 1
        for name, (low, high) in self.ranges.items():
            values = columns.get(name)
            if values is None:
                continue
            for i in range(min(rows, len(values))):
                value = values[i]
                if not isinstance(value, int | float) or isinstance(value, bool) or low <= value <= high:
                    continue
                if isinstance(value, float) and math.isnan(value):
                    continue
                if len(out) < MAX_WARNINGS:
                    side = "below" if value < low else "above"
                    out.append({"field": f"{where}[{i}].{name}", "kind": "out_of_range",
                                "message": f"{name} = {value:g} is {side} the range seen in {self.dataset} "
                                           f"[{low:g}, {high:g}]"})
                else:
                    more += 1
        if more:
            out.append({"field": where, "kind": "more", "message": f"{more} more value(s) outside what training saw"})
        return out

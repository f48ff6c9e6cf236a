"""The cheap links of the fallback chain: the last prediction per entity (with a TTL) and a rule."""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from forgeml.errors import ConfigError

# what a rule may call besides arithmetic, comparisons and `a if cond else b`
RULE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "round": round, "float": float, "int": int,
    "log": math.log, "exp": math.exp, "sqrt": math.sqrt,
}


def request_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the rows (feature values) or entities (keys and request values) of a request body."""
    for container in ("rows", "entities"):
        value = payload.get(container)
        if isinstance(value, list):
            return [r if isinstance(r, dict) else {} for r in value]
    return []


def row_keys(payload: dict[str, Any], entity_keys: Sequence[str], key_field: str) -> list[str] | None:
    """Return one cache key per request row, or None when a row has no usable key.

    An entity request is keyed by its entity keys; a row request by ``key_field`` when set, else by
    all of its values (the same inputs give the same prediction).
    """
    rows = request_rows(payload)
    if not rows:
        return None
    keys = []
    for r in rows:
        if "entities" in payload and entity_keys:
            if any(k not in r for k in entity_keys):
                return None
            keys.append(orjson.dumps([r[k] for k in entity_keys]).decode())
        elif key_field:
            if key_field not in r:
                return None
            keys.append(orjson.dumps(r[key_field]).decode())
        else:
            try:
                keys.append(orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode())
            except TypeError:
                return None
    return keys


class PredictionCache:
    """The last prediction per entity, kept for ``ttl_s`` and at most ``size`` entities (least recent out)."""

    def __init__(self, ttl_s: float, size: int, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.size = size
        self.clock = clock
        self._entries: collections.OrderedDict[str, tuple[float, int, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def put(self, keys: Sequence[str], version: int, predictions: Sequence[Any]) -> None:
        """Remember each row's prediction under its key."""
        now = self.clock()
        with self._lock:
            for key, value in zip(keys, predictions, strict=False):
                self._entries[key] = (now, version, value)
                self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get(self, keys: Sequence[str]) -> tuple[int, list[Any]] | None:
        """Return (version, predictions) when every key has a fresh entry, else None."""
        now = self.clock()
        out = []
        version = 0
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None or now - entry[0] > self.ttl_s:
                    return None
                version = max(version, entry[1])
                out.append(entry[2])
        return version, out

    def __len__(self) -> int:
        return len(self._entries)


class Rule:
    """A one-line expression over a request row's fields, e.g. ``0.9 if amount > 1000 else 0.1``.

    Evaluated with simpleeval: arithmetic, comparisons, ``and``/``or``/``not``, conditional
    expressions and the functions in RULE_FUNCTIONS; no attribute access, imports or calls beyond those.
    """

    def __init__(self, expression: str, where: str = "rule"):
        import ast

        from simpleeval import SimpleEval

        self.expression = expression
        try:
            self._tree = ast.parse(expression.strip(), mode="eval").body
        except SyntaxError as e:
            raise ConfigError(f"{where}: rule {expression!r} is not an expression: {e.msg}") from None
        self._names = sorted({n.id for n in ast.walk(self._tree) if isinstance(n, ast.Name)} - set(RULE_FUNCTIONS))
        self._eval = SimpleEval(functions=dict(RULE_FUNCTIONS))

    @property
    def names(self) -> list[str]:
        """The fields the rule reads."""
        return self._names

    def apply(self, rows: Sequence[dict[str, Any]]) -> list[float]:
        """Evaluate the rule once per row; raise ValueError naming the row when it cannot."""
        from simpleeval import InvalidExpression

        out = []
        for i, r in enumerate(rows):
            missing = [n for n in self._names if n not in r]
            if missing:
                raise ValueError(f"rule {self.expression!r}: row {i} has no {', '.join(missing)}")
            self._eval.names = r
            try:
                value = self._eval.eval(self.expression, previously_parsed=self._tree)
            except (InvalidExpression, ArithmeticError, TypeError, ValueError) as e:
                raise ValueError(f"rule {self.expression!r} failed on row {i}: {e}") from e
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"rule {self.expression!r} gave {value!r} on row {i}, not a number")
            out.append(float(value))
        return out

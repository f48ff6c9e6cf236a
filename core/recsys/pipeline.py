"""A recommender: retrieval from several sources under a time budget, merge, ranking, re-ranking, fallback.

Sources run side by side on a shared thread pool; one that is not done within its own ``timeout_ms``
(or the recommender's ``budget_ms``) is left out of the merge and reported, never waited for. When
ranking fails or overruns ``rank_timeout_ms``, and when no source answers, the fallback source's own
order answers, and the reply says so.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, islice, repeat
from operator import is_, is_not
from typing import Any

from forgeml.contracts import Candidate, RecommendQuery
from forgeml.errors import ForgeError, ValidationError
from forgeml.recsys.cache import CandidateFeatures, feature_name
from forgeml.recsys.merging import Merged, merge, picker
from forgeml.recsys.ranking import ModelSlot
from forgeml.recsys.settings import RecommenderSettings, configured_rules, configured_sources

log = logging.getLogger("forgeml.recsys")


@dataclass
class SourceReport:
    """How one source did for one request."""

    status: str
    """ok, timeout, error or skipped."""
    candidates: int = 0
    ms: float = 0.0
    error: str = ""


@dataclass
class Recommendation:
    """The answer to one request: the top items with scores and sources, per-stage timings and any fallback."""

    recommender: str
    user: Any
    items: list[Candidate]
    stages_ms: dict[str, float]
    sources: dict[str, SourceReport]
    model_version: int | None = None
    fallback: str | None = None
    """Why the fallback answered (None when the pipeline did)."""
    rule_errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON body of the endpoint's reply."""
        return {
            "recommender": self.recommender, "user": self.user,
            "items": [{"item": c.item, "score": c.score, "source": c.source, "sources": c.sources}
                      for c in self.items],
            "model_version": self.model_version, "fallback": self.fallback,
            "stages_ms": {k: round(v, 3) for k, v in self.stages_ms.items()},
            "sources": {k: {"status": r.status, "candidates": r.candidates, "ms": round(r.ms, 3),
                            **({"error": r.error} if r.error else {})} for k, r in self.sources.items()},
            **({"rule_errors": self.rule_errors} if self.rule_errors else {}),
        }


class Recommender:
    """One configured recommender, built from its [serving.recommenders.NAME] table."""

    def __init__(self, name: str, settings: RecommenderSettings, workspace: Any, threads: int = 16,
                 clock: Callable[[], float] = time.perf_counter):
        where = f"[serving.recommenders.{name}]"
        self.name = name
        self.settings = settings
        self.workspace = workspace
        self.clock = clock
        host = workspace.plugins
        self.specs = configured_sources(host, settings, where)
        self.sources = {s.name: s.provider.build(s.settings, workspace) for s in self.specs}
        self.rules = [(r.name, r.provider.build(r.settings, workspace)) for r in configured_rules(host, settings,
                                                                                                  where)]
        self.fallback_source = settings.fallback or next((s.name for s in self.specs if s.plugin == "popularity"),
                                                         self.specs[0].name)
        self.model = ModelSlot(settings.model, workspace) if settings.model else None
        self.features = CandidateFeatures(self.store, settings.user_key, settings.item_key, settings.item_cache_s)
        # a thread per source per concurrent request: sources queued behind other requests' would spend
        # their time budget waiting, and every request would end in the fallback under load
        self._pool = cf.ThreadPoolExecutor(max_workers=max(1, threads) * (len(self.specs) + 1),
                                           thread_name_prefix=f"forgeml-recsys-{name}")

    @property
    def store(self) -> Any:
        """The workspace's feature store."""
        from forgeml.features import store_for

        return store_for(self.workspace)

    def load(self) -> None:
        """Load the ranking model (and let sources that follow a registry URI load theirs), then warm up."""
        if self.model is not None:
            self.model.load()
        for source in self.sources.values():
            refresh = getattr(source, "refresh", None)
            if callable(refresh):
                refresh()
        self.warm()

    def warm(self) -> None:
        """Run each stage once on a stranger so the first real request pays no import or plan-building cost."""
        q = RecommendQuery(None, [], {}, set(), 1)
        for spec in self.specs:
            self._timed(spec.name, q, 1)  # errors come back as values: a source failing here is reported later
        self.features.lookup(None, [None], self._refs(), self._user_features(None))
        model = self.model.current if self.model is not None else None
        if model is not None:
            try:
                model.score({name: [0.0] for name in model.inputs}, 1)
            except (ForgeError, ValueError, TypeError) as e:  # the model may refuse zeros; requests will say so
                log.info("recommender %s: warm-up score failed: %s", self.name, e)

    def poll(self) -> list[str]:
        """Swap in what moved in the registry (ranking model, embedding tables); return what swapped."""
        swapped = []
        if self.model is not None and self.model.poll():
            swapped.append(f"model v{self.model.current.version}")  # type: ignore[union-attr]
        for name, source in self.sources.items():
            refresh = getattr(source, "refresh", None)
            if callable(refresh) and refresh():
                swapped.append(f"source {name}")
        return swapped

    def close(self) -> None:
        """Stop the source threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ one request
    def query(self, user: Any, n: int | None = None, context: dict[str, Any] | None = None,
              recent: list[Any] | None = None, exclude: Iterable[Any] = ()) -> RecommendQuery:
        """Build the query of one request, reading the user's recent items online when the request has none."""
        n = self.settings.n if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValidationError(f"n must be a whole number of at least 1, got {n!r}")
        known = self._user_features(user, recent is None)
        if recent is None and self.settings.recent and user is not None:
            recent = list(known.get(self.settings.recent) or [])
        return RecommendQuery(user, list(recent or []), dict(context or {}), set(exclude), n, known)

    def _user_features(self, user: Any, with_recent: bool = True) -> dict[str, Any]:
        """Read every user-keyed feature the request needs in one lookup: ranking, recent items, declared."""
        if user is None:
            return {}
        declared = [ref for part in (*self.sources.values(), *(rule for _, rule in self.rules))
                    for ref in getattr(part, "user_features", ())]
        wanted = [*self._refs(), *([self.settings.recent] if with_recent and self.settings.recent else []), *declared]
        return self.features.user_values(user, self.features.split(dict.fromkeys(wanted))[0])

    def recommend(self, user: Any, n: int | None = None, context: dict[str, Any] | None = None,
                  recent: list[Any] | None = None, exclude: Iterable[Any] = ()) -> Recommendation:
        """Run retrieval, ranking and re-ranking for one user and return the top n."""
        t0 = self.clock()
        q = self.query(user, n, context, recent, exclude)
        stages: dict[str, float] = {}
        found, reports = self._retrieve(q)
        merged = Merged.of(found, q.exclude, self.settings.max_candidates)
        t1 = self.clock()
        stages["retrieve"] = (t1 - t0) * 1000
        reason = None if merged.items else "no source returned candidates"
        version = None
        window = self._window(q)
        ranked: list[Candidate] = []
        rest: Iterator[Candidate] = iter(())
        if merged.items:
            try:
                ranked, rest, version = self._rank(q, merged, window)
            except (ForgeError, ValueError, TypeError, KeyError, cf.TimeoutError, RuntimeError) as e:
                reason = f"ranking failed: {type(e).__name__}: {e}" if str(e) else "ranking timed out"
                log.warning("recommender %s: %s", self.name, reason)
        t2 = self.clock()
        stages["rank"] = (t2 - t1) * 1000
        if reason is not None:
            fallback = self._fallback(q, reports)
            ranked, rest = fallback[:window], iter(fallback[window:])
        rule_errors: dict[str, str] = {}
        candidates = self._rerank(q, ranked, rule_errors)
        if len(candidates) < q.n:  # rules dropped some: the next ranked candidates, past the window, fill up
            candidates = [*candidates, *islice(rest, q.n - len(candidates))]
        candidates = candidates[:q.n]
        t3 = self.clock()
        stages["rerank"] = (t3 - t2) * 1000
        stages["total"] = (t3 - t0) * 1000
        return Recommendation(self.name, user, candidates, stages, reports, version, reason, rule_errors)

    def _retrieve(self, q: RecommendQuery) -> tuple[list[tuple[str, list[tuple[Any, float]]]], dict[str, SourceReport]]:
        start = self.clock()
        inline = [s for s in self.specs if getattr(self.sources[s.name], "inline", False)]
        pooled = [s for s in self.specs if s not in inline]
        futures = {s.name: self._pool.submit(self._timed, s.name, q, s.k) for s in pooled}
        found = []
        reports: dict[str, SourceReport] = {}
        # a source answering from memory runs here, while the others run in threads: handing it to a thread
        # and back costs more than its work, and under load each hand-off waits for the interpreter lock
        for spec in inline:
            pairs, ms, error = self._timed(spec.name, q, spec.k)
            reports[spec.name] = SourceReport("error", ms=ms, error=error) if error else SourceReport("ok", len(pairs),
                                                                                                      ms)
            if not error:
                found.append((spec.name, pairs))
        # each source gets until its own deadline (timeout_ms capped by budget_ms, from the start of retrieval),
        # checked in deadline order: an answer that arrived by then is used whatever else the machine was doing
        for spec in sorted(pooled, key=self._limit_ms):
            future = futures[spec.name]
            limit_ms = self._limit_ms(spec)
            if limit_ms != float("inf"):
                cf.wait([future], timeout=max(0.0, limit_ms / 1000 - (self.clock() - start)))
            else:
                cf.wait([future])
            if not future.done():
                future.cancel()
                reports[spec.name] = SourceReport("timeout", ms=(self.clock() - start) * 1000)
                continue
            pairs, ms, error = future.result()
            if error:
                reports[spec.name] = SourceReport("error", ms=ms, error=error)
            else:
                reports[spec.name] = SourceReport("ok", len(pairs), ms)
                found.append((spec.name, pairs))
        order = {s.name: i for i, s in enumerate(self.specs)}  # merge in configured order: first finder keeps
        found.sort(key=lambda pair: order[pair[0]])
        return found, {s.name: reports[s.name] for s in self.specs}

    def _limit_ms(self, spec: Any) -> float:
        return min(spec.timeout_ms or float("inf"), self.settings.budget_ms or float("inf"))

    def _timed(self, name: str, q: RecommendQuery, k: int) -> tuple[list[tuple[Any, float]], float, str]:
        start = self.clock()
        try:
            pairs = list(self.sources[name].retrieve(q, k))[:k]
        except Exception as e:  # a broken source is reported in the reply and left out; the others still answer
            log.warning("recommender %s: source %s failed: %s: %s", self.name, name, type(e).__name__, e)
            return [], (self.clock() - start) * 1000, f"{type(e).__name__}: {e}"
        return pairs, (self.clock() - start) * 1000, ""

    def _refs(self) -> list[str]:
        refs: list[str] = []
        model = self.model.current if self.model is not None else None
        for ref in [*(model.feature_refs if model else []), *self.settings.features,
                    *([self.settings.available] if self.settings.available else [])]:
            if ref not in refs:
                refs.append(ref)
        return refs

    def _window(self, q: RecommendQuery) -> int:
        """How many of the ranked candidates the rules see (never fewer than the request's n)."""
        return max(self.settings.rerank_window, q.n) if self.settings.rerank_window else self.settings.max_candidates

    def _rank(self, q: RecommendQuery, merged: Merged,
              window: int) -> tuple[list[Candidate], Iterator[Candidate], int | None]:
        """Return the best ``window`` candidates in ranked order with their features, the rest lazily, the version."""
        import numpy as np

        refs = self._refs()
        columns = self.features.lookup(q.user, merged.items, refs, q.features)
        names = [feature_name(r) for r in refs]
        rows: list[int] | None = None  # the merged rows still in, when some candidates are unavailable
        if self.settings.available and feature_name(self.settings.available) in columns:
            flags = columns[feature_name(self.settings.available)]
            if any(map(is_, flags, repeat(False))):  # only a False flag drops a candidate
                mask = list(map(is_not, flags, repeat(False)))
                rows = list(compress(range(len(flags)), mask))
                columns = {name: list(compress(col, mask)) for name, col in columns.items()}
        count = len(merged.items) if rows is None else len(rows)
        model = self.model.current if self.model is not None else None
        if model is None or not count:
            if self.model is not None:
                raise ValidationError(f"ranking model {self.settings.model} is not loaded")
            version = None
            scores = np.asarray(merged.scores if rows is None else [merged.scores[i] for i in rows], dtype=np.float64)
        else:
            blank = [None] * count
            inputs: dict[str, Sequence[Any]] = {name: columns.get(name, blank) for name in names}
            for key, value in q.context.items():
                if key not in inputs:
                    inputs[key] = [value] * count
            timeout = self.settings.rank_timeout_ms / 1000 if self.settings.rank_timeout_ms else None
            if timeout is None:
                scored = model.score(inputs, count)
            else:
                scored = self._pool.submit(model.score, inputs, count).result(timeout=timeout)
            scores = np.asarray(scored, dtype=np.float64)
            if len(scores) != count:
                raise ValidationError(f"ranking model {self.settings.model} returned {len(scores)} scores for "
                                      f"{count} candidates")
            version = model.version
        # one stable sort of the scores, ties keeping merge order
        order = np.argsort(-scores, kind="stable")
        head = order[:window].tolist()
        # feature dicts, and Candidates at all, only for those the rules will see: each costs microseconds
        present = [name for name in names if name in columns]
        values = zip(*map(picker(head), (columns[name] for name in present))) if head and present else repeat(())
        ranked = [merged.candidate(i if rows is None else rows[i], score, dict(zip(present, row)))
                  for i, score, row in zip(head, scores[order[:window]].tolist(), values)]

        def rest() -> Iterator[Candidate]:
            for i in order[window:].tolist():
                yield merged.candidate(i if rows is None else rows[i], float(scores[i]))

        return ranked, rest(), version

    def _fallback(self, q: RecommendQuery, reports: dict[str, SourceReport]) -> list[Candidate]:
        name = self.fallback_source
        pairs, ms, error = self._timed(name, q, max(q.n * 4, 50))
        reports.setdefault(f"{name} (fallback)", SourceReport("error" if error else "ok", len(pairs), ms, error))
        return merge([(name, pairs)], q.exclude, self.settings.max_candidates)

    def _rerank(self, q: RecommendQuery, candidates: list[Candidate], errors: dict[str, str]) -> list[Candidate]:
        for name, rule in self.rules:
            try:
                candidates = list(rule.rerank(q, candidates))
            except Exception as e:  # a broken rule is skipped and reported; the ranked list still answers
                errors[name] = f"{type(e).__name__}: {e}"
                log.warning("recommender %s: rule %s failed: %s", self.name, name, errors[name])
        return candidates

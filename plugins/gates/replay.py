"""The replay gate: a candidate must answer recorded production traffic about as production did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from forgeml.config import setting
from forgeml.contracts import GateResult
from forgeml.errors import ForgeError


@dataclass
class ReplaySettings:
    """Replay the endpoint's logged requests through the candidate before it may be promoted."""

    endpoint: str = setting("", "Endpoint whose prediction log is replayed (default: the model's name).")
    days: float = setting(7.0, "How many days of recorded traffic to replay.", low=0)
    min_decision_agreement: float | None = setting(
        None, "Least share of requests on which the candidate decides as production did (0..1).", low=0, high=1)
    outcome: str = setting("label", "Outcome joined by request id to score both models (accuracy or MAE).")
    max_metric_drop: float | None = setting(
        None, "How much worse than production the candidate may score on the known outcomes (absolute).")
    min_requests: int = setting(100, "Fewest replayed requests for a verdict.", low=1)


class ReplayGate:
    """Passes when the candidate, replayed on recorded requests, agrees with and scores no worse than production."""

    name = "replay"

    def __init__(self, settings: ReplaySettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace

    def check(self, context: Any) -> GateResult:
        """Replay the recorded window through the candidate version and compare it with production."""
        from forgeml.experiments.replay import replay

        s = self.settings
        mv = context.model_version
        endpoint = s.endpoint or mv.name
        since = datetime.now(UTC) - timedelta(days=s.days)
        try:
            report = replay(f"{mv.name}@{mv.version}", endpoint, start=since, outcome=s.outcome or None,
                            workspace=context.workspace)
        except ForgeError as e:
            return GateResult(self.name, False, f"cannot replay {endpoint!r}: {e}")
        details = report.to_dict()
        if report.requests < s.min_requests:
            return GateResult(self.name, False, f"only {report.requests} recorded requests in the last {s.days:g} "
                              f"days; {s.min_requests} needed", details)
        if s.min_decision_agreement is not None and report.decision_agreement < s.min_decision_agreement:
            return GateResult(self.name, False, f"decides as production on {report.decision_agreement:.1%} of "
                              f"{report.requests} requests, below {s.min_decision_agreement:.1%}", details)
        if s.max_metric_drop is not None and report.production_metric is not None:
            assert report.candidate_metric is not None
            worse = report.candidate_metric - report.production_metric
            if report.metric == "accuracy":
                worse = -worse
            if worse > s.max_metric_drop:
                return GateResult(self.name, False, f"{report.metric} {report.candidate_metric:.4g} against "
                                  f"production's {report.production_metric:.4g} on {report.labelled} known "
                                  f"outcomes", details)
        return GateResult(self.name, True, f"replayed {report.requests} requests: {report.decision_agreement:.1%} "
                          f"same decisions" + (f", {report.metric} {report.candidate_metric:.4g} vs "
                                               f"{report.production_metric:.4g}"
                                               if report.production_metric is not None else ""), details)

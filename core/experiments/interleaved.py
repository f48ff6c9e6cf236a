"""Interleaving experiments: start one between two served recommenders, and credit their teams' clicks.

Each request of the experiment is one unit. Its shown items carry the arm that contributed them (the
``team`` column of the prediction log); its clicks are the outcome the experiment names, with the
clicked position as the value, inside the label window. The arm with more clicked items wins the
request; requests with clicks but no winner are ties, requests without clicks say nothing and are
left out. The preference for the candidate is the mean of +1 (candidate wins), -1 (control wins) and
0 (tie); its p-values are scipy's binomial test over decided requests and the always-valid mSPRT.
"""

from __future__ import annotations

import math
from typing import Any

from forgeml.errors import ValidationError
from forgeml.experiments import stats
from forgeml.experiments.analysis import MetricSpec, Report

INTERLEAVE = "interleave"


def interleaving_spec(ws: Any, name: str, endpoint: str, arms: dict[str, str], control: str | None) -> tuple[
        str, dict[str, str], str]:
    """Check an interleaving experiment's arms (two served recommenders); return (endpoint, arms, control)."""
    from forgeml.serving.recommend import LOG_PREFIX, configured_recommenders

    if len(arms) != 2:
        raise ValidationError(f"an interleaving experiment compares two recommenders, got {len(arms)} arm(s): "
                              "--arm control=shop --arm candidate=shop_v2")
    control = control or next(iter(arms))
    served = configured_recommenders(ws)
    for arm, ranker in arms.items():
        if ranker not in served:
            raise ValidationError(f"arm {arm}: no recommender {ranker!r} in [serving.recommenders]; "
                                  f"configured: {', '.join(sorted(served)) or 'none'}")
    base = endpoint.removeprefix(LOG_PREFIX)
    if arms.get(control) != base:
        raise ValidationError(f"experiment {name!r}: the endpoint must be the control's recommender "
                              f"({arms.get(control)!r}), whose requests are interleaved; got {endpoint!r}")
    ordered = {control: arms[control], **{a: r for a, r in arms.items() if a != control}}
    return LOG_PREFIX + base, ordered, control


def request_clicks(log: Any, outcomes: Any, experiment: str, arms: list[str], outcome: str, window_s: float,
                   now: float) -> Any | None:
    """Per matured request: its latency and the clicked items each arm contributed (None before any request)."""
    import pandas as pd

    df = log.to_pandas() if hasattr(log, "to_pandas") else pd.DataFrame(log)
    if df.empty or "team" not in df or "_experiment" not in df:
        return None
    df = df[df["_experiment"] == experiment]
    df = df.assign(_t=(pd.to_datetime(df["_ts"], utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds())
    df = df[df["_t"] <= now - window_s]
    if df.empty:
        return None
    per = df.groupby("_request_id").agg(_latency_ms=("_latency_ms", "first")).reset_index()
    clicks = outcomes[outcomes["name"] == outcome] if len(outcomes) else outcomes
    if len(clicks):
        shown = df[["_request_id", "position", "team", "_t"]].rename(columns={"_request_id": "request_id"})
        hit = clicks.assign(position=clicks["value"].round().astype("int64")).merge(
            shown, on=["request_id", "position"], how="inner")
        hit = hit[(hit["at"] >= hit["_t"] - 1e-6) & (hit["at"] <= hit["_t"] + window_s)]
        hit = hit.drop_duplicates(["request_id", "position"])  # a click posted twice counts once
        if len(hit):
            counts = hit.groupby(["request_id", "team"]).size().unstack(fill_value=0)
            per = per.merge(counts, left_on="_request_id", right_index=True, how="left")
    for arm in arms:
        per[arm] = per[arm].fillna(0).astype(int) if arm in per else 0
    return per


def analyze_interleaving(name: str, exp: dict[str, Any], log: Any, outcomes: Any, now: float,
                         previous_p: float = 1.0) -> Report:
    """Credit each matured request's clicks to the arm that showed the item and test the preference."""
    import numpy as np

    from forgeml.feedback.interleaving import analyze

    spec = exp["spec"]
    control = spec["control"]
    candidate = next(a for a in spec["arms"] if a != control)
    metric = MetricSpec(**spec["metric"])
    per = request_clicks(log, outcomes, name, [control, candidate], metric.outcome, spec["window_s"], now)
    if per is None:
        return Report(name, now, {a: _arm_row(0, 0, 0, None) for a in (control, candidate)},
                      notes=["no matured interleaved request yet"])
    a, b = per[control].to_numpy(), per[candidate].to_numpy()
    clicked = (a + b) > 0
    winners = np.where(a > b, "a", np.where(b > a, "b", "tie"))[clicked]
    result = analyze(winners.tolist())
    lat = per["_latency_ms"].dropna().to_numpy(dtype=float)
    p99 = float(np.percentile(lat, 99)) if len(lat) else None
    n = int(clicked.sum())
    arms = {control: _arm_row(len(per), n, result.wins_a, p99), candidate: _arm_row(len(per), n, result.wins_b, p99)}
    report = Report(name, now, arms, matured=len(per), pending=0)
    if n < 2:
        report.notes.append(f"{n} request(s) with clicks so far; the preference needs at least 2")
        return report
    scores = np.where(winners == "b", 1.0, np.where(winners == "a", -1.0, 0.0))
    diff = float(scores.mean())
    se = float(scores.std(ddof=1) / math.sqrt(n)) or 1.0 / n  # every request won by one side: the floor 1/n
    z = stats_z(spec["alpha"])
    summary = {arm: stats.ArmSummary(arm, n, wins / n, wins / n, wins / n, 0.0)
               for arm, wins in ((control, result.wins_a), (candidate, result.wins_b))}
    cmp = stats.Comparison(f"{metric.outcome} preference", INTERLEAVE, "team-draft interleaving, binomial test",
                           summary[control], summary[candidate], diff, diff - z * se, diff + z * se,
                           result.p_value, None, extra={"se": se, "ties": result.ties,
                                                        "decided": result.wins_a + result.wins_b})
    stats.add_sequential(cmp, previous_p, tau=0.1, alpha=spec["alpha"])
    report.comparisons.append(cmp.to_dict())
    return report


def stats_z(alpha: float) -> float:
    """The two-sided normal quantile for alpha."""
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def _arm_row(requests: int, clicked: int, wins: int, p99: float | None) -> dict[str, Any]:
    return {"requests": requests, "matured": clicked, "wins": wins, "metric": wins / clicked if clicked else None,
            "latency_p99_ms": p99, "error_rate": 0.0}

"""Start, look at and stop an online experiment; the decision promotes or rolls back through the registry."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from forgeml.errors import ValidationError
from forgeml.experiments.analysis import Guardrails, MetricSpec, Report, analyze_frame, requests_frame
from forgeml.experiments.interleaved import INTERLEAVE, analyze_interleaving, interleaving_spec
from forgeml.feedback import schema
from forgeml.serving.arms import HOLDOUT, ArmsConfig, ArmStats, policy_shares, write_shares
from forgeml.serving.experiment_arms import RESERVED_ARMS


def _ws(workspace: Any) -> Any:
    if workspace is not None:
        return workspace
    from forgeml.workspace import current

    return current()


def parse_duration(text: str | float | int) -> float:
    """Turn a label window such as 30s, 15m, 6h, 7d or 2w (or seconds) into seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
        t = str(text).strip().lower()
        if len(t) < 2 or t[-1] not in units or not t[:-1].replace(".", "", 1).isdigit():
            raise ValidationError(f"window {text!r}: write a number and a unit s, m, h, d or w, e.g. 7d")
        seconds = float(t[:-1]) * units[t[-1]]
    if seconds < 0:
        raise ValidationError(f"window {text!r} must not be negative")
    return seconds


def start_experiment(name: str, endpoint: str, arms: Mapping[str, str], control: str | None = None,
                     policy: str = "fixed", holdout: float = 0.0, epsilon: float = 0.1,
                     weights: list[float] | None = None, holdout_model: str = "", holdout_constant: float = 0.0, metric: MetricSpec | None = None,
                     window: str | float = "1d", alpha: float = 0.05, guardrails: Guardrails | None = None,
                     workspace: Any = None) -> dict[str, Any]:
    """Record a running experiment over an endpoint's arms and publish its first traffic shares."""
    from forgeml.paths import safe_component
    from forgeml.registry.models import parse_uri

    ws = _ws(workspace)
    safe_component(name, "experiment name")
    if not arms:
        raise ValidationError("an experiment needs arms, e.g. --arm control=fraud@production --arm b=fraud@5")
    for arm in arms:
        safe_component(arm, "arm name")
        if arm in RESERVED_ARMS:
            raise ValidationError(f"arm name {arm!r} is taken by the endpoint's own arms "
                                  f"({', '.join(RESERVED_ARMS)}); choose e.g. control and candidate")
    if policy == INTERLEAVE:
        if holdout:
            raise ValidationError("an interleaving experiment shows every request both rankers; it has no holdout")
        endpoint, arms, control = interleaving_spec(ws, name, endpoint, dict(arms), control)
        metric = metric or MetricSpec(outcome="click")
        spec = {"arms": arms, "control": control, "allocation": {"arms": list(arms), "policy": INTERLEAVE},
                "metric": dataclasses.asdict(metric), "window_s": parse_duration(window), "alpha": alpha,
                "guardrails": dataclasses.asdict(guardrails or Guardrails()), "holdout_model": "",
                "holdout_constant": 0.0}
        row = schema.create_experiment(ws, name, endpoint, spec)
        write_shares(ws.dot, endpoint, name, list(arms), [0.5, 0.5],
                     {"kind": INTERLEAVE, "rankers": arms, "status": "running"})
        return row
    for uri in [*arms.values(), holdout_model]:
        if uri:
            parse_uri(uri, require_ref=True)
    control = control or next(iter(arms))
    if control not in arms:
        raise ValidationError(f"control arm {control!r} is not one of the arms {', '.join(arms)}")
    if not 0 < alpha < 1:
        raise ValidationError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    metric = metric or MetricSpec()
    metric.validate()
    config = ArmsConfig(list(arms), policy, list(weights or []), epsilon, holdout,
                        reward="binary" if metric.kind in ("proportion", "accuracy") else "continuous")
    config.validate(f"experiment {name!r}")
    spec = {"arms": dict(arms), "control": control, "allocation": dataclasses.asdict(config),
            "metric": dataclasses.asdict(metric), "window_s": parse_duration(window), "alpha": alpha,
            "guardrails": dataclasses.asdict(guardrails or Guardrails()), "holdout_model": holdout_model,
            "holdout_constant": holdout_constant}
    row = schema.create_experiment(ws, name, endpoint, spec)
    layout = {"uris": dict(arms), "holdout": holdout, "holdout_model": holdout_model,
              "holdout_constant": holdout_constant, "status": "running"}
    write_shares(ws.dot, endpoint, name, config.arms, policy_shares(config), layout)
    return row


def _spec_parts(spec: dict[str, Any]) -> tuple[ArmsConfig, MetricSpec, Guardrails]:
    return ArmsConfig(**spec["allocation"]), MetricSpec(**spec["metric"]), Guardrails(**spec["guardrails"])


def analyze(name: str, now: float | None = None, workspace: Any = None, update: bool = True) -> Report:
    """Look at an experiment now: matured metrics per arm, tests, guardrails; bandit shares are refreshed."""
    from forgeml.feedback.outcomes import read_outcomes
    from forgeml.serving import read_prediction_log

    ws = _ws(workspace)
    exp = schema.get_experiment(ws, name)
    spec = exp["spec"]
    config, metric, guard = _spec_parts(spec)
    log = read_prediction_log(exp["endpoint"], start=_utc(exp["started_at"]), workspace=ws)
    outcomes = read_outcomes(metric.outcomes, since=exp["started_at"], workspace=ws)
    previous = exp["state"].get("sequential_p", {})
    if config.policy == INTERLEAVE:
        candidate = next(a for a in config.arms if a != spec["control"])
        report = analyze_interleaving(name, exp, log, outcomes, time.time() if now is None else now,
                                      previous.get(candidate, 1.0))
    else:
        report = analyze_frame(name, requests_frame(log, name), outcomes, config.arms, spec["control"], metric,
                               spec["window_s"], spec["alpha"], guard, previous, now)
    if update and exp["status"] == "running":
        seq = {c["treatment"]["arm"]: c["sequential_p"] for c in report.comparisons}
        schema.save_state(ws, name, {**exp["state"], "sequential_p": {**previous, **seq}, "looked_at": report.at})
        if config.policy not in ("fixed", INTERLEAVE):
            arm_stats = {a: ArmStats(int(v.get("matured", 0)), float(v["metric"] or 0) * int(v.get("matured", 0)),
                                     0.0) for a, v in report.arms.items() if a != HOLDOUT}
            write_shares(ws.dot, exp["endpoint"], name, config.arms, policy_shares(config, arm_stats))
    return report


def _utc(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def decide(report: Report, spec: dict[str, Any]) -> dict[str, Any]:
    """The decision from a look: roll back on a guardrail breach, promote a significant winner, else keep control."""
    higher = spec["metric"].get("higher_is_better", True)
    if report.breaches:
        return {"action": "rollback", "winner": spec["control"], "reason": "; ".join(report.breaches)}
    best = None
    for c in report.comparisons:
        arm = c["treatment"]["arm"]
        if arm == HOLDOUT or c["sequential_p"] is None or c["sequential_p"] >= spec["alpha"]:
            continue
        better = c["difference"] > 0 if higher else c["difference"] < 0
        if better and (best is None or abs(c["difference"]) > abs(best["difference"])):
            best = c
    if best is None:
        return {"action": "keep", "winner": spec["control"],
                "reason": "no arm beats control at the always-valid significance level"}
    arm = best["treatment"]["arm"]
    return {"action": "promote", "winner": arm, "reason": f"{arm} changes {best['metric']} by "
            f"{best['difference']:+.4g} (always-valid p = {best['sequential_p']:.3g})"}


def status(name: str, now: float | None = None, workspace: Any = None) -> dict[str, Any]:
    """Return an experiment with its latest look; a guardrail breach stops it (rolled back) on the spot."""
    ws = _ws(workspace)
    exp = schema.get_experiment(ws, name)
    report = analyze(name, now, ws)
    out = {"experiment": exp, "report": dataclasses.asdict(report), "decision": exp["decision"]}
    if exp["status"] == "running" and report.breaches:
        out["decision"] = stop(name, now=now, workspace=ws, report=report)["decision"]
    return out


def stop(name: str, promote: bool = True, now: float | None = None, workspace: Any = None,
         report: Report | None = None) -> dict[str, Any]:
    """Stop an experiment with its decision; a winner is promoted through the registry's gates."""
    from forgeml.registry.models import parse_uri, resolve

    ws = _ws(workspace)
    exp = schema.get_experiment(ws, name)
    if exp["status"] != "running":
        return {"experiment": name, "decision": exp["decision"]}
    report = report or analyze(name, now, ws, update=False)
    decision = decide(report, exp["spec"])
    decision["decided_at"] = time.time()
    arms = exp["spec"]["arms"]
    if decision["action"] == "promote" and exp["spec"]["allocation"].get("policy") == INTERLEAVE:
        endpoint = exp["endpoint"].split(".", 1)[1]
        decision["note"] = (f"recommender {arms[decision['winner']]} is preferred: point {endpoint}'s clients at "
                            f"/v1/recommenders/{arms[decision['winner']]}/recommend, or give {endpoint} its settings")
    elif decision["action"] == "promote" and promote:
        from forgeml.registry import promote as registry_promote

        winner = resolve(arms[decision["winner"]], workspace=ws)
        control_name, control_ref = parse_uri(arms[exp["spec"]["control"]], require_ref=True)
        stage = control_ref.upper() if control_ref.lower() in ("production", "staging") else "PRODUCTION"
        # the registry's gates decide: a failing gate raises and the experiment stays running
        registry_promote(winner.name, winner.version, stage, reason=f"experiment {name}: {decision['reason']}",
                         workspace=ws)
        decision["promoted"] = f"{winner.name}@{winner.version} -> {stage}"
        if winner.name != control_name:
            decision["note"] = f"the winner is model {winner.name}, the control serves {control_name}"
    schema.finish_experiment(ws, name, decision)
    config = ArmsConfig(**exp["spec"]["allocation"])
    # serving goes back to the endpoint's own routing, whose primary now serves any promoted version
    shares = [1.0 if a == exp["spec"]["control"] else 0.0 for a in config.arms]
    write_shares(ws.dot, exp["endpoint"], name, config.arms, shares, {"status": "stopped"})
    return {"experiment": name, "decision": decision, "report": dataclasses.asdict(report)}

"""What the screens show, read through the same service functions the CLI calls; no logic of its own."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ForgeError


def _ago(ts: float | None, now: float | None = None) -> str:
    if not ts:
        return ""
    delta = max(0.0, (now or time.time()) - ts)
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= seconds:
            return f"{int(delta // seconds)}{unit} ago"
    return f"{int(delta)}s ago"


@dataclass
class HomeData:
    """Everything the home screen shows."""

    gpus: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    production: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    stale_views: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def gpus(ws: Any) -> list[dict[str, Any]]:
    """Return each GPU's utilization and memory use (empty in CPU mode)."""
    return [
        {"index": d.index, "name": d.name, "util": d.utilization_pct,
         "mem_used": d.memory_total_mb - d.memory_free_mb, "mem_total": d.memory_total_mb}
        for d in ws.gpu_inventory.devices()
    ]


def jobs(ws: Any, limit: int = 500) -> list[dict[str, Any]]:
    """Return the job queue, newest first."""
    from forgeml.jobs import list_jobs

    return [
        {"id": j.id, "name": j.name, "state": j.state, "priority": j.priority, "target": j.target,
         "gpus": ",".join(map(str, j.gpus)) or "-", "attempts": j.attempts, "exit": j.exit_code,
         "reason": j.reason, "submitted": _ago(j.submitted_at), "run_id": j.run_id}
        for j in list_jobs(limit=limit, workspace=ws)
    ]


def job_log(ws: Any, job_id: str, offset: int) -> tuple[str, int]:
    """Return new log text of a job from offset."""
    from forgeml.jobs import read_logs

    return read_logs(job_id, offset=offset, workspace=ws)


def cancel_job(ws: Any, job_id: str) -> str:
    """Cancel a job and return its new state."""
    from forgeml.jobs import cancel

    return cancel(job_id, workspace=ws).state


def retry_job(ws: Any, job_id: str) -> str:
    """Queue a finished job again and return its new state."""
    from forgeml.jobs import retry

    return retry(job_id, workspace=ws).state


def submit_job(ws: Any, command_line: str) -> str:
    """Submit a job from a command line as typed after `forgeml submit`; return its id."""
    import shlex

    from forgeml.jobs import submit
    from forgeml.jobs.flags import spec_from_flags

    argv = shlex.split(command_line)
    if not argv:
        raise ForgeError("type a script or command to submit, e.g. train.py --epochs 3")
    if argv[0].endswith(".py"):
        spec = spec_from_flags(argv[0], argv[1:], None, {})
    else:
        spec = spec_from_flags(None, [], None, {"command": command_line})
    return submit(spec, workspace=ws).id


def runs(ws: Any, query: str = "", limit: int = 10000) -> list[dict[str, Any]]:
    """Return runs matching a tracking query, as table rows."""
    from forgeml.tracking import search_runs

    frame = search_runs(query, workspace=ws) if query else search_runs("", workspace=ws)
    return frame.head(limit).to_dict("records")


def metric_history(ws: Any, run_id: str, key: str) -> tuple[list[float], list[float]]:
    """Return (steps, values) of one metric of one run."""
    from forgeml.tracking import get_metric_history

    frame = get_metric_history(run_id, key, workspace=ws)
    return frame["step"].astype(float).tolist(), frame["value"].astype(float).tolist()


def metric_keys(ws: Any, run_id: str) -> list[str]:
    """Return the metric names a run logged."""
    from forgeml.tracking import get_run

    return sorted(get_run(run_id, workspace=ws).metrics)


def compare(ws: Any, run_ids: list[str]) -> list[dict[str, Any]]:
    """Return runs side by side (one row per field, with a differs flag), as tracking compares them."""
    from forgeml.tracking import compare_runs

    return compare_runs(run_ids, workspace=ws).rows


def models(ws: Any) -> list[dict[str, Any]]:
    """Return every model version with stage and aliases."""
    from forgeml.registry import headline, headline_text, list_models, list_versions

    out = []
    for model in list_models(workspace=ws):
        for v in list_versions(model["name"], workspace=ws):
            out.append({"name": v.name, "version": v.version, "stage": v.stage, "aliases": ", ".join(v.aliases),
                        "flavor": v.flavor, "evaluation": headline_text(headline(v, workspace=ws))})
    return out


def model_detail(ws: Any, name: str, version: int) -> dict[str, Any]:
    """Return a version's evaluations, gate results and the model's audit trail."""
    from forgeml.registry import audit_trail, evaluations, gate_results

    return {
        "evaluations": evaluations(name, version, workspace=ws),
        "gates": gate_results(name, version, workspace=ws),
        "audit": audit_trail(name, workspace=ws),
    }


def promote(ws: Any, name: str, version: int, stage: str = "PRODUCTION") -> Any:
    """Promote a version through its gates; raises GateFailedError listing failing gates."""
    from forgeml.registry import promote as promote_

    return promote_(name, version, stage, reason="promoted from the terminal UI", workspace=ws)


def rollback(ws: Any, name: str) -> Any:
    """Restore the previous production version of a model."""
    from forgeml.registry import rollback as rollback_

    return rollback_(name, reason="rolled back from the terminal UI", workspace=ws)


def feature_views(ws: Any) -> list[dict[str, Any]]:
    """Return each feature view with owner, version and freshness against its SLA."""
    from forgeml.features import store_for

    store = store_for(ws)
    owners = {v.name: v for v in store.list_feature_views()}
    rows = []
    for s in store.status():
        view = owners.get(s.view)
        rows.append({"view": s.view, "version": s.version, "owner": getattr(view, "owner", "") or "",
                     "entities": ", ".join(getattr(view, "entity_names", []) or []) if view else "",
                     "age": "" if s.age_s is None else f"{s.age_s / 3600:.1f}h",
                     "sla": "" if s.freshness_sla_s is None else f"{s.freshness_sla_s / 3600:.1f}h",
                     "stale": "STALE" if s.stale else "ok"})
    return rows


def online_sample(ws: Any, view: str, key: str) -> dict[str, Any]:
    """Return the online values of every feature of a view for one entity key."""
    from forgeml.features import store_for

    store = store_for(ws)
    fv = store.get_feature_view(view)
    join_key = fv.join_keys[0]
    value: Any = int(key) if key.lstrip("-").isdigit() else key
    refs = [f"{view}:{f.name}" for f in fv.features]
    result = store.get_online_features([{join_key: value}], refs)
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def alerts(ws: Any, status: str | None = None) -> list[dict[str, Any]]:
    """Return alerts, newest first."""
    from forgeml.monitoring import list_alerts

    return [
        {"id": a.id, "rule": a.rule, "subject": a.subject, "severity": a.severity, "status": a.status,
         "value": a.value, "message": a.message, "seen": a.occurrences}
        for a in list_alerts(status=status, workspace=ws)
    ]


def experiments(ws: Any) -> list[dict[str, Any]]:
    """Return experiments, newest first: arms, allocation, the smallest always-valid p-value seen, decision."""
    from forgeml.feedback.schema import list_experiments

    rows = []
    for e in list_experiments(ws):
        spec, seq = e["spec"], e["state"].get("sequential_p", {})
        best = min(seq.items(), key=lambda kv: kv[1]) if seq else None
        rows.append({"name": e["name"], "endpoint": e["endpoint"], "status": e["status"],
                     "arms": ", ".join(spec["arms"]), "policy": spec["allocation"]["policy"],
                     "holdout": f"{spec['allocation']['holdout']:.0%}",
                     "best": f"{best[0]} p={best[1]:.3g}" if best else "not looked at",
                     "decision": (e["decision"] or {}).get("action", "")})
    return rows


def acknowledge(ws: Any, alert_id: int) -> None:
    """Acknowledge an alert."""
    from forgeml.monitoring import acknowledge as ack

    ack(alert_id, actor="tui", workspace=ws)


def home(ws: Any) -> HomeData:
    """Gather the home screen; a layer that fails is reported, not fatal."""
    data = HomeData()
    loaders = {
        "gpus": lambda: gpus(ws),
        "jobs": lambda: [j for j in jobs(ws, 50) if j["state"] in ("PENDING", "RUNNING")][:10],
        "runs": lambda: runs(ws, "order by start_time desc limit 10"),
        "production": lambda: [m for m in models(ws) if m["stage"] == "PRODUCTION"],
        "alerts": lambda: alerts(ws, status="open")[:10],
        "stale_views": lambda: [v["view"] for v in feature_views(ws) if v["stale"] == "STALE"],
    }
    for name, load in loaders.items():
        try:
            setattr(data, name, load())
        except ForgeError as e:
            data.problems.append(f"{name}: {e}")
    return data


def serving_summary(ws: Any, hours: float = 24.0) -> list[dict[str, Any]]:
    """Return request count, latency percentiles, error rate and traffic arms per model from the prediction log."""
    from datetime import UTC, datetime, timedelta

    from forgeml.monitoring import read_prediction_log
    from forgeml.monitoring.output import summary
    from forgeml.registry import list_models

    since = datetime.now(UTC) - timedelta(hours=hours)
    out = []
    for model in list_models(workspace=ws):
        log = read_prediction_log(model["name"], start=since, workspace=ws)
        if log.num_rows == 0:
            continue
        figures = summary(log)
        frame = log.select(["_version", "_arm"]).to_pandas()
        out.append({"model": model["name"],
                    "versions": ",".join(str(v) for v in sorted(frame["_version"].unique())),
                    "requests": figures["requests"], "p50_ms": figures["latency_p50"] or 0.0,
                    "p99_ms": figures["latency_p99"] or 0.0, "error_rate": figures["error_rate"] or 0.0,
                    "arms": ", ".join(f"{k}={v}" for k, v in frame["_arm"].value_counts().items())})
    return out


def drift_rows(ws: Any, hours: float = 24.0) -> list[dict[str, Any]]:
    """Return per-feature drift of each production model's recent traffic against its training dataset."""
    from datetime import UTC, datetime, timedelta

    from forgeml.datasets import read_dataset
    from forgeml.monitoring import drift_report, read_prediction_log
    from forgeml.registry import list_models, list_versions

    since = datetime.now(UTC) - timedelta(hours=hours)
    rows = []
    for model in list_models(workspace=ws):
        production = [v for v in list_versions(model["name"], workspace=ws) if v.stage == "PRODUCTION"]
        if not production or not production[0].datasets:
            continue
        current = read_prediction_log(model["name"], start=since, workspace=ws)
        if current.num_rows == 0:
            continue
        reference = read_dataset(production[0].datasets[0], workspace=ws)
        shared = [c for c in reference.column_names if c in current.column_names and not c.startswith("_")]
        if not shared:
            continue
        report = drift_report(reference, current, columns=shared, workspace=ws)
        for col in report.columns:
            best = max(col.results, key=lambda r: abs(r.effect_size or 0.0), default=None)
            if best is None:
                continue
            rows.append({"model": model["name"], "column": col.column, "test": best.test,
                         "statistic": f"{best.statistic:.4g}",
                         "p_value": "" if best.p_value is None else f"{best.p_value:.3g}",
                         "effect_size": "" if best.effect_size is None else f"{best.effect_size:.3g}",
                         "severity": col.severity})
    return rows


def studies(ws: Any) -> list[dict[str, Any]]:
    """Return every tuning study with its best value."""
    from forgeml.tuning import list_studies

    return list_studies(workspace=ws)


def study_detail(ws: Any, study: str) -> dict[str, Any]:
    """Return a study's optimization history (trial number, value, best so far) and parameter importances."""
    from forgeml.tuning import param_importances, study_trials

    trials = study_trials(study, workspace=ws)
    done = trials[trials["state"] == "COMPLETE"].sort_values("number")
    values = done["value"].astype(float).tolist()
    direction = next((s["direction"] for s in studies(ws) if s["name"] == study), "minimize")
    best, best_so_far = None, []
    for v in values:
        best = v if best is None else (min(best, v) if direction == "minimize" else max(best, v))
        best_so_far.append(best)
    try:
        importances = param_importances(study, workspace=ws)
    except ForgeError:
        importances = {}
    return {"numbers": done["number"].astype(float).tolist(), "values": values, "best": best_so_far,
            "importances": importances, "states": trials["state"].value_counts().to_dict()}

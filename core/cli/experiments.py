"""`forgeml experiment`: start, look at and stop online experiments; outcomes, sample sizes and replay."""

from __future__ import annotations

from typing import Any

import click

from forgeml.cli.output import emit_json, print_table


@click.group("experiment")
def experiment_group() -> None:
    """Online experiments: arms with holdout and bandits, late outcomes, sound statistics, replay."""


def _arms(values: tuple[str, ...]) -> dict[str, str]:
    from forgeml.errors import ValidationError

    arms: dict[str, str] = {}
    for value in values:
        name, sep, uri = value.partition("=")
        if not sep or not name.strip():
            raise ValidationError(f"--arm {value!r}: write NAME=MODEL_URI, e.g. --arm candidate=fraud@4")
        arms[name.strip()] = uri.strip()
    return arms


@experiment_group.command("start")
@click.argument("name")
@click.option("--endpoint", required=True, help="Served endpoint whose traffic the experiment splits.")
@click.option("--arm", "arms", multiple=True, required=True, help="NAME=MODEL_URI, repeatable; the first is control.")
@click.option("--control", default=None, help="Control arm (default: the first --arm).")
@click.option("--policy", type=click.Choice(["fixed", "epsilon_greedy", "thompson", "interleave"]), default="fixed",
              show_default=True, help="How traffic is split among the arms; interleave: two recommenders "
                                      "(--arm control=NAME --arm candidate=NAME) merged into every list.")
@click.option("--weights", default="", help="Fixed split weights, comma-separated, one per arm.")
@click.option("--epsilon", type=float, default=0.1, show_default=True, help="Exploration share of epsilon_greedy.")
@click.option("--holdout", type=float, default=0.0, show_default=True, help="Share of keys no model decides for.")
@click.option("--holdout-model", default="", help="Baseline model URI answering the holdout (default: a constant).")
@click.option("--holdout-constant", type=float, default=0.0, show_default=True, help="The holdout's answer.")
@click.option("--metric", "kind", type=click.Choice(["proportion", "mean", "ratio", "accuracy"]),
              default="proportion", show_default=True, help="How the outcome is summarised per arm.")
@click.option("--outcome", default="conversion", show_default=True, help="Outcome name joined by request id.")
@click.option("--denominator", default="", help="Ratio metrics: the outcome in the denominator.")
@click.option("--lower-is-better", is_flag=True, help="The metric is a cost (latency, loss, refunds).")
@click.option("--window", default="1d", show_default=True, help="Label window: outcomes count this long after "
                                                                 "a prediction, which matures then.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level.")
@click.option("--max-p99-ms", type=float, default=None, help="Guardrail: stop when an arm's p99 latency exceeds it.")
@click.option("--max-error-rate", type=float, default=None, help="Guardrail: stop when an arm's error rate exceeds it.")
@click.option("--min-metric", type=float, default=None, help="Guardrail: stop when an arm's metric falls below it.")
def start_cmd(name: str, endpoint: str, arms: tuple[str, ...], control: str | None, policy: str, weights: str,
              epsilon: float, holdout: float, holdout_model: str, holdout_constant: float, kind: str, outcome: str,
              denominator: str, lower_is_better: bool, window: str, alpha: float, max_p99_ms: float | None,
              max_error_rate: float | None, min_metric: float | None) -> None:
    """Start experiment NAME on an endpoint; a running `forgeml serve` picks it up on its next poll."""
    from forgeml.errors import ValidationError
    from forgeml.experiments import Guardrails, MetricSpec, start_experiment

    try:
        w = [float(x) for x in weights.split(",")] if weights.strip() else None
    except ValueError as e:
        raise ValidationError(f"--weights {weights!r}: give numbers separated by commas") from e
    exp = start_experiment(name, endpoint, _arms(arms), control, policy, holdout, epsilon, w, holdout_model,
                           holdout_constant, MetricSpec(kind, outcome, denominator, not lower_is_better), window,
                           alpha, Guardrails(max_p99_ms, max_error_rate, min_metric))
    click.echo(f"experiment {name} started on {endpoint}: arms {', '.join(exp['spec']['arms'])}"
               + (f", holdout {holdout:.0%}" if holdout else "") + f", policy {policy}")


@experiment_group.command("status")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(name: str, as_json: bool) -> None:
    """Look at an experiment now: matured metric per arm, tests against control, guardrails, decision."""
    from forgeml.experiments import status

    out = status(name)
    if as_json:
        emit_json(out)
        return
    report = out["report"]
    rows = [{"arm": arm, "requests": v["requests"], "matured": v.get("matured", 0),
             "metric": None if v.get("metric") is None else round(v["metric"], 5),
             "p99_ms": None if v["latency_p99_ms"] is None else round(v["latency_p99_ms"], 2),
             "errors": round(v["error_rate"], 4)} for arm, v in report["arms"].items()]
    print_table(rows, title=f"experiment {name} ({out['experiment']['status']})")
    tests = [{"arm": c["treatment"]["arm"], "vs": c["control"]["arm"], "test": c["test"],
              "difference": round(c["difference"], 5), "ci": f"[{c['ci_low']:.4g}, {c['ci_high']:.4g}]",
              "p": round(c["p_value"], 5), "always_valid_p": round(c["sequential_p"], 5)}
             for c in report["comparisons"]]
    if tests:
        print_table(tests, title="against control")
    for line in report["breaches"] + report["notes"]:
        click.echo(line)
    if out["decision"]:
        d = out["decision"]
        click.echo(f"decision: {d['action']} {d['winner']}: {d['reason']}")


@experiment_group.command("stop")
@click.argument("name")
@click.option("--no-promote", is_flag=True, help="Record the decision without promoting the winner.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stop_cmd(name: str, no_promote: bool, as_json: bool) -> None:
    """Stop an experiment; a significant winner is promoted through the registry's gates."""
    from forgeml.experiments import stop

    out = stop(name, promote=not no_promote)
    if as_json:
        emit_json(out)
        return
    d = out["decision"] or {}
    click.echo(f"experiment {name} stopped: {d.get('action')} {d.get('winner')}: {d.get('reason')}"
               + (f" ({d['promoted']})" if d.get("promoted") else ""))


@experiment_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(as_json: bool) -> None:
    """List experiments, newest first."""
    from forgeml.feedback.schema import list_experiments
    from forgeml.workspace import current

    rows = [{"name": e["name"], "endpoint": e["endpoint"], "status": e["status"],
             "arms": ",".join(e["spec"]["arms"]), "decision": (e["decision"] or {}).get("action")}
            for e in list_experiments(current())]
    if as_json:
        emit_json(rows)
    elif not rows:
        click.echo("no experiments; start one with `forgeml experiment start`")
    else:
        print_table(rows)


@experiment_group.command("outcomes")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="Outcome name for every row when the file has no name column.")
def outcomes_cmd(path: str, name: str | None) -> None:
    """Import late outcomes from a CSV, Parquet or JSON-lines file (request_id, name, value, time)."""
    from forgeml.feedback import import_outcomes

    click.echo(f"{import_outcomes(path, name=name)} outcomes recorded")


@experiment_group.command("size")
@click.option("--metric", "kind", type=click.Choice(["proportion", "mean", "ratio"]), default="proportion",
              show_default=True)
@click.option("--baseline", type=float, required=True, help="Control's rate or mean.")
@click.option("--mde", type=float, required=True, help="Smallest effect worth finding (absolute unless --relative).")
@click.option("--relative", is_flag=True, help="--mde is a share of the baseline (0.05: +5%).")
@click.option("--sd", type=float, default=None, help="Standard deviation per unit (means and ratios).")
@click.option("--alpha", type=float, default=0.05, show_default=True)
@click.option("--power", type=float, default=0.8, show_default=True)
def size_cmd(kind: str, baseline: float, mde: float, relative: bool, sd: float | None, alpha: float,
             power: float) -> None:
    """How many units each arm needs to find an effect with this power."""
    from forgeml.experiments import sample_size

    emit_json(sample_size(kind, baseline, mde, alpha, power, sd, relative=relative))


@experiment_group.command("replay")
@click.argument("candidate")
@click.option("--endpoint", required=True, help="Endpoint whose logged requests are replayed.")
@click.option("--start", default=None, help="First request time (ISO, UTC).")
@click.option("--end", default=None, help="End of the range (ISO, UTC; exclusive).")
@click.option("--arm", "arms", multiple=True, help="Only requests answered by this arm (repeatable).")
@click.option("--outcome", default=None, help="Score both models against this outcome (e.g. label).")
def replay_cmd(candidate: str, endpoint: str, start: str | None, end: str | None, arms: tuple[str, ...],
               outcome: str | None) -> None:
    """Run CANDIDATE (a model URI) on an endpoint's recorded requests and compare it with production."""
    from forgeml.experiments.replay import replay

    report: Any = replay(candidate, endpoint, start, end, list(arms) or None, outcome)
    emit_json(report.to_dict())


@experiment_group.command("offpolicy")
@click.argument("name")
@click.option("--target", required=True, help="The policy to evaluate: one arm (all traffic to it), or "
                                              "ARM=SHARE pairs, e.g. control=0.2,candidate=0.8.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def offpolicy_cmd(name: str, target: str, as_json: bool) -> None:
    """Estimate experiment NAME's metric under another traffic split (IPS, SNIPS, doubly robust)."""
    from forgeml.experiments.offpolicy import estimate

    out = estimate(name, target)
    if as_json:
        emit_json(out)
        return
    click.echo(f"experiment {name}: {out['requests']} matured requests with logged propensities, logged value "
               f"{out['logged_value']:.5g}; target {', '.join(f'{a}={s:g}' for a, s in out['target'].items())}")
    print_table([{"estimator": e["estimator"], "value": round(e["value"], 5), "std_error": round(e["std_error"], 5),
                  "ci95": f"[{e['value'] - 1.96 * e['std_error']:.4g}, {e['value'] + 1.96 * e['std_error']:.4g}]",
                  "effective_n": round(e["effective_n"], 1)} for e in out["estimates"]], title="off-policy estimates")


@experiment_group.command("feedback-check")
@click.argument("training")
@click.option("--endpoint", required=True, help="Endpoint whose prediction log the labels came from.")
@click.option("--limit", type=float, default=0.9, show_default=True,
              help="Alert when more than this share of labelled rows were decided by a model.")
def feedback_check_cmd(training: str, endpoint: str, limit: float) -> None:
    """Check a training set (dataset name@vN or a .parquet/.csv file with _request_id) for feedback loops."""
    import sys
    from pathlib import Path

    from forgeml.documents import read_table_file
    from forgeml.experiments.feedback_loop import label_provenance

    path = Path(training)
    if path.suffix.lower() in (".parquet", ".csv") or path.exists():
        table: Any = read_table_file(path, "training set")
    else:
        from forgeml.datasets import read_dataset

        table = read_dataset(training)
    out = label_provenance(table, endpoint, limit)
    emit_json(out.to_dict())
    if out.alert_id is not None:
        sys.exit(1)

"""Responsible evaluation: fairness, calibration and robustness gates; feature attribution of drift alerts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import setting
from forgeml.contracts import GateResult


def _newest(mv: Any, dataset: str | None, ws: Any, has: Any) -> dict[str, Any] | None:
    """The version's newest stored evaluation (on dataset when given) whose result passes has()."""
    from forgeml.registry.evaluations import evaluations

    for ev in evaluations(mv.name, mv.version, dataset, workspace=ws):
        if has(ev["result"]):
            return ev
    return None


@dataclass
class FairnessSettings:
    """Group fairness bounds on a sensitive column, and no group worse off than under production."""

    column: str = setting(doc="Sensitive column the evaluation reported fairness for (evaluate --fairness).")
    dataset: str | None = setting(None, "Only count evaluations on this dataset version (name@vN).")
    max_demographic_parity_difference: float | None = setting(None, "Largest accepted gap in selection rates.")
    min_demographic_parity_ratio: float | None = setting(None, "Smallest accepted ratio of selection rates.")
    max_equalized_odds_difference: float | None = setting(None, "Largest accepted TPR or FPR gap.")
    max_equal_opportunity_difference: float | None = setting(None, "Largest accepted true-positive-rate gap.")
    group_metric: str = setting("true_positive_rate", "Per-group rate compared with production (higher is "
                                                      "better): true_positive_rate, accuracy or selection_rate.")
    max_group_drop: float | None = setting(None, "Largest accepted fall of group_metric in any group against "
                                                 "production on the same data; None: no comparison.")


_BOUNDS = (("demographic_parity_difference", "max_demographic_parity_difference", "max"),
           ("demographic_parity_ratio", "min_demographic_parity_ratio", "min"),
           ("equalized_odds_difference", "max_equalized_odds_difference", "max"),
           ("equal_opportunity_difference", "max_equal_opportunity_difference", "max"))


class FairnessGate:
    """Passes when the fairness gaps are within bounds and no group lost more than max_group_drop."""

    name = "fairness"

    def __init__(self, settings: FairnessSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace

    def check(self, context: Any) -> GateResult:
        """Read the candidate's fairness report; compare each group with production's on the same rows."""
        s, ws, mv = self.settings, self.workspace, context.model_version
        label = f"{self.name}({s.column})"
        ev = _newest(mv, s.dataset, ws, lambda r: s.column in (r.get("fairness") or {}))
        if ev is None:
            return GateResult(label, False, f"{mv.uri} has no fairness report by {s.column!r}; run `forgeml "
                              f"evaluate {mv.uri} DATASET --target T --fairness {s.column}` first")
        report = ev["result"]["fairness"][s.column]
        problems, details = [], {"dataset": ev["dataset"]}
        for key, bound, kind in _BOUNDS:
            limit, value = getattr(s, bound), report.get(key)
            details[key] = value
            if limit is None or value is None:
                continue
            if (kind == "max" and value > limit) or (kind == "min" and value < limit):
                problems.append(f"{key} = {value:.3g} ({'above' if kind == 'max' else 'below'} {limit})")
        if s.max_group_drop is not None:
            problems += self._group_drops(context, ev, report, details)
        if problems:
            return GateResult(label, False, "; ".join(problems), details)
        return GateResult(label, True, f"fair by {s.column} on {ev['dataset']}", details)

    def _group_drops(self, context: Any, ev: dict[str, Any], report: dict[str, Any],
                     details: dict[str, Any]) -> list[str]:
        s, ws, prod = self.settings, self.workspace, context.production
        if prod is None or prod.version == context.model_version.version:
            return []
        theirs = _newest(prod, ev["dataset"], ws, lambda r: s.column in (r.get("fairness") or {}))
        if theirs is None:
            from forgeml.evaluation import evaluate

            evaluate(prod, ev["dataset"], target=ev["target"], task=ev["task"], fairness=[s.column], workspace=ws)
            theirs = _newest(prod, ev["dataset"], ws, lambda r: s.column in (r.get("fairness") or {}))
        base = {str(g["group"]): g.get(s.group_metric) for g in theirs["result"]["fairness"][s.column]["groups"]}
        drops = {}
        for g in report["groups"]:
            before, after = base.get(str(g["group"])), g.get(s.group_metric)
            if before is not None and after is not None:
                drops[str(g["group"])] = before - after
        details["group_drops"] = drops
        details["production_version"] = prod.version
        return [f"group {group} {s.group_metric} fell by {drop:.3g} against production v{prod.version} "
                f"(more than {s.max_group_drop})" for group, drop in drops.items() if drop > s.max_group_drop]


@dataclass
class CalibrationSettings:
    """Calibration bounds on the newest evaluation (binary classifiers)."""

    max_ece: float | None = setting(None, "Largest accepted expected calibration error.")
    max_brier: float | None = setting(None, "Largest accepted Brier score.")
    dataset: str | None = setting(None, "Only count evaluations on this dataset version (name@vN).")


class CalibrationGate:
    """Passes when the evaluated ECE and Brier score are within bounds."""

    name = "calibration"

    def __init__(self, settings: CalibrationSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace

    def check(self, context: Any) -> GateResult:
        """Compare the calibration report of the newest evaluation with the bounds."""
        s, mv = self.settings, context.model_version
        ev = _newest(mv, s.dataset, self.workspace, lambda r: bool(r.get("calibration")))
        if ev is None:
            return GateResult(self.name, False, f"{mv.uri} has no calibration report; evaluate it (binary "
                              "classifiers get one)")
        cal = ev["result"]["calibration"]
        details = {"ece": cal["ece"], "brier": cal["brier"], "dataset": ev["dataset"]}
        problems = [f"{k} = {cal[k]:.3g} above {limit}" for k, limit in (("ece", s.max_ece), ("brier", s.max_brier))
                    if limit is not None and cal[k] > limit]
        if problems:
            return GateResult(self.name, False, "; ".join(problems), details)
        return GateResult(self.name, True, f"ECE {cal['ece']:.3g}, Brier {cal['brier']:.3g}", details)


@dataclass
class RobustnessSettings:
    """How far a metric may fall when inputs are perturbed (evaluate --robustness)."""

    metric: str = setting(doc="Metric to watch, e.g. roc_auc or rmse.")
    max_drop: float = setting(doc="Largest accepted worsening of the metric under any perturbation (absolute).")
    higher_is_better: bool = setting(True, "False for losses and errors (rmse, log_loss).")
    dataset: str | None = setting(None, "Only count evaluations on this dataset version (name@vN).")


class RobustnessGate:
    """Passes when no perturbation worsens the metric by more than max_drop and the model takes them all."""

    name = "robustness"

    def __init__(self, settings: RobustnessSettings, workspace: Any):
        self.settings = settings
        self.workspace = workspace

    def check(self, context: Any) -> GateResult:
        """Read the robustness report of the newest evaluation that has one."""
        s, mv = self.settings, context.model_version
        label = f"{self.name}({s.metric})"
        ev = _newest(mv, s.dataset, self.workspace, lambda r: bool(r.get("robustness")))
        if ev is None:
            return GateResult(label, False, f"{mv.uri} has no robustness report; run `forgeml evaluate ... "
                              "--robustness` first")
        problems, details = [], {"dataset": ev["dataset"]}
        for kind, outcome in ev["result"]["robustness"]["perturbations"].items():
            if "error" in outcome:
                problems.append(outcome["error"])
                continue
            change = (outcome.get("change") or {}).get(s.metric)
            if change is None:
                continue
            worse = -change if s.higher_is_better else change
            details[kind] = worse
            if worse > s.max_drop:
                problems.append(f"{s.metric} worsens by {worse:.3g} under {kind} (more than {s.max_drop})")
        if problems:
            return GateResult(label, False, "; ".join(problems), details)
        return GateResult(label, True, f"{s.metric} holds under {', '.join(k for k in details if k != 'dataset')}",
                          details)


@hookimpl
def forgeml_register_gates(register):
    """Offer the fairness, calibration and robustness gates."""
    register("fairness", FairnessGate, settings=FairnessSettings,
             description="group fairness bounds; no group worse off than under production")
    register("calibration", CalibrationGate, settings=CalibrationSettings,
             description="expected calibration error and Brier score within bounds")
    register("robustness", RobustnessGate, settings=RobustnessSettings,
             description="a metric holds up under noisy, missing and swapped inputs")


@hookimpl
def forgeml_on_alert_fired(alert, workspace):
    """Attribute an output-drift alert's score shift to features (stored in the alert's details)."""
    from forgeml.monitoring.why import OUTPUT_DRIFT_METRICS, explain_alert_quietly

    if alert.metric in OUTPUT_DRIFT_METRICS:
        explain_alert_quietly(alert, workspace)

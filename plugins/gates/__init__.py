"""Built-in promotion gates: metric thresholds, no regression, approvals, custom command, replay."""

from __future__ import annotations

from forgeml import hookimpl


@hookimpl
def forgeml_register_gates(register):
    """Offer the built-in gates."""
    from forgeml.plugins.gates import builtin as g
    from forgeml.plugins.gates import replay

    register("metric_threshold", g.MetricThresholdGate, settings=g.MetricThresholdSettings,
             description="a metric must lie within [min, max]")
    register("no_regression", g.NoRegressionGate, settings=g.NoRegressionSettings,
             description="no worse than production beyond a tolerance, on the same dataset version")
    register("approvals", g.ApprovalsGate, settings=g.ApprovalsSettings,
             description="named reviewers must approve")
    register("command", g.CommandGate, settings=g.CommandSettings, description="a command must exit 0")
    register("replay", replay.ReplayGate, settings=replay.ReplaySettings,
             description="recorded production requests replayed through the candidate agree with production")

"""Evaluation charts as PNG and SVG artifacts: reliability curve, importance bars, per-group rates."""

from __future__ import annotations

import io
from typing import Any


def _figures(result: Any) -> dict[str, Any]:
    """Build one matplotlib figure per chart the result has data for."""
    from matplotlib.figure import Figure

    figures = {}
    curve = (result.calibration or {}).get("curve")
    if curve and curve["predicted"]:
        fig = Figure(figsize=(4.5, 4.5))
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        ax.plot(curve["predicted"], curve["observed"], marker="o", label="model")
        ax.set(xlabel="mean predicted probability", ylabel="observed positive rate",
               title=f"reliability (Brier {result.calibration['brier']:.3f}, ECE {result.calibration['ece']:.3f})")
        ax.legend(loc="upper left")
        figures["reliability"] = fig
    rows = (result.importance or {}).get("features") or []
    if rows:
        shown = rows[:15][::-1]
        fig = Figure(figsize=(6, 0.35 * len(shown) + 1.2))
        ax = fig.add_subplot()
        ax.barh([r["feature"] for r in shown], [r["mean_abs_shap"] for r in shown])
        ax.set(xlabel="mean |SHAP|", title="feature importance")
        fig.tight_layout()
        figures["importance"] = fig
    for column, report in (result.fairness or {}).items():
        groups = report["groups"]
        fig = Figure(figsize=(6, 3.5))
        ax = fig.add_subplot()
        names = [str(g["group"]) for g in groups]
        width = 0.4
        xs = range(len(names))
        ax.bar([x - width / 2 for x in xs], [g["selection_rate"] or 0 for g in groups], width, label="selection rate")
        ax.bar([x + width / 2 for x in xs], [g["true_positive_rate"] or 0 for g in groups], width,
               label="true positive rate")
        ax.set_xticks(list(xs), names)
        ax.set(ylim=(0, 1), title=f"rates by {column}")
        ax.legend()
        fig.tight_layout()
        figures[f"groups_{column}"] = fig
    return figures


def store_plots(result: Any, workspace: Any) -> dict[str, str]:
    """Render the result's charts as PNG and SVG, store them as artifacts; return {file name: digest}."""
    from forgeml.explain.attributions import optional

    optional("matplotlib")
    out = {}
    for name, fig in _figures(result).items():
        for fmt in ("png", "svg"):
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=100)
            out[f"{name}.{fmt}"] = workspace.artifacts.put_bytes(buf.getvalue())
    return out

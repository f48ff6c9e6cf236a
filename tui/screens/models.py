"""Models: versions, stages and aliases; evaluations and gate results; promote and rollback with confirmation."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Label, Static

from forgeml.tui import data
from forgeml.tui.screens.base import DataScreen, fill

COLUMNS = ["name", "version", "stage", "aliases", "flavor", "evaluation"]


class ModelsScreen(DataScreen):
    """Every model version; the side pane shows the highlighted one's evidence."""

    refresh_s = 3.0
    BINDINGS = [("p", "promote", "Promote"), ("b", "rollback", "Rollback")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.cursor = 0

    def compose(self) -> ComposeResult:
        """Versions left, evidence right."""
        yield Header()
        with Horizontal():
            yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="model-detail")
        yield Footer()

    def load(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Read the versions and the highlighted one's evaluations, gates and audit trail."""
        rows = data.models(self.ws)
        current = self._current(rows)
        detail = data.model_detail(self.ws, current["name"], int(current["version"])) if current else None
        return rows, detail

    def show(self, loaded: tuple[list[dict[str, Any]], dict[str, Any] | None]) -> None:
        """Fill the table and the detail pane."""
        self.rows, detail = loaded
        fill(self.query_one("#models-table", DataTable), self.rows, COLUMNS)
        self.query_one("#model-detail", Static).update(_detail_text(self._current(self.rows), detail))

    def _current(self, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        return rows[self.cursor] if rows and self.cursor < len(rows) else None

    @on(DataTable.RowHighlighted, "#models-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Show the highlighted version's evidence."""
        if event.cursor_row != self.cursor:
            self.cursor = event.cursor_row
            self.reload()

    def action_promote(self) -> None:
        """Promote the highlighted version to production after confirmation; gates decide."""
        current = self._current(self.rows)
        if not current:
            return
        name, version = current["name"], int(current["version"])

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_action(data.promote, self.ws, name, version,
                                done=f"{name} v{version} is now in production")

        self.app.push_screen(ConfirmScreen(f"Promote {name} v{version} to PRODUCTION? Every gate runs first."),
                             confirmed)

    def action_rollback(self) -> None:
        """Restore the previous production version after confirmation."""
        current = self._current(self.rows)
        if not current:
            return
        name = current["name"]

        def confirmed(ok: bool | None) -> None:
            if ok:
                self.run_action(data.rollback, self.ws, name, done=f"{name} rolled back")

        self.app.push_screen(ConfirmScreen(f"Roll {name} back to its previous production version?"), confirmed)


def _detail_text(current: dict[str, Any] | None, detail: dict[str, Any] | None) -> str:
    from rich.markup import escape

    if not current or not detail:
        return "[dim]no model registered yet[/dim]"
    lines = [f"[b]{escape(current['name'])} v{current['version']}[/b]  {current['stage']}"]
    for ev in detail["evaluations"][:2]:
        result = ev.get("result") or {}
        metrics = ev.get("metrics") or {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:6] if isinstance(v, int | float))
        lines.append(f"eval on {escape(str(ev.get('dataset', '')))}: {escape(shown)}")
        for column, slices in (result.get("slices") or {}).items():
            key = "roc_auc" if any("roc_auc" in sl.get("metrics", {}) for sl in slices) else None
            parts = []
            for sl in slices[:8]:
                values = sl.get("metrics", {})
                name = key or next(iter(values), "")
                value = values.get(name)
                if isinstance(value, int | float):
                    parts.append(f"{sl.get('value')} {value:.3f}")
            lines.append(f"  by {escape(str(column))} ({key or 'metric'}): {escape(', '.join(parts))}")
        lines.extend(_importance_lines(result.get("importance") or {}))
        lines.extend(_responsible_lines(result))
    if detail["gates"]:
        lines.append("[b]gates[/b]")
        for g in detail["gates"][:8]:
            mark = "[green]pass[/green]" if g.get("passed") else "[red]FAIL[/red]"
            lines.append(f"  {mark} {escape(str(g.get('gate')))}: {escape(str(g.get('message', '')))}")
    lines.append("[b]audit[/b]")
    for a in detail["audit"][:8]:
        lines.append(f"  {escape(str(a.get('action', '')))} {escape(str(a.get('subject', '')))} "
                     f"by {escape(str(a.get('actor', '')))}")
    return "\n".join(lines)


def _importance_lines(importance: dict[str, Any], top: int = 8, width: int = 20) -> list[str]:
    """Bars of mean |SHAP| per feature, with the permutation importance beside each."""
    from rich.markup import escape

    rows = importance.get("features") or []
    if not rows:
        return []
    largest = max(r["mean_abs_shap"] for r in rows[:top]) or 1.0
    label = max(len(str(r["feature"])) for r in rows[:top])
    lines = [f"  importance (mean |SHAP|, permutation {escape(str(importance.get('metric', '')))})"]
    for r in rows[:top]:
        bar = "█" * max(1, round(width * r["mean_abs_shap"] / largest))
        lines.append(f"  {escape(str(r['feature'])).ljust(label)} [cyan]{bar}[/cyan] {r['mean_abs_shap']:.3g}"
                     f"  ({r['permutation']:+.3g})")
    return lines


def _reliability_chart(curve: dict[str, Any], width: int = 36, height: int = 8) -> list[str]:
    """The reliability curve drawn by plotext, as plain text lines."""
    import re

    import plotext as plt

    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(width, height)
    plt.plot([0, 1], [0, 1])
    plt.plot(curve["predicted"], curve["observed"], marker="dot")
    text = re.sub(r"\x1b\[[0-9;]*m", "", plt.build())
    plt.clear_figure()
    return text.rstrip("\n").splitlines()


def _responsible_lines(result: dict[str, Any]) -> list[str]:
    """Calibration (with its reliability curve), per-group rates and the worst slices."""
    from rich.markup import escape

    lines = []
    cal = result.get("calibration") or {}
    if cal:
        lines.append(f"  calibration: Brier {cal['brier']:.3f}, ECE {cal['ece']:.3f}; reliability "
                     "(predicted vs observed, diagonal: calibrated)")
        lines.extend(f"  {escape(line)}" for line in _reliability_chart(cal["curve"]))
    for column, report in (result.get("fairness") or {}).items():
        rates = ", ".join(f"{g['group']} {g['selection_rate']:.2f}/{g['true_positive_rate'] or 0:.2f}"
                          for g in report.get("groups", [])[:6])
        lines.append(f"  by {escape(str(column))} selection/TPR: {escape(rates)}")
    for sl in (result.get("weak_slices") or [])[:3]:
        lines.append(f"  [yellow]weak slice[/yellow] {escape(sl['slice'])} ({sl['rows']} rows, loss "
                     f"{sl['mean_loss']:.3g} vs {sl['overall_loss']:.3g})")
    return lines


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no."""

    BINDINGS = [("escape", "no", "Cancel"), ("y", "yes", "Yes"), ("n", "no", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        """The question and two buttons."""
        with Vertical(id="dialog"):
            yield Label(self.question)
            with Horizontal():
                yield Button("Yes (y)", variant="primary", id="yes")
                yield Button("No (n)", id="no")

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        """Answer with the button."""
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        """Answer yes."""
        self.dismiss(True)

    def action_no(self) -> None:
        """Answer no."""
        self.dismiss(False)

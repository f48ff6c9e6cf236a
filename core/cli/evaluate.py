"""`forgeml evaluate MODEL@VERSION DATASET@VERSION`: metrics, slices, fairness, stored with the version."""

from __future__ import annotations

import click

from forgeml.cli.output import emit_json, print_table


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))


@click.command("evaluate")
@click.argument("model")
@click.argument("dataset")
@click.option("--target", required=True, help="Column holding the true values.")
@click.option("--task", type=click.Choice(["classification", "regression", "ranking"]), help="Default: inferred.")
@click.option("--slice", "slices", multiple=True, help="Column to report metrics per value of (repeatable).")
@click.option("--fairness", multiple=True, help="Sensitive column to report group fairness for (repeatable).")
@click.option("--query-column", help="Column grouping rows into queries (ranking).")
@click.option("-k", "k", default=10, show_default=True, help="Cut-off for NDCG@k and hit rate@k.")
@click.option("--challenger", help="Compare MODEL (champion) with this model on the same rows, with bootstrap CIs.")
@click.option("--n-boot", default=1000, show_default=True, help="Bootstrap resamples for --challenger.")
@click.option("--no-store", is_flag=True, help="Do not store the result with the model version.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate_cmd(model: str, dataset: str, target: str, task: str | None, slices: tuple[str, ...],
                 fairness: tuple[str, ...], query_column: str | None, k: int, challenger: str | None, n_boot: int,
                 no_store: bool, as_json: bool) -> None:
    """Evaluate MODEL (name@version|stage|alias) on DATASET (name@vN) and store the result with the version."""
    from forgeml.evaluation import compare, evaluate

    if challenger:
        result = compare(model, challenger, dataset, target, task=task, n_boot=n_boot, query_column=query_column)
        if as_json:
            emit_json(result.to_dict())
            return
        print_table([{"metric": m.metric, "champion": _fmt(m.champion), "challenger": _fmt(m.challenger),
                      "difference": _fmt(m.difference),
                      "difference CI": "" if m.difference_ci is None else
                      f"[{m.difference_ci[0]:.4f}, {m.difference_ci[1]:.4f}]",
                      "P(challenger better)": _fmt(m.challenger_better_prob)} for m in result.metrics],
                    title=f"{result.champion} vs {result.challenger} on {result.dataset} ({result.rows} rows)")
        return
    result = evaluate(model, dataset, target, task=task, slices=list(slices), fairness=list(fairness), k=k,
                      query_column=query_column, store=not no_store)
    if as_json:
        emit_json(result.to_dict())
        return
    print_table([{"metric": m, "value": _fmt(v)} for m, v in result.metrics.items()],
                title=f"{result.model} on {result.dataset} ({result.rows} rows, {result.task})")
    for column, rows in result.slices.items():
        names = list(rows[0]["metrics"]) if rows else []
        print_table([{column: r["value"], "rows": r["rows"], **{m: _fmt(r["metrics"][m]) for m in names}}
                     for r in rows], title=f"by {column}")
    for column, report in result.fairness.items():
        click.echo(f"fairness by {column}: demographic parity difference "
                   f"{_fmt(report['demographic_parity_difference'])}, equal opportunity difference "
                   f"{_fmt(report['equal_opportunity_difference'])}")

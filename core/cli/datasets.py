"""`forgeml datasets`: register, list, show, diff and validate dataset versions."""

from __future__ import annotations

import click

from forgeml.cli.output import emit_json, print_table
from forgeml.times import format_utc


@click.group("datasets")
def datasets_group() -> None:
    """Versioned datasets: snapshots addressed as name@v3 or by content hash."""


@datasets_group.command("register")
@click.argument("name")
@click.argument("source", required=False)
@click.option("--query", help="A DuckDB query whose result is the dataset (instead of SOURCE).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "json", "ipc"]), help="File format of SOURCE.")
@click.option("--description", default="", help="What the dataset holds.")
@click.option("--pii", "pii", multiple=True, help="A column holding personal data (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def register_cmd(name: str, source: str | None, query: str | None, fmt: str | None, description: str,
                 pii: tuple[str, ...], as_json: bool) -> None:
    """Snapshot SOURCE (a file, folder, glob or fsspec URL) or --query as a new version of NAME."""
    from forgeml.datasets import register_dataset

    dv = register_dataset(name, source, query=query, fmt=fmt, description=description, pii=list(pii))
    if as_json:
        emit_json(dv.to_dict())
    else:
        click.echo(f"{dv.ref}  {dv.digest[:12]}  {dv.num_rows} rows, {len(dv.schema)} columns")


@datasets_group.command("ls")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(name: str | None, as_json: bool) -> None:
    """List datasets, or the versions of NAME."""
    from forgeml.datasets import list_datasets, list_versions

    if name:
        rows = [{"ref": v.ref, "digest": v.digest[:12], "rows": v.num_rows, "source": v.source_kind,
                 "created": format_utc(v.created_at)} for v in list_versions(name)]
        if as_json:
            emit_json([v.to_dict() for v in list_versions(name)])
        else:
            print_table(rows, title=f"dataset {name}")
        return
    rows = list_datasets()
    if as_json:
        emit_json(rows)
    else:
        print_table([{**r, "updated_at": format_utc(r["updated_at"])} for r in rows], title="datasets")


@datasets_group.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(ref: str, as_json: bool) -> None:
    """Show a version's schema, size and lineage (sources, runs and models that used it)."""
    from forgeml.datasets import get_dataset_version, lineage

    dv = get_dataset_version(ref)
    info = {**dv.to_dict(), "lineage": lineage(dv.ref)}
    if as_json:
        emit_json(info)
        return
    click.echo(f"{dv.ref}  digest {dv.digest}\n{dv.num_rows} rows, {dv.num_bytes} bytes snapshot, "
               f"from {dv.source_kind}: {dv.source}")
    print_table([{**f, "pii": "PII" if f.get("pii") else ""} for f in dv.schema], ["name", "type", "nullable", "pii"],
                title="schema")
    lin = info["lineage"]
    click.echo(f"runs: {', '.join(r['run_id'] for r in lin['runs']) or '-'}")
    click.echo(f"models: {', '.join(lin['models']) or '-'}")
    for e in lin["erasures"]:
        click.echo(f"erasure {e['erasure']}: {e['replaced']} -> {e['by']} ({e['rows_removed']} rows removed, "
                   f"{format_utc(e['at'])})")


@datasets_group.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def diff_cmd(old: str, new: str, as_json: bool) -> None:
    """Compare two versions: schema, row counts, nulls and means."""
    from forgeml.datasets import diff

    d = diff(old, new)
    if as_json:
        emit_json(d)
        return
    click.echo(f"{d['old']} -> {d['new']}: rows {d['rows'][0]} -> {d['rows'][1]}"
               + ("  (same content)" if d["same_content"] else ""))
    for key in ("added_columns", "removed_columns"):
        if d[key]:
            click.echo(f"{key.replace('_', ' ')}: {', '.join(d[key])}")
    print_table([{"column": c["column"], "nulls": f"{c['nulls'][0]} -> {c['nulls'][1]}",
                  "mean": "" if "mean" not in c else f"{c['mean'][0]} -> {c['mean'][1]}",
                  "type": "" if "type" not in c else " -> ".join(c["type"])} for c in d["columns"]])


@datasets_group.command("validate")
@click.argument("ref")
@click.option("--suite", "suite_path", required=True, type=click.Path(dir_okay=False),
              help="Expectation suite file (.json, .yaml or .toml).")
@click.option("--reference", help="Dataset version to compare distributions with (distribution_shift).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def validate_cmd(ref: str, suite_path: str, reference: str | None, as_json: bool) -> None:
    """Run an expectation suite on a version; exit 1 when an expectation fails."""
    from forgeml.datasets import validate

    report = validate(ref, suite_path, reference=reference)
    if as_json:
        emit_json(report.to_dict())
    else:
        print_table([{"expectation": r.expectation, "result": "skip" if r.skipped else ("pass" if r.passed else "FAIL"),
                      "message": r.message} for r in report.results], title=report.dataset)
    if not report.passed:
        if not as_json:
            click.echo(report.summary(), err=True)
        raise click.exceptions.Exit(1)

"""`forgeml predict`: batch inference with a registry model."""

from __future__ import annotations

import click


@click.command("predict")
@click.argument("model_uri")
@click.option("--input", "source", required=True,
              help="A Parquet file or folder, a dataset version (name@v3) or a feature view (view:NAME).")
@click.option("--output", default=None, help="Parquet file to write: the input columns plus 'prediction'.")
@click.option("--write-online", default=None, metavar="VIEW",
              help="Also write each entity's prediction to this online-store view for precomputed serving.")
@click.option("--chunk-size", type=int, default=50_000, show_default=True, help="Rows per predict call.")
@click.option("--device", default=None, help="Device for the model (default: a free GPU when there is one).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def predict_cmd(model_uri: str, source: str, output: str | None, write_online: str | None, chunk_size: int,
                device: str | None, as_json: bool) -> None:
    """Predict every row of --input with MODEL_URI (name@production, name@alias, name@3)."""
    from forgeml.cli.output import emit_json
    from forgeml.serving.batch import predict_batch

    result = predict_batch(model_uri, source, output, chunk_size, write_online, device, progress=not as_json)
    if as_json:
        emit_json(result)
        return
    where = " and ".join(x for x in (result.output, f"online view {result.online_view}" if result.online_view
                                     else None) if x)
    click.echo(f"predicted {result.rows} rows with {result.model} v{result.version} in {result.seconds}s -> {where}")

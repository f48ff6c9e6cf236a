"""`forgeml explain`: per-row attributions and top reasons for a file of inputs."""

from __future__ import annotations

import click


@click.command("explain")
@click.argument("model_uri")
@click.option("--input", "source", required=True,
              help="A Parquet file or folder, a dataset version (name@v3) or a feature view (view:NAME).")
@click.option("--output", default=None,
              help="Parquet file to write: the inputs, base_value, shap_<feature> and reason_1..K columns.")
@click.option("--top-k", type=int, default=3, show_default=True, help="Reasons named per row.")
@click.option("--method", default=None, help="Force an explainer: tree, linear, deep, gradient or kernel.")
@click.option("--chunk-size", type=int, default=10_000, show_default=True, help="Rows per explanation call.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def explain_cmd(model_uri: str, source: str, output: str | None, top_k: int, method: str | None, chunk_size: int,
                as_json: bool) -> None:
    """Explain every row of --input with MODEL_URI: which features pushed each prediction, and how far."""
    from forgeml.cli.output import emit_json, print_table
    from forgeml.serving.explain_batch import explain_batch

    result = explain_batch(model_uri, source, output, top_k, chunk_size, method, progress=not as_json)
    if as_json:
        emit_json(result)
        return
    click.echo(f"explained {result.rows} rows with {result.model} v{result.version} ({result.method}) in "
               f"{result.seconds}s" + (f" -> {result.output}" if result.output else ""))
    print_table([{"feature": t["feature"], "mean |SHAP|": f"{t['mean_abs_shap']:.4g}"} for t in result.top_features],
                title="features by mean absolute attribution")

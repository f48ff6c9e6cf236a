"""`forgeml calibrate`: fit a calibrator and decision threshold for a binary classifier version."""

from __future__ import annotations

import click


@click.command("calibrate")
@click.argument("model")
@click.argument("dataset")
@click.option("--target", required=True, help="Column holding the true labels of the holdout.")
@click.option("--method", type=click.Choice(["isotonic", "platt"]), default="isotonic", show_default=True)
@click.option("--threshold", type=float, default=0.5, show_default=True,
              help="Decision threshold on the calibrated probability, applied in serving.")
@click.option("--remove", is_flag=True, help="Drop the version's calibrator instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def calibrate_cmd(model: str, dataset: str, target: str, method: str, threshold: float, remove: bool,
                  as_json: bool) -> None:
    """Fit a calibrator for MODEL (name@version) on the holdout DATASET; serving applies it from then on."""
    from forgeml.cli.output import emit_json
    from forgeml.evaluation.calibration import fit_calibration
    from forgeml.registry import resolve
    from forgeml.registry.calibration import remove_calibration
    from forgeml.workspace import current

    if remove:
        mv = resolve(model)
        gone = remove_calibration(mv.name, mv.version, current())
        click.echo(f"{mv.uri}: calibrator {'removed' if gone else 'was not set'}")
        return
    result = fit_calibration(model, dataset, target, method=method, threshold=threshold)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"{result.model}: {method} calibrator on {result.dataset}, threshold {threshold}; Brier "
               f"{result.before['brier']:.4f} -> {result.after['brier']:.4f}, ECE {result.before['ece']:.4f} -> "
               f"{result.after['ece']:.4f}")


"""Batch explanation: attributions and top reasons for every row of a file, dataset version or view."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeml.errors import ValidationError


@dataclass
class BatchExplanationResult:
    """What a batch explanation did: the model version, rows explained, method and where the output went."""

    model: str
    version: int
    rows: int
    method: str
    output: str | None
    seconds: float
    top_features: list[dict[str, Any]]


def explain_batch(model_uri: str, source: str, output: str | None = None, top_k: int = 3,
                  chunk_size: int = 10_000, method: str | None = None, progress: bool = False,
                  workspace: Any = None) -> BatchExplanationResult:
    """Explain every row of source with a registry model, writing inputs, attributions and reasons to Parquet.

    The output holds the input columns, ``base_value``, one ``shap_<feature>`` column per feature and
    ``reason_1`` .. ``reason_<top_k>`` naming the features that pushed each row's output the most.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from forgeml.explain.attributions import explainer_for
    from forgeml.registry.models import load_model, resolve, workspace_or_current
    from forgeml.serving.batch import _open_input, _progress

    ws = workspace_or_current(workspace)
    if chunk_size <= 0 or top_k <= 0:
        raise ValidationError(f"chunk size and top_k must be positive, got {chunk_size} and {top_k}")
    started = time.perf_counter()
    mv = resolve(model_uri, workspace=ws)
    total, batches = _open_input(source, chunk_size, ws)
    explainer = explainer_for(load_model(mv, device="cpu", workspace=ws), ws, method)
    writer = None
    rows = 0
    magnitude = np.zeros(len(explainer.features))
    bar = _progress(progress, total, mv.uri, verb="explaining")
    try:
        for batch in batches:
            table = pa.Table.from_batches([batch])
            attributions = explainer.explain(table)
            magnitude += np.abs(attributions.values).sum(axis=0)
            out = table.append_column("base_value", pa.array(attributions.base_values, pa.float64()))
            for j, name in enumerate(attributions.features):
                out = out.append_column(f"shap_{name}", pa.array(attributions.values[:, j], pa.float64()))
            reasons = attributions.reasons(top_k)
            for r in range(min(top_k, len(attributions.features))):
                out = out.append_column(f"reason_{r + 1}", pa.array([row[r]["feature"] for row in reasons],
                                                                     pa.string()))
            if output is not None:
                if writer is None:
                    Path(output).parent.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(output, out.schema)
                writer.write_table(out.cast(writer.schema) if out.schema != writer.schema else out)
            rows += out.num_rows
            if bar is not None:
                bar[0].update(bar[1], advance=out.num_rows)
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar[0].stop()
    mean = magnitude / max(rows, 1)
    top = [{"feature": explainer.features[j], "mean_abs_shap": float(mean[j])} for j in np.argsort(-mean)[:10]]
    return BatchExplanationResult(mv.name, mv.version, rows, explainer.method, output,
                                  round(time.perf_counter() - started, 3), top)


"""Batch inference: a model over a Parquet file, a dataset version or a feature view, in chunks."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgeml.errors import NotFoundError, ValidationError
from forgeml.paths import atomic_output, check_not_input

PREDICTION_COLUMN = "prediction"


@dataclass
class BatchPredictionResult:
    """What a batch prediction did: the model version, rows predicted, and where the output went."""

    model: str
    version: int
    rows: int
    output: str | None
    online_view: str | None
    seconds: float


def _open_input(source: str, chunk_size: int, workspace: Any) -> tuple[int, Iterator[Any]]:
    """Return (row count, iterator of Arrow record batches) for a path, ``name@vN`` or ``view:NAME``."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    path = Path(source)
    if path.exists():
        try:
            dataset = ds.dataset(str(path), format="parquet")
            rows = dataset.count_rows()
        except (pa.ArrowException, OSError) as e:
            raise ValidationError(f"--input {source!r} is not a readable Parquet file or folder: {e}") from e
        return rows, _read_batches(dataset.to_batches(batch_size=chunk_size), source)
    if source.startswith("view:"):
        table = _read_view(source[len("view:"):], workspace)
    elif "@" in source:
        from forgeml.datasets import read_dataset

        table = read_dataset(source)
    else:
        raise NotFoundError(f"--input {source!r} is neither an existing Parquet file or folder, a dataset version "
                            "(name@v3) nor a feature view (view:NAME)")
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    return table.num_rows, iter(table.to_batches(max_chunksize=chunk_size))


def _read_batches(batches: Iterator[Any], source: str) -> Iterator[Any]:
    """Yield record batches, turning a corrupt part found while reading into a one-line error."""
    import pyarrow as pa

    try:
        yield from batches
    except (pa.ArrowException, OSError) as e:
        raise ValidationError(f"--input {source!r}: a part of it cannot be read: {e}") from e


def _read_view(name: str, workspace: Any) -> Any:
    """Return the rows stored offline for a feature view."""
    store = workspace.offline_store
    if hasattr(store, "has_table") and not store.has_table(name):
        raise NotFoundError(f"feature view {name!r} has no offline rows; apply and materialize or push it first")
    return store.read(name)


def predict_batch(model_uri: str, source: str, output: str | None = None, chunk_size: int = 50_000,
                  write_online: str | None = None, device: str | None = None, progress: bool = False,
                  workspace: Any = None) -> BatchPredictionResult:
    """Predict every row of source with a registry model, in chunks, to Parquet and/or the online store.

    Rows lacking the model's feature columns get them from the online store by entity key, as in
    serving. ``write_online`` names an online view that receives ``prediction`` per entity key.
    """
    import time

    import pyarrow as pa

    from forgeml.serving.slot import model_output, one_per_row, run_model, takes_matrix
    from forgeml.serving.source import RegistrySource, fetch_online_features

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    if chunk_size <= 0:
        raise ValidationError(f"chunk size must be positive, got {chunk_size}")
    if output is None and write_online is None:
        raise ValidationError("give --output PATH, --write-online VIEW, or both")
    if output is not None and Path(source).exists():
        check_not_input(output, [source])
    started = time.perf_counter()
    served = RegistrySource(workspace).load(model_uri, device)
    total, batches = _open_input(source, chunk_size, workspace)
    names = served.signature.names
    fed = served.feature_columns
    if write_online and not served.entity_keys:
        raise ValidationError(f"model {served.name} v{served.version} has no entity keys; the online store "
                              "needs them to key the predictions")
    with contextlib.ExitStack() as stack:
        # the Parquet goes to a temporary file renamed over --output once complete: a failure leaves no part
        target = str(stack.enter_context(atomic_output(output))) if output is not None else None
        writers: list[Any] = []  # the Parquet writer, once the first chunk gives the schema
        rows_done = 0
        bar = _progress(progress, total, f"{served.name} v{served.version}")
        try:
            for batch in batches:
                table = pa.Table.from_batches([batch])
                if names and takes_matrix(served, names) and all(n in table.column_names for n in names):
                    # the model reads the Arrow columns as one matrix: no detour through Python lists
                    outputs = one_per_row(served, model_output(served, table.select(names)), table.num_rows)
                    out = table.append_column(PREDICTION_COLUMN, _prediction_array(outputs))
                    rows_done += _emit(out, target, write_online, workspace, served, writers)
                    if bar is not None:
                        bar[0].update(bar[1], advance=table.num_rows)
                    continue
                columns = table.to_pydict()
                missing = [n for n in names if n not in columns]
                if missing and all(n in fed for n in missing):
                    keys = served.entity_keys
                    absent = [k for k in keys if k not in columns]
                    if absent:
                        raise ValidationError(f"input lacks {', '.join(missing)} and the entity key(s) "
                                              f"{', '.join(absent)} needed to look them up")
                    # keys and every other input column: on-demand views read request values (an amount) from them
                    given = [c for c in columns if c not in missing]
                    entity_rows = [{c: columns[c][i] for c in given} for i in range(table.num_rows)]
                    columns.update(fetch_online_features(workspace, served, entity_rows))
                elif missing:
                    raise ValidationError(f"input lacks column(s) {', '.join(missing)} that model {served.name} "
                                          f"v{served.version} takes; it has {', '.join(table.column_names)}")
                predictions = one_per_row(served, run_model(served, {n: columns[n] for n in names} if names else columns),
                                          table.num_rows)
                out = table.append_column(PREDICTION_COLUMN, _prediction_array(predictions))
                rows_done += _emit(out, target, write_online, workspace, served, writers)
                if bar is not None:
                    bar[0].update(bar[1], advance=table.num_rows)
        finally:
            for writer in writers:
                writer.close()
            if bar is not None:
                bar[0].stop()
    return BatchPredictionResult(served.name, served.version, rows_done, output, write_online,
                                 round(time.perf_counter() - started, 3))


def _emit(out: Any, output: str | None, write_online: str | None, workspace: Any, served: Any,
          writers: list[Any]) -> int:
    """Write one chunk with its predictions to the Parquet output and/or the online store; return its rows."""
    import pyarrow.parquet as pq

    if output is not None:
        if not writers:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            writers.append(pq.ParquetWriter(output, out.schema))
        writer = writers[0]
        writer.write_table(out.cast(writer.schema) if out.schema != writer.schema else out)
    if write_online:
        _write_online(workspace, write_online, out, served.entity_keys)
    return out.num_rows


def _prediction_array(predictions: Any) -> Any:
    import pyarrow as pa

    try:
        return pa.array(predictions)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([str(p) for p in predictions], pa.string())


def _write_online(workspace: Any, view: str, table: Any, keys: list[str]) -> None:
    import pyarrow as pa

    now = dt.datetime.now(dt.UTC)
    rows = table.select([*keys, PREDICTION_COLUMN])
    rows = rows.append_column("event_timestamp", pa.array([now] * rows.num_rows, pa.timestamp("us", tz="UTC")))
    workspace.online_store.write(view, rows, keys, "event_timestamp")


def _progress(enabled: bool, total: int, label: str, verb: str = "predicting") -> tuple[Any, Any] | None:
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    bar.start()
    return bar, bar.add_task(f"{verb} with {label}", total=total)

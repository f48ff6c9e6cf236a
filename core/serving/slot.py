"""One arm of an endpoint: the loaded model version, swapped atomically, and the batcher feeding it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import PluginError, ValidationError
from forgeml.serving.batching import BatchItem, DynamicBatcher
from forgeml.serving.metrics import ServingMetrics
from forgeml.serving.signature import SchemaMismatch
from forgeml.serving.source import ModelSource, ServedModel

log = logging.getLogger("forgeml.serving")

# returns the feature columns, or (columns, names filled from defaults) when guarded
FeatureLookup = Callable[[ServedModel, Sequence[dict[str, Any]]], Any]


class ModelRejectedInput(ValueError):
    """The model itself refused a request's values (for example an unknown category)."""


class ModelFailed(PluginError):
    """The model raised, or broke its contract (one output per row); the message names the model and version."""


@dataclass
class Prediction:
    """What one batch run gives back to one request."""

    version: int
    predictions: list[Any]
    inputs: dict[str, list[Any]]
    defaulted: list[str] = field(default_factory=list)  # features filled from defaults, the store being down


class ModelSlot:
    """One arm's current model version, swapped atomically, and the batcher that feeds it."""

    def __init__(self, endpoint: str, arm: str, uri: str, config: Any, source: ModelSource,
                 metrics: ServingMetrics, lookup: FeatureLookup | None, device: str | None = None):
        self.endpoint = endpoint
        self.arm = arm
        self.uri = uri
        self.source = source
        self.metrics = metrics
        self.lookup = lookup
        self.device = device
        self.served: ServedModel | None = None
        self.load_error = ""
        self.batcher = DynamicBatcher(self._run_batch, config.batching, on_batch=self._observe_batch,
                                      threads=config.threads)

    # ------------------------------------------------------------ loading and swapping
    def load_and_warm(self) -> ServedModel:
        """Load the version the URI points at now and time sample batches through it (blocking)."""
        served = self.source.load(self.uri, self.device)
        row = served.sample_row()
        full = self.batcher.config.max_batch_size if self.batcher.config.enabled else 1

        def timed(rows: int, repeat: int) -> float:
            best = float("inf")
            for _ in range(repeat):  # the fastest run is the least noisy estimate on a busy machine
                item = BatchItem({k: [v] * rows for k, v in row.items()}, rows)
                started = time.perf_counter()
                self.predict_batch(served, [item])
                best = min(best, (time.perf_counter() - started) * 1000.0)
            return best

        try:
            timed(1, 1)  # the first call pays for lazy set-up
        except (ModelRejectedInput, SchemaMismatch) as e:
            # a synthetic row of zeros and empty strings may be refused (an unknown category);
            # the model loaded, so serve it, on the worker thread since its cost is unknown
            log.warning("%s/%s: warm-up row refused by %s v%s: %s", self.endpoint, self.arm, served.name,
                        served.version, e)
            return served
        served.warm_ms = timed(1, 5)
        served.warm_batch = (full, timed(full, 3) if full > 1 else served.warm_ms)
        return served

    def install(self, served: ServedModel) -> None:
        """Switch to a loaded, warmed version; batches already running finish on the old one."""
        old = self.served
        self.batcher.cost_ms = served.cost_ms
        self.served = served
        self.load_error = ""
        self.metrics.loaded_version.labels(self.endpoint, self.arm).set(served.version)
        if old is not None and old.version != served.version:
            self.metrics.swaps.labels(self.endpoint, self.arm).inc()
            log.info("%s/%s: swapped %s v%s -> v%s", self.endpoint, self.arm, served.name, old.version,
                     served.version)

    # ------------------------------------------------------------ predicting (worker thread)
    def _observe_batch(self, rows: int) -> None:
        served = self.served
        version = str(served.version) if served is not None else "?"
        self.metrics.child(self.metrics.batch_size, self.endpoint, version).observe(rows)

    def _run_batch(self, items: Sequence[BatchItem]) -> list[Prediction]:
        served = self.served
        if served is None:
            raise RuntimeError(f"{self.endpoint}/{self.arm}: no model loaded yet")
        return self.predict_batch(served, items)

    def predict_batch(self, served: ServedModel, items: Sequence[BatchItem]) -> list[Prediction]:
        """Look up online features for entity items, run one predict over all rows, split the outputs."""
        entity_items = [it for it in items if it.entity_rows is not None]
        defaulted = self._add_features(served, entity_items) if entity_items else []
        names = served.signature.names or list(items[0].columns)
        columns: dict[str, list[Any]] = {}
        for name in names:
            if len(items) == 1:
                values = items[0].columns.get(name)
                if values is None:
                    raise SchemaMismatch(name, "missing from the request")
                columns[name] = values
            else:
                merged: list[Any] = []
                for it in items:
                    values = it.columns.get(name)
                    if values is None:
                        raise SchemaMismatch(name, "missing from the request")
                    merged.extend(values)
                columns[name] = merged
        # never split a miscounted output: a request would get its neighbour's answers
        outputs = one_per_row(served, run_model(served, columns), sum(it.n for it in items))
        results: list[Prediction] = []
        offset = 0
        for it in items:
            results.append(Prediction(served.version, outputs[offset:offset + it.n], it.columns,
                                      defaulted if it.entity_rows is not None else []))
            offset += it.n
        return results

    def _add_features(self, served: ServedModel, items: Sequence[BatchItem]) -> list[str]:
        if self.lookup is None or not served.feature_refs:
            return []
        rows = [r for it in items for r in it.entity_rows or ()]
        defaulted: list[str] = []
        deadlines = [it.deadline for it in items if it.deadline is not None]
        try:
            # the batch's lookup gives up when its most urgent request's budget ends
            features = self.lookup(served, rows, min(deadlines)) if deadlines else self.lookup(served, rows)
            if isinstance(features, tuple):  # a guarded lookup also says which features are defaults
                features, defaulted = features
        except (ValidationError, ValueError, TypeError) as e:
            # the request's keys or request values do not fit the feature views: the caller's to fix
            raise SchemaMismatch("entities", f"feature lookup failed: {e}") from e
        required = {c.name: c for c in served.signature.inputs if c.required}
        offset = 0
        for it in items:
            for name, values in features.items():
                part = values[offset:offset + it.n]
                spec = required.get(name)
                if spec is not None:
                    for i, value in enumerate(part):
                        if value is None:
                            keys = {k: it.entity_rows[i].get(k) for k in served.entity_keys}  # type: ignore[index]
                            raise SchemaMismatch(f"entities[{i}].{name}",
                                                 f"no online value for {keys}; materialize or push the feature view")
                it.columns[name] = part
            offset += it.n
        return defaulted


def run_model(served: ServedModel, columns: dict[str, list[Any]]) -> list[Any]:
    """Run a model over column-wise rows (in signature order) and return one output per row."""
    import numpy as np
    import pandas as pd

    types = {c.name: c.json_type for c in served.signature.inputs}
    if types and all(types.get(name) == "number" for name in columns):
        # one 2-D float array is several times cheaper to build than a DataFrame of named columns
        matrix = np.array(list(columns.values()), dtype=np.float64).T
        inputs: Any = matrix if takes_matrix(served, list(columns)) else pd.DataFrame(matrix, columns=list(columns),
                                                                                       copy=False)
    else:
        frame_cols: dict[str, Any] = {}
        for name, values in columns.items():
            frame_cols[name] = np.asarray(values, dtype=np.float64) if types.get(name) == "number" else values
        inputs = pd.DataFrame(frame_cols, copy=False)
    return model_output(served, inputs).tolist()


def one_per_row(served: ServedModel, outputs: Any, rows: int) -> Any:
    """Return outputs when the model gave exactly one per row, else raise ModelFailed naming the model."""
    if len(outputs) != rows:
        raise ModelFailed(f"model {served.name} v{served.version} returned {len(outputs)} outputs for {rows} rows")
    return outputs


def takes_matrix(served: ServedModel, names: list[str]) -> bool:
    """Whether the model's predict takes a plain 2-D array whose columns are these names in this order."""
    order = getattr(served.model, "matrix_columns", None)
    return order is not None and order == names


def model_output(served: ServedModel, inputs: Any) -> Any:
    """Call the model's predict and return its output as a numpy array, one entry per row."""
    import numpy as np

    try:
        out = served.model.predict(inputs)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelRejectedInput(f"model {served.name} v{served.version} rejected the input: {e}") from e
    except Exception as e:
        raise ModelFailed(f"model {served.name} v{served.version} raised {type(e).__name__}: {e}") from e
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    if hasattr(out, "to_numpy"):
        out = out.to_numpy()
    arr = np.asarray(out)
    if arr.ndim == 0:
        raise ModelFailed(f"model {served.name} v{served.version} returned one value, not one output per row")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    return arr

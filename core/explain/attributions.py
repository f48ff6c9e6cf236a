"""Per-prediction attributions with shap: tree, linear, deep (torch) or kernel, chosen per model.

Every explainer answers the same question for each row: how much each feature moved the model's
output away from the average output over the background sample. The output explained is the
regression value, the positive class of a binary classifier, or the predicted class otherwise
(log-odds for tree ensembles and linear classifiers that shap explains in that space).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ForgeError, ValidationError

METHODS = ("tree", "linear", "deep", "gradient", "kernel")
KERNEL_BACKGROUND = 50  # rows a hidden feature is drawn from: the model runs samples x this many rows a row
KERNEL_SAMPLES = 512  # coalitions sampled per row beyond 2 x features (all of them when there are fewer)
_BUILD_LOCK = threading.Lock()


@dataclass
class Attributions:
    """Feature attributions of a batch of rows: values[i, j] is feature j's push on row i's output."""

    features: list[str]
    values: Any  # (rows, features) float array
    base_values: Any  # (rows,) float array: the expected output over the background
    data: Any  # (rows, features) the rows' feature values
    outputs: list[Any] = field(default_factory=list)  # which output each row's values explain
    method: str = ""

    def __len__(self) -> int:
        return len(self.values)

    def reasons(self, top_k: int = 5) -> list[list[dict[str, Any]]]:
        """Return each row's top_k features by absolute attribution, largest first."""
        import numpy as np

        k = max(1, min(int(top_k), len(self.features)))
        order = np.argsort(-np.abs(self.values), axis=1, kind="stable")[:, :k]
        out = []
        for i, row in enumerate(order):
            out.append([{"feature": self.features[j], "value": _plain(self.data[i, j]),
                         "contribution": float(self.values[i, j])} for j in row])
        return out

    def explanations(self, top_k: int = 5) -> list[dict[str, Any]]:
        """Return one JSON-ready explanation per row: base value, explained output and top reasons."""
        reasons = self.reasons(top_k)
        return [{"base_value": float(self.base_values[i]), "output": _plain(self.outputs[i]) if self.outputs else None,
                 "method": self.method, "reasons": reasons[i]} for i in range(len(self))]

    def columns(self, prefix: str = "_attr_") -> dict[str, list[float]]:
        """Return the attributions column-wise, one list per feature named prefix + feature."""
        return {prefix + name: self.values[:, j].tolist() for j, name in enumerate(self.features)}


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------ choosing an explainer
def _inner(loaded: Any) -> Any:
    """The framework object inside a loaded model (sklearn estimator, torch module), else the model."""
    for attr in ("module", "model"):
        inner = getattr(loaded, attr, None)
        if inner is not None:
            return inner
    return loaded


def _is_torch(obj: Any) -> bool:
    return any(c.__module__.startswith("torch") and c.__name__.endswith("Module") for c in type(obj).__mro__)


def _is_linear(obj: Any) -> bool:
    return type(obj).__module__.startswith("sklearn.linear_model") and hasattr(obj, "coef_")


def optional(module: str) -> Any:
    """Import a library of the ``explain`` extra, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        from forgeml.errors import ConfigError

        raise ConfigError(f"{module} is not installed; explanations and responsible evaluation need "
                          "pip install 'forgeml[explain]'") from e


def _try_tree(obj: Any) -> Any:
    """A shap TreeExplainer for a supported tree ensemble, or None."""
    if not any(hasattr(obj, a) for a in ("estimators_", "tree_", "get_booster", "booster_")):
        return None
    shap = optional("shap")

    try:
        # path-dependent: exact for trees, needs no background and costs well under a millisecond a row
        return shap.TreeExplainer(obj, feature_perturbation="tree_path_dependent")
    except Exception:  # shap raises its own InvalidModelError and plain exceptions for unsupported models
        return None


class ModelExplainer:
    """Explains a loaded model's predictions with the shap explainer that fits it."""

    def __init__(self, loaded: Any, features: list[str], background: Any = None, method: str | None = None):
        if method is not None and method not in METHODS:
            from forgeml.errors import unknown_name

            raise unknown_name("explanation method", method, METHODS)
        self.loaded = loaded
        self.features = list(features)
        self.background = background[self.features] if background is not None else None
        inner = _inner(loaded)
        self.classes = list(getattr(inner, "classes_", []))
        self._codes: dict[str, list[Any]] = {}
        self._explainer: Any = None
        self.method = ""
        for candidate in ([method] if method else self._candidates(inner)):
            self._explainer = self._build(candidate, inner)
            if self._explainer is not None:
                self.method = candidate
                break
        if self._explainer is None:
            raise ValidationError(f"cannot explain this model with method {method!r}" if method else
                                  "cannot explain this model: no explainer fits it")
        if self.method in ("tree", "linear"):
            import numpy as np

            self._expected = np.ravel(np.asarray(self._explainer.expected_value, dtype=np.float64))

    def _candidates(self, inner: Any) -> list[str]:
        if _is_torch(inner):
            return ["deep", "gradient"]
        return ["tree", "linear", "kernel"]

    def _need_background(self, method: str) -> Any:
        if self.background is None:
            raise ValidationError(f"the {method} explainer needs a background sample; register the model with "
                                  "background= (a sample of its training rows)")
        return self.background

    def _build(self, method: str, inner: Any) -> Any:
        import numpy as np

        shap = optional("shap")

        if method == "tree":
            return _try_tree(inner)
        if method == "linear":
            if not _is_linear(inner):
                return None
            return shap.LinearExplainer(inner, shap.maskers.Independent(self._numeric(self._need_background(method))))
        if method in ("deep", "gradient"):
            if not _is_torch(inner):
                return None
            import torch

            device = next((p.device for p in inner.parameters()), torch.device("cpu"))
            bg = torch.tensor(self._numeric(self._need_background(method)), dtype=torch.float32, device=device)
            self._device = device
            if method == "deep":
                if isinstance(inner, torch.jit.ScriptModule):  # DeepLIFT hooks modules; TorchScript takes none
                    return None
                return shap.DeepExplainer(inner, bg)
            return shap.GradientExplainer(inner, bg)
        # Kernel SHAP rather than shap's permutation explainer: no numba compilation (tens of seconds on
        # first use in every process), and unregularized it is exact for additive models
        bg = self._encode(self._need_background(method))
        if len(bg) > KERNEL_BACKGROUND:
            bg = bg[np.random.default_rng(0).choice(len(bg), KERNEL_BACKGROUND, replace=False)]
        return shap.KernelExplainer(self._output_of_codes, bg, silent=True)

    # ------------------------------------------------------------ data conversion
    def _numeric(self, frame: Any) -> Any:
        import numpy as np

        try:
            return frame[self.features].to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise ValidationError(f"the {self.method or 'chosen'} explainer needs numeric features: {e}") from e

    def _encode(self, frame: Any) -> Any:
        """Numbers as they are, other columns as codes, so shap's maskers can mix rows."""
        import numpy as np

        out = np.empty((len(frame), len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            col = frame[name]
            if col.dtype.kind in "fiub":
                out[:, j] = col.to_numpy(dtype=np.float64)
                continue
            known = self._codes.setdefault(name, [])
            index = {v: i for i, v in enumerate(known)}
            for v in col.tolist():
                if v not in index:
                    index[v] = len(known)
                    known.append(v)
            out[:, j] = [index[v] for v in col.tolist()]
        return out

    def _decode(self, codes: Any) -> Any:
        import numpy as np
        import pandas as pd

        cols = {}
        for j, name in enumerate(self.features):
            known = self._codes.get(name)
            cols[name] = np.asarray(known, dtype=object)[codes[:, j].astype(int)] if known is not None else codes[:, j]
        return pd.DataFrame(cols)

    def _raw_output(self, frame: Any) -> Any:
        import numpy as np

        model = self.loaded
        if hasattr(model, "predict_proba") and self.classes:
            return np.asarray(model.predict_proba(frame), dtype=np.float64)
        out = np.asarray(model.predict(frame), dtype=np.float64)
        return out.reshape(len(frame), -1)

    def _output_of_codes(self, codes: Any) -> Any:
        out = self._raw_output(self._decode(codes))
        return out[:, 0] if out.shape[1] == 1 else out

    # ------------------------------------------------------------ explaining
    def explain(self, inputs: Any) -> Attributions:
        """Return the attributions of every row of inputs (DataFrame, Arrow table or dict of columns)."""
        import numpy as np

        if self.method == "kernel":
            from forgeml.registry.background import as_frame

            frame = as_frame(inputs, "inputs")
            missing = [c for c in self.features if c not in frame.columns]
            if missing:
                raise ValidationError(f"inputs lack feature(s) {', '.join(missing)}; the model takes "
                                      f"{self.features}")
            frame = frame[self.features].reset_index(drop=True)
            values, base = self._kernel(frame)
            data = frame.to_numpy(dtype=object)
        else:
            # the numeric explainers take one float matrix, built without pandas (the served path's cost)
            data = self._matrix(inputs)
            if self.method in ("deep", "gradient"):
                values, base = self._torch(data)
            else:
                values = _three_d(self._shap_values(data), len(data), len(self.features))
                base = np.tile(self._expected, (len(data), 1))
        chosen = _output_index(values, base)
        rows = np.arange(len(data))
        outputs = [self._label(c, values.shape[2]) for c in chosen]
        return Attributions(self.features, values[rows, :, chosen], base[rows, chosen], data, outputs, self.method)

    def _shap_values(self, data: Any) -> Any:
        if self.method == "tree":  # exact by construction; shap's check would run the ensemble again
            return self._explainer.shap_values(data, check_additivity=False)
        return self._explainer.shap_values(data)

    def _matrix(self, inputs: Any) -> Any:
        from forgeml.registry.inputs import FeatureMatrix

        try:
            return FeatureMatrix(self.features, dtype="float64")(inputs)
        except (ValueError, TypeError) as e:
            raise ValidationError(f"the {self.method} explainer needs numeric features: {e}") from e

    def _kernel(self, frame: Any) -> tuple[Any, Any]:
        import numpy as np

        codes = self._encode(frame)
        samples = min(2 * len(self.features) + KERNEL_SAMPLES, 2 ** len(self.features) + 2)
        values = self._explainer.shap_values(codes, nsamples=samples, l1_reg=False, silent=True)
        values = _three_d(values, len(frame), len(self.features))
        base = np.ravel(np.asarray(self._explainer.expected_value, dtype=np.float64))
        return values, np.tile(base, (len(frame), 1))

    def _torch(self, matrix: Any) -> tuple[Any, Any]:
        import numpy as np
        import torch

        x = torch.tensor(matrix, dtype=torch.float32, device=self._device)
        if self.method == "deep":
            values = self._explainer.shap_values(x, check_additivity=False)
        else:
            values = self._explainer.shap_values(x, rseed=0)
        values = _three_d(values, len(matrix), len(self.features))
        if self.method == "deep":
            base = np.ravel(np.asarray(self._explainer.expected_value, dtype=np.float64))
        else:
            with torch.no_grad():
                base = self._explainer.explainer.model(self._explainer.explainer.data[0]).float().mean(0)
            base = np.ravel(base.cpu().numpy().astype(np.float64))
        return values, np.tile(base, (len(matrix), 1))

    def _label(self, column: int, width: int) -> Any:
        if self.classes and len(self.classes) == width:
            return _plain(self.classes[column])
        if self.classes and width == 1 and len(self.classes) == 2:
            return _plain(self.classes[1])
        return int(column) if width > 1 else None


def _three_d(values: Any, rows: int, features: int) -> Any:
    """shap returns (rows, features), (rows, features, outputs) or a list per output: make it 3-D."""
    import numpy as np

    if isinstance(values, list):
        values = np.stack([np.asarray(v) for v in values], axis=-1)
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[:2] != (rows, features):
        raise ValidationError(f"the explainer returned attributions of shape {arr.shape}, expected ({rows}, "
                              f"{features}, outputs)")
    return arr


def _output_index(values: Any, base: Any) -> Any:
    """Which output to explain per row: the only one, the positive class, else the largest output."""
    import numpy as np

    n, _, width = values.shape
    if width == 1:
        return np.zeros(n, dtype=int)
    if width == 2:
        return np.ones(n, dtype=int)
    return (base + values.sum(axis=1)).argmax(axis=1)


# ------------------------------------------------------------------ services
def feature_names(loaded: Any, background: Any = None) -> list[str]:
    """Return a loaded model's input feature names in signature order."""
    mv = getattr(loaded, "model_version", None)
    inputs = (getattr(mv, "signature", None) or {}).get("inputs") if mv is not None else None
    if inputs:
        return [c["name"] for c in inputs]
    for attr in ("matrix_columns", "columns", "feature_names_in_"):
        cols = getattr(loaded, attr, None)
        if cols is not None and len(cols):
            return [str(c) for c in cols]
    if background is not None:
        return [str(c) for c in background.columns]
    raise ValidationError("cannot tell the model's features: register it with input_example= or background=")


def explainer_for(loaded: Any, workspace: Any = None, method: str | None = None) -> ModelExplainer:
    """Return the loaded model's explainer, built once (from its version's background) and kept on it."""
    cached = getattr(loaded, "_forgeml_explainer", None)
    if cached is not None and (method is None or cached.method == method):
        return cached
    with _BUILD_LOCK:
        cached = getattr(loaded, "_forgeml_explainer", None)
        if cached is not None and (method is None or cached.method == method):
            return cached
        failed = getattr(loaded, "_forgeml_explain_error", None)
        if failed is not None and method is None:  # building failed before: fail fast, not per request
            raise ValidationError(failed)
        from forgeml.registry.background import read_background

        mv = getattr(loaded, "model_version", None)
        background = None
        if mv is not None:
            if workspace is None:
                from forgeml.workspace import current

                workspace = current()
            background = read_background(mv, workspace)
        try:
            explainer = ModelExplainer(loaded, feature_names(loaded, background), background, method)
        except ForgeError as e:
            loaded._forgeml_explain_error = str(e)
            raise
        except Exception as e:  # shap or the model failing on the background: say which, once
            loaded._forgeml_explain_error = (f"cannot explain {getattr(mv, 'uri', 'this model')}: "
                                             f"{type(e).__name__}: {e}")[:500]
            raise ValidationError(loaded._forgeml_explain_error) from e
        loaded._forgeml_explainer = explainer
        return explainer


def explain(model: Any, inputs: Any, method: str | None = None, workspace: Any = None) -> Attributions:
    """Explain a model (``name@version``, ModelVersion or loaded model) on rows of inputs."""
    from forgeml.registry.models import ModelVersion, load_model, workspace_or_current

    ws = workspace_or_current(workspace)
    loaded = load_model(model, workspace=ws) if isinstance(model, str | ModelVersion) else model
    return explainer_for(loaded, ws, method).explain(inputs)

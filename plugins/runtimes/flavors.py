"""Model flavors: scikit-learn, torch, ONNX Runtime and plain Python functions (save, load, predict)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

from forgeml.errors import PluginError, ValidationError
from forgeml.plugins.runtimes.settings import TorchSettings
from forgeml.registry.inputs import FeatureMatrix, input_columns


def _pickler() -> Any:
    try:
        import cloudpickle

        return cloudpickle
    except ImportError:
        return pickle


def _one_file(path: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (path / name).exists():
            return path / name
    raise PluginError(f"model folder {path} holds none of {', '.join(names)}; was it saved with this flavor?")


# ------------------------------------------------------------------ scikit-learn
class LoadedSklearn:
    """A fitted scikit-learn estimator fed numpy arrays in signature order."""

    def __init__(self, model: Any, columns: list[str] | None):
        self.model = model
        self.frame_input = _needs_frame(model)
        if not self.frame_input:
            _drop_feature_names(model)  # numpy input then skips sklearn's per-call feature-name check and warning
        self._matrix = FeatureMatrix(columns)
        self.columns = columns
        # the column order in which predict also takes a plain 2-D array (None: it needs a DataFrame)
        self.matrix_columns = columns if not self.frame_input else None

    def _x(self, inputs: Any) -> Any:
        if not self.frame_input:
            return self._matrix(inputs)
        import pandas as pd
        import pyarrow as pa

        if isinstance(inputs, pa.Table):
            inputs = inputs.to_pandas()
        elif isinstance(inputs, dict):
            inputs = pd.DataFrame({k: v if isinstance(v, list | tuple) else [v] for k, v in inputs.items()})
        return inputs[self.columns] if self.columns else inputs

    def predict(self, inputs: Any) -> Any:
        """Return the estimator's predictions as a numpy array."""
        x = self._x(inputs)
        with _checked_already(x):
            return self.model.predict(x)

    def predict_proba(self, inputs: Any) -> Any:
        """Return class probabilities (classifiers only)."""
        if not hasattr(self.model, "predict_proba"):
            raise ValidationError(f"{type(self.model).__name__} has no predict_proba")
        x = self._x(inputs)
        with _checked_already(x):
            return self.model.predict_proba(x)


def _checked_already(x: Any) -> Any:
    """Skip scikit-learn's per-call checks that cannot fail for this input.

    Hyperparameters were validated when the model was fitted, and a numeric matrix whose every value
    is finite passes the finiteness check; together these checks cost about a fifth of scoring a few
    hundred rows. A matrix holding NaN (a missing feature), or a DataFrame, is still checked, so a
    model that refuses missing values refuses them as before.
    """
    import numpy as np
    import sklearn

    finite = isinstance(x, np.ndarray) and x.dtype.kind in "fiub" and bool(np.isfinite(x).all())
    return sklearn.config_context(assume_finite=True if finite else None, skip_parameter_validation=True)


def _needs_frame(model: Any) -> bool:
    """Whether the estimator selects columns by name (a ColumnTransformer somewhere inside)."""
    from sklearn.compose import ColumnTransformer

    if isinstance(model, ColumnTransformer):
        return True
    for attr in ("steps", "estimators", "transformer_list"):
        for item in getattr(model, attr, None) or []:
            sub = item[-1] if isinstance(item, tuple) else item
            if _needs_frame(sub):
                return True
    inner = getattr(model, "estimator", None)
    return inner is not None and _needs_frame(inner)


def _drop_feature_names(model: Any) -> None:
    if hasattr(model, "feature_names_in_"):
        try:
            del model.feature_names_in_
        except AttributeError:
            return
    for attr in ("steps", "estimators_", "estimators"):
        items = getattr(model, attr, None)
        if items is None:
            continue
        # gradient boosting keeps its trees in a 2-D array (stage x class)
        for item in items.ravel() if hasattr(items, "ravel") else items:
            _drop_feature_names(item[-1] if isinstance(item, tuple) else item)
    for attr in ("estimator_", "base_estimator_"):
        inner = getattr(model, attr, None)
        if inner is not None:
            _drop_feature_names(inner)


class SklearnRuntime:
    """scikit-learn estimators and pipelines, stored with joblib."""

    flavor = "sklearn"

    def save(self, model: Any, path: Path) -> None:
        """Write the estimator to path/model.joblib."""
        import joblib

        path.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, path / "model.joblib")

    def load(self, path: Path, device: str | None = None) -> LoadedSklearn:
        """Load the estimator (device is ignored: scikit-learn runs on CPU)."""
        import joblib

        return LoadedSklearn(joblib.load(_one_file(path, ("model.joblib", "model.pkl"))), input_columns(path))

    def import_file(self, src: Path, path: Path) -> None:
        """Take a joblib or pickle file as the model."""
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path / "model.joblib")


# ------------------------------------------------------------------ torch
def pick_torch_device(wanted: str | None) -> str:
    """Return wanted, or for "auto"/None the CUDA device with the most free memory (else "cpu")."""
    import torch

    if wanted and wanted != "auto":
        return wanted
    if not torch.cuda.is_available():
        return "cpu"
    free = [(torch.cuda.mem_get_info(i)[0], -i) for i in range(torch.cuda.device_count())]
    return f"cuda:{-max(free)[1]}"


class LoadedTorch:
    """A torch module in eval mode run under inference_mode on its device."""

    def __init__(self, module: Any, device: str, columns: list[str] | None):
        import torch

        self.module = module
        self.device = torch.device(device)
        self._torch = torch
        self._matrix = FeatureMatrix(columns, dtype="float32")
        self.matrix_columns = columns  # predict also takes a 2-D array in this column order

    def predict(self, inputs: Any) -> Any:
        """Run the module on a float32 batch and return its output as a numpy array."""
        torch = self._torch
        arr = self._matrix(inputs)
        if not arr.flags.writeable:  # torch refuses read-only buffers (Arrow-backed arrays are read-only)
            arr = arr.copy()
        x = torch.from_numpy(arr)
        if self.device.type != "cpu":
            x = x.to(self.device, non_blocking=True)
        with torch.inference_mode():
            out = self.module(x)
        out = out.detach().cpu().numpy() if hasattr(out, "detach") else out
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


class TorchRuntime:
    """torch modules: TorchScript when scripted, otherwise the pickled module."""

    flavor = "torch"

    def __init__(self, options: TorchSettings | None = None):
        self.options = options or TorchSettings()

    def save(self, model: Any, path: Path) -> None:
        """Write a ScriptModule as model.ts, any other nn.Module pickled as model.pt."""
        import torch

        path.mkdir(parents=True, exist_ok=True)
        if isinstance(model, torch.jit.ScriptModule):
            torch.jit.save(model, str(path / "model.ts"))
        elif isinstance(model, torch.nn.Module):
            torch.save(model, path / "model.pt", pickle_module=_pickler())
        else:
            raise ValidationError(f"the torch flavor saves torch.nn.Module objects, got {type(model).__name__}")

    def load(self, path: Path, device: str | None = None) -> LoadedTorch:
        """Load onto device (default: a free GPU when CUDA is available), in eval mode, optionally quantized/compiled."""
        import torch

        opts = self.options
        target = pick_torch_device(device or opts.device)
        file = _one_file(path, ("model.ts", "model.pt"))
        if file.suffix == ".ts":
            module = torch.jit.load(str(file), map_location=target)
        else:
            module = torch.load(file, map_location=target, weights_only=False)
        module.eval()
        if opts.quantize:
            if target != "cpu":
                raise ValidationError("dynamic INT8 quantization runs on CPU only; set device = \"cpu\"")
            module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
        if opts.compile:
            module = torch.compile(module)
        return LoadedTorch(module, target, input_columns(path))

    def import_file(self, src: Path, path: Path) -> None:
        """Take a TorchScript archive or a pickled module file as the model."""
        import torch

        path.mkdir(parents=True, exist_ok=True)
        try:
            torch.jit.load(str(src), map_location="cpu")
            shutil.copyfile(src, path / "model.ts")
        except RuntimeError:
            shutil.copyfile(src, path / "model.pt")


# ------------------------------------------------------------------ ONNX Runtime
class LoadedOnnx:
    """An ONNX Runtime session fed one float matrix (or one column per named input)."""

    _TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(string)": "object", "tensor(bool)": "bool"}

    def __init__(self, session: Any, columns: list[str] | None):
        self.session = session
        self.inputs = session.get_inputs()
        self.outputs = [o.name for o in session.get_outputs()]
        dtype = self._TYPES.get(self.inputs[0].type, "float32")
        self._matrix = FeatureMatrix(columns, dtype=dtype)
        self.matrix_columns = columns if len(self.inputs) == 1 else None  # one tensor input takes a 2-D array
        self._column_dtypes = [self._TYPES.get(i.type, "float32") for i in self.inputs]
        self._proba = next((o for o in self.outputs if "prob" in o.lower()), None)

    def _feed(self, inputs: Any) -> dict[str, Any]:
        x = self._matrix(inputs)
        if len(self.inputs) == 1:
            return {self.inputs[0].name: x}
        return {i.name: x[:, [k]].astype(t) for k, (i, t) in enumerate(zip(self.inputs, self._column_dtypes))}

    def predict(self, inputs: Any) -> Any:
        """Return the first output as a numpy array."""
        import numpy as np

        out = np.asarray(self.session.run(self.outputs[:1], self._feed(inputs))[0])
        return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, inputs: Any) -> Any:
        """Return the probabilities output (classifiers converted without a ZipMap)."""
        import numpy as np

        if self._proba is None:
            raise ValidationError(f"this ONNX model has no probabilities output (outputs: {self.outputs})")
        out = self.session.run([self._proba], self._feed(inputs))[0]
        if isinstance(out, list):  # a ZipMap output: one {class: p} dict per row
            return np.array([[row[k] for k in sorted(row)] for row in out])
        return np.asarray(out)


class OnnxRuntime:
    """ONNX models (bytes, ModelProto or a .onnx file) run with onnxruntime."""

    flavor = "onnx"

    def save(self, model: Any, path: Path) -> None:
        """Write the model as path/model.onnx."""
        path.mkdir(parents=True, exist_ok=True)
        if isinstance(model, bytes | bytearray):
            data = bytes(model)
        elif hasattr(model, "SerializeToString"):
            data = model.SerializeToString()
        elif isinstance(model, str | Path) and Path(model).is_file():
            data = Path(model).read_bytes()
        else:
            raise ValidationError(f"the onnx flavor takes bytes, an onnx ModelProto or a .onnx path, got "
                                  f"{type(model).__name__}")
        (path / "model.onnx").write_bytes(data)

    def load(self, path: Path, device: str | None = None) -> LoadedOnnx:
        """Open an InferenceSession (CUDA provider first when available and device allows)."""
        import onnxruntime as ort

        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        try:
            session = ort.InferenceSession(str(_one_file(path, ("model.onnx",))), providers=providers)
        except Exception as e:  # onnxruntime raises its own untyped Fail/InvalidGraph errors
            raise PluginError(f"onnxruntime cannot load {path / 'model.onnx'}: {e}") from e
        return LoadedOnnx(session, input_columns(path))

    def import_file(self, src: Path, path: Path) -> None:
        """Take a .onnx file as the model."""
        self.save(src, path)


# ------------------------------------------------------------------ plain Python
class LoadedFunction:
    """A pickled callable (or object with .predict) called with a pandas DataFrame."""

    def __init__(self, fn: Any, columns: list[str] | None):
        self.fn = getattr(fn, "predict", fn)
        self.columns = columns

    def predict(self, inputs: Any) -> Any:
        """Call the function on a DataFrame of the inputs and return a numpy array."""
        import numpy as np
        import pandas as pd

        if hasattr(inputs, "column_names"):
            inputs = inputs.to_pandas()
        elif isinstance(inputs, dict):
            inputs = pd.DataFrame({k: v if isinstance(v, list | tuple | np.ndarray) else [v] for k, v in inputs.items()})
        if self.columns and list(inputs.columns) != self.columns:
            inputs = inputs[self.columns]
        return np.asarray(self.fn(inputs))


class PythonFunctionRuntime:
    """Any Python callable, pickled with cloudpickle so lambdas and local functions work."""

    flavor = "python"

    def save(self, model: Any, path: Path) -> None:
        """Pickle the callable to path/model.pkl."""
        if not callable(model) and not hasattr(model, "predict"):
            raise ValidationError(f"the python flavor needs a callable or an object with .predict, got "
                                  f"{type(model).__name__}")
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.pkl").write_bytes(_pickler().dumps(model))

    def load(self, path: Path, device: str | None = None) -> LoadedFunction:
        """Unpickle the callable."""
        data = _one_file(path, ("model.pkl",)).read_bytes()
        return LoadedFunction(pickle.loads(data), input_columns(path))

    def import_file(self, src: Path, path: Path) -> None:
        """Take a pickle file as the model."""
        path.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path / "model.pkl")


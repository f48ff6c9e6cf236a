"""Model runtimes: scikit-learn, torch, ONNX Runtime and plain Python functions."""

from __future__ import annotations

from typing import Any

from forgeml import hookimpl


def _sklearn(settings: Any, workspace: Any) -> Any:
    from forgeml.plugins.runtimes.flavors import SklearnRuntime

    return SklearnRuntime()


def _torch(settings: Any, workspace: Any) -> Any:
    from forgeml.plugins.runtimes.flavors import TorchRuntime

    return TorchRuntime(settings)


def _onnx(settings: Any, workspace: Any) -> Any:
    from forgeml.plugins.runtimes.flavors import OnnxRuntime

    return OnnxRuntime()


def _python(settings: Any, workspace: Any) -> Any:
    from forgeml.plugins.runtimes.flavors import PythonFunctionRuntime

    return PythonFunctionRuntime()


def _torch_settings() -> type:
    from forgeml.plugins.runtimes.settings import TorchSettings

    return TorchSettings


@hookimpl
def forgeml_register_runtimes(register):
    """Offer the sklearn, torch, onnx and python flavors."""
    register("sklearn", _sklearn, description="scikit-learn estimators and pipelines (joblib)")
    register("torch", _torch, settings=_torch_settings(), description="torch modules: TorchScript or pickled")
    register("onnx", _onnx, description="ONNX models on onnxruntime")
    register("python", _python, description="any Python callable (cloudpickle)")


@hookimpl
def forgeml_register_settings(register):
    """Declare [runtimes.torch]: device, quantization and compilation of torch models."""
    register("runtimes.torch", _torch_settings())

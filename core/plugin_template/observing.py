"""Templates for notifiers, monitors, runtimes and GPU inventories."""

from __future__ import annotations

OBSERVING: dict[str, dict[str, str]] = {
    "notifier": {
        "suite": "NotifierSuite",
        "description": "A notifier that appends each alert as a JSON line to a file.",
        "selection": "    [monitoring.notifiers.{name}]\n    plugin = \"{name}\"\n    path = \"alerts-{name}.jsonl\"",
        "imports": "import json\nfrom pathlib import Path",
        "plugin": '''from forgeml.errors import PluginError


@dataclass
class Settings:
    """Settings of the {name} notifier."""

    path: str = setting("alerts-{name}.jsonl", "JSON-lines file the alerts go to, relative to the workspace root.")


class {cls}:
    """Appends each alert to a JSON-lines file."""

    name = "{name}"

    def __init__(self, settings: Settings, workspace: Any):
        path = Path(settings.path)
        root = getattr(workspace, "root", None)
        self.path = path if path.is_absolute() or root is None else Path(root) / path

    def notify(self, alert: Any) -> None:
        """Append the alert; a file that cannot be written is a delivery failure (ForgeError)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(dict(alert), ensure_ascii=False, default=str) + "\\n")
        except OSError as e:
            raise PluginError(f"{name} notifier: cannot write {{self.path}}: {{e.strerror}}") from e


@hookimpl
def forgeml_register_notifiers(register):
    """Offer the {name} notifier."""
    register("{name}", {cls}, settings=Settings, description="alerts as JSON lines in a file")
''',
        "test": '''import json

import pytest

from forgeml.testing import NotifierSuite
from {package}.plugin import {cls}, Settings


class Test{cls}(NotifierSuite):
    @pytest.fixture
    def notifier(self, tmp_path):
        return {cls}(Settings(path=str(tmp_path / "alerts.jsonl")), None)

    @pytest.fixture
    def delivered(self, tmp_path):
        path = tmp_path / "alerts.jsonl"
        return lambda: [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    @pytest.fixture
    def failing_notifier(self, tmp_path):
        (tmp_path / "blocker").write_text("a file where a folder is needed")
        return {cls}(Settings(path=str(tmp_path / "blocker" / "alerts.jsonl")), None)
''',
    },
    "monitor": {
        "suite": "MonitorSuite",
        "description": "A drift test on numeric columns: the shift of the mean in reference standard deviations.",
        "selection": "    [monitoring]\n    numeric_tests = [\"psi\", \"ks\", \"{name}\"]",
        "imports": "import math",
        "plugin": '''from forgeml.contracts import MonitorResult
from forgeml.errors import ValidationError


@dataclass
class Settings:
    """Settings of the {name} drift test."""

    threshold: float = setting(0.2, "Mean shift, in reference standard deviations, from which a column drifted.")
    alpha: float = setting(0.001, "p-value below which the shift is significant.")


class {cls}:
    """Compares the means of two numeric samples (a z-test on the difference)."""

    name = "{name}"
    kinds = ("numeric",)

    def __init__(self, settings: Settings | None = None, workspace: Any = None):
        self.settings = settings or Settings()

    def compare(self, column: str, reference: Any, current: Any) -> MonitorResult:
        """Return the mean shift in reference standard deviations, its p-value and whether it drifted."""
        if len(reference) < 2 or len(current) < 2:
            raise ValidationError(f"{name}: column {{column!r}} needs at least 2 values per sample")
        std = float(reference.std(ddof=1)) or 1.0
        effect = abs(float(current.mean()) - float(reference.mean())) / std
        z = effect / math.sqrt(1 / len(reference) + 1 / len(current))
        p_value = math.erfc(z / math.sqrt(2))
        drifted = effect >= self.settings.threshold and p_value < self.settings.alpha
        severity = "none" if not drifted else "major" if effect >= 4 * self.settings.threshold else "minor"
        return MonitorResult(self.name, column, effect, p_value, effect, drifted, severity)


@hookimpl
def forgeml_register_monitors(register):
    """Offer the {name} drift test."""
    register("{name}", {cls}, settings=Settings, description="mean shift in reference standard deviations")
''',
        "test": '''import pytest

from forgeml.testing import MonitorSuite
from {package}.plugin import {cls}


class Test{cls}(MonitorSuite):
    @pytest.fixture
    def monitor(self):
        return {cls}()
''',
    },
    "runtime": {
        "suite": "ModelRuntimeSuite",
        "description": "A model flavor for any picklable object with predict() or any picklable function.",
        "selection": "    # a runtime is chosen per model: register_model(name, model, flavor=\"{name}\")",
        "imports": "import pickle\nfrom pathlib import Path",
        "plugin": '''from forgeml.errors import PluginError


class Loaded:
    """A loaded model: calls its predict() or the function itself."""

    def __init__(self, model: Any):
        self.model = model

    def predict(self, inputs: Any) -> Any:
        """Predict a batch (a DataFrame or an Arrow table)."""
        if hasattr(inputs, "to_pandas"):
            inputs = inputs.to_pandas()
        return self.model.predict(inputs) if hasattr(self.model, "predict") else self.model(inputs)


@dataclass
class Settings:
    """Settings of the {name} runtime."""

    protocol: int = setting(pickle.HIGHEST_PROTOCOL, "Pickle protocol used to save models.")


class {cls}:
    """Saves a model as model.pkl in its folder."""

    flavor = "{name}"

    def __init__(self, settings: Settings | None = None, workspace: Any = None):
        self.settings = settings or Settings()

    def save(self, model: Any, path: Path) -> None:
        """Write the model into the folder."""
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "model.pkl").write_bytes(pickle.dumps(model, protocol=self.settings.protocol))

    def load(self, path: Path, device: str | None = None) -> Loaded:
        """Load the model from the folder; a folder without model.pkl is a ForgeError."""
        try:
            return Loaded(pickle.loads((Path(path) / "model.pkl").read_bytes()))
        except FileNotFoundError as e:
            raise PluginError(f"{name} runtime: no model.pkl in {{path}}; was it saved with this flavor?") from e


@hookimpl
def forgeml_register_runtimes(register):
    """Offer the {name} flavor."""
    register("{name}", {cls}, settings=Settings, description="pickled models and functions")
''',
        "test": '''import functools

import numpy as np
import pandas as pd
import pytest

from forgeml.testing import ModelRuntimeSuite
from {package}.plugin import {cls}


def double_x(frame):
    return 2.0 * frame["x"].to_numpy()


class Test{cls}(ModelRuntimeSuite):
    @pytest.fixture
    def open_runtime(self):
        return functools.partial({cls})

    @pytest.fixture
    def example(self):
        frame = pd.DataFrame({{"x": np.arange(10.0)}})
        return double_x, frame, 2.0 * np.arange(10.0)
''',
    },
    "gpu_inventory": {
        "suite": "GpuInventorySuite",
        "description": "A GPU inventory listing the GPUs named in plugins.toml.",
        "selection": "    [scheduler.inventory]\n    plugin = \"{name}\"\n    names = [\"NVIDIA L4\", \"NVIDIA L4\"]",
        "imports": "",
        "plugin": '''from forgeml.contracts import GpuDevice


@dataclass
class Settings:
    """Settings of the {name} inventory."""

    names: list[str] = setting([], "Product name of each GPU, in index order.")
    memory_mb: int = setting(24576, "Memory of each GPU in MiB.")


class {cls}:
    """GPUs declared in plugins.toml, all idle."""

    def __init__(self, settings: Settings | None = None, workspace: Any = None):
        self.settings = settings or Settings()

    def devices(self) -> list[GpuDevice]:
        """Return the declared GPUs."""
        s = self.settings
        return [GpuDevice(index=i, name=n, memory_total_mb=s.memory_mb, memory_free_mb=s.memory_mb,
                          uuid=f"GPU-{name}-{{i}}") for i, n in enumerate(s.names)]


@hookimpl
def forgeml_register_gpu_inventories(register):
    """Offer the {name} inventory."""
    register("{name}", {cls}, settings=Settings, description="GPUs named in plugins.toml")
''',
        "test": '''import pytest

from forgeml.testing import GpuInventorySuite
from {package}.plugin import {cls}, Settings


class Test{cls}(GpuInventorySuite):
    @pytest.fixture
    def inventory(self):
        return {cls}(Settings(names=["NVIDIA L4", "NVIDIA L4"]))
''',
    },
}


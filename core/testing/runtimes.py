"""Conformance suite for model runtimes (contracts: :class:`forgeml.contracts.ModelRuntime`, ``LoadedModel``).

Subclass :class:`ModelRuntimeSuite` as ``Test...`` and give it two fixtures: ``open_runtime``, a
picklable zero-argument callable building your runtime, and ``example``, a tuple ``(model, inputs,
expected)``: a model of your flavor, a pandas DataFrame batch and the outputs it must predict. Rules:

- ``save`` writes everything into the folder: a runtime loading it in another process (or after a
  restart) predicts the same outputs, within float32 rounding;
- ``predict`` takes a DataFrame or an Arrow table with the same result, one output per row;
- when a loaded model sets ``matrix_columns``, ``predict`` on a 2-D numpy array of those columns agrees;
- loading a folder the flavor did not write raises ForgeError.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forgeml.contracts import LoadedModel, ModelRuntime
from forgeml.errors import ForgeError
from forgeml.testing.process import run_elsewhere


def _predict_elsewhere(open_runtime: Callable[[], Any], folder: str, inputs: Any) -> Any:
    import numpy as np

    return np.asarray(open_runtime().load(Path(folder), "cpu").predict(inputs))


def assert_same_outputs(got: Any, expected: Any, what: str) -> None:
    """Fail unless two batches of outputs agree in shape and values (float32 tolerance)."""
    import numpy as np

    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape, f"{what}: expected outputs of shape {expected.shape}, got {got.shape}"
    if np.issubdtype(expected.dtype, np.number):
        assert np.allclose(got, expected, rtol=1e-4, atol=1e-5, equal_nan=True), \
            f"{what}: expected {expected[:5].tolist()}..., got {got[:5].tolist()}..."
    else:
        assert got.tolist() == expected.tolist(), f"{what}: expected {expected[:5].tolist()}, got {got[:5].tolist()}"


class ModelRuntimeSuite:
    """Tests every model runtime must pass; subclass it and define ``open_runtime`` and ``example``."""

    @pytest.fixture
    def open_runtime(self) -> Callable[[], Any]:
        """A picklable callable building the runtime under test: override it."""
        pytest.fail("define an `open_runtime` fixture returning a picklable callable that builds your runtime",
                    pytrace=False)

    @pytest.fixture
    def example(self) -> tuple[Any, Any, Any]:
        """(model, inputs DataFrame, expected outputs): override it."""
        pytest.fail("define an `example` fixture returning (model, inputs DataFrame, expected outputs)", pytrace=False)

    @pytest.fixture
    def saved(self, open_runtime: Callable[[], Any], example: tuple[Any, Any, Any], tmp_path: Path) -> Path:
        """The example model saved by the runtime into a fresh folder."""
        folder = tmp_path / "model"
        open_runtime().save(example[0], folder)
        return folder

    def test_implements_the_contract(self, open_runtime: Callable[[], Any]) -> None:
        """The runtime has save, load and a flavor name."""
        runtime = open_runtime()
        assert isinstance(runtime, ModelRuntime)
        assert isinstance(runtime.flavor, str) and runtime.flavor

    def test_save_load_predict(self, open_runtime: Callable[[], Any], example: tuple[Any, Any, Any],
                               saved: Path) -> None:
        """A model saved then loaded by a new runtime predicts the expected outputs, one per row."""
        loaded = open_runtime().load(saved, "cpu")
        assert isinstance(loaded, LoadedModel), f"load must return a LoadedModel, got {type(loaded).__name__}"
        out = loaded.predict(example[1])
        assert len(out) == len(example[1]), f"expected one output per row ({len(example[1])}), got {len(out)}"
        assert_same_outputs(out, example[2], "predictions after save and load")

    def test_arrow_and_matrix_inputs_agree(self, open_runtime: Callable[[], Any], example: tuple[Any, Any, Any],
                                           saved: Path) -> None:
        """An Arrow table gives what the DataFrame gives; so does a matrix when matrix_columns is set."""
        import pyarrow as pa

        loaded = open_runtime().load(saved, "cpu")
        assert_same_outputs(loaded.predict(pa.Table.from_pandas(example[1], preserve_index=False)), example[2],
                            "predictions from an Arrow table")
        columns = getattr(loaded, "matrix_columns", None)
        if columns:
            assert_same_outputs(loaded.predict(example[1][list(columns)].to_numpy()), example[2],
                                "predictions from a matrix of matrix_columns")

    def test_another_process_loads_what_was_saved(self, open_runtime: Callable[[], Any],
                                                  example: tuple[Any, Any, Any], saved: Path) -> None:
        """The saved folder alone is enough: another process loads it and predicts the same outputs."""
        assert_same_outputs(run_elsewhere(_predict_elsewhere, open_runtime, str(saved), example[1]), example[2],
                            "predictions in another process")

    def test_a_folder_of_another_flavor_is_refused(self, open_runtime: Callable[[], Any], tmp_path: Path) -> None:
        """Loading a folder holding no model of this flavor raises ForgeError."""
        folder = tmp_path / "not-a-model"
        folder.mkdir()
        (folder / "README.txt").write_text("nothing to load here")
        with pytest.raises(ForgeError):
            open_runtime().load(folder, "cpu")

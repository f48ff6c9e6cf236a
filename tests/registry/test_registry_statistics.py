"""Training statistics stored inside a model version at registration."""

from __future__ import annotations

import pandas as pd

from forgeml.registry.statistics import read_statistics, typical_values


def _double(frame: pd.DataFrame):
    return frame["x"].to_numpy() * 2


def test_training_data_statistics_are_stored_with_the_version(workspace):
    from forgeml.registry import get_model_version, register_model

    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0, None], "city": ["oslo", "rome", "oslo", "oslo", "rome"]})
    mv = register_model("fn", _double, flavor="python", input_example=train[["x"]].head(2), training_data=train)
    stats = read_statistics(get_model_version("fn", mv.version), workspace)
    assert stats["x"] == {"kind": "number", "count": 4, "mean": 4.0, "std": stats["x"]["std"], "min": 1.0,
                          "max": 10.0, "training": True}
    assert abs(stats["x"]["std"] - 3.5355) < 1e-3
    assert stats["city"] == {"kind": "category", "count": 5, "mode": "oslo", "values": ["oslo", "rome"],
                             "training": True}
    assert typical_values(stats) == {"x": 4.0, "city": "oslo"}


def test_without_training_rows_the_input_example_gives_the_statistics_and_one_row_gives_none(workspace):
    from forgeml.registry import register_model

    many = register_model("fn", _double, flavor="python", input_example=pd.DataFrame({"x": [1.0, 3.0]}))
    one = register_model("fn", _double, flavor="python", input_example=pd.DataFrame({"x": [1.0]}))
    assert typical_values(read_statistics(many, workspace)) == {"x": 2.0}
    assert read_statistics(one, workspace) == {}

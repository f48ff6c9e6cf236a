"""The response's warnings: values training never saw (an unseen category, a number outside its range),
from the statistics stored with the model's training data; never from a small input example."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forgeml.serving import EndpointConfig


def _frame(n: int = 200) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"f0": rng.uniform(-3, 3, n), "color": rng.choice(["red", "green", "blue"], n)})
    return x, (x.f0 > 0).astype(int)


def _register(name: str, training: bool) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from forgeml.registry import promote, register_model

    x, y = _frame()
    model = make_pipeline(ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["color"])],
                                            remainder="passthrough"), LogisticRegression()).fit(x, y)
    mv = register_model(name, model, input_example=x.head(3),
                        training_data=x if training else None)
    promote(name, mv.version, "production", reason="test setup")
    return mv


def test_unseen_categories_and_out_of_range_values_are_warned_per_request(workspace, serve):
    _register("shapes", training=True)
    srv = serve([EndpointConfig("shapes", "shapes@production")])
    seen = srv.predict("shapes", {"rows": [{"f0": 0.5, "color": "red"}, {"f0": -2.0, "color": "blue"}]})
    assert seen.status_code == 200 and "warnings" not in seen.json()
    odd = srv.predict("shapes", {"rows": [{"f0": 0.5, "color": "green"}, {"f0": 40.0, "color": "purple"}]})
    assert odd.status_code == 200, odd.text
    body = odd.json()
    assert len(body["predictions"]) == 2
    by_field = {w["field"]: w for w in body["warnings"]}
    assert set(by_field) == {"rows[1].color", "rows[1].f0"}
    assert by_field["rows[1].color"]["kind"] == "unseen_category"
    assert by_field["rows[1].color"]["message"] == "color = 'purple' was not seen in the training data"
    assert by_field["rows[1].f0"]["kind"] == "out_of_range"
    assert by_field["rows[1].f0"]["message"].startswith("f0 = 40 is above the range seen in the training data [-")
    many = srv.predict("shapes", {"rows": [{"f0": 9.0 + i, "color": f"c{i}"} for i in range(15)]}).json()
    assert len(many["warnings"]) == 21 and many["warnings"][-1]["message"] == "10 more value(s) outside what " \
                                                                              "training saw"


def test_statistics_from_an_input_example_alone_raise_no_warnings(workspace, serve):
    _register("sampled", training=False)  # three example rows are no picture of training
    srv = serve([EndpointConfig("sampled", "sampled@production")])
    body = srv.predict("sampled", {"rows": [{"f0": 40.0, "color": "purple"}]}).json()
    assert "warnings" not in body and len(body["predictions"]) == 1

"""Fixtures for serving tests: a registered scikit-learn model and servers started on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd
import pytest
from serving_support import RunningServer, start_server, training_frame


@pytest.fixture
def sklearn_model(workspace: Any) -> Any:
    """A logistic regression registered as clf v1 and promoted to production."""
    from sklearn.linear_model import LogisticRegression

    from forgeml.registry import promote, register_model

    x, y = training_frame()
    mv = register_model("clf", LogisticRegression().fit(x, y), input_example=x.head(5))
    promote("clf", mv.version, "production", reason="test setup")
    return mv


@pytest.fixture
def serve(workspace: Any) -> Iterator[Callable[..., RunningServer]]:
    """Start servers for endpoint configs; every one is stopped at teardown."""
    from forgeml.serving import ServerOptions, build_app

    running: list[RunningServer] = []

    def start(endpoints: Sequence[Any], options: Any = None, ready: bool = True, **kwargs: Any) -> RunningServer:
        options = options or ServerOptions(poll_interval_s=0.2, predlog_flush_s=0.2)
        srv = start_server(build_app(list(endpoints), options, workspace, **kwargs))
        running.append(srv)
        if ready:
            srv.wait_ready()
        return srv

    yield start
    for srv in running:
        srv.stop()


def spend_ratio(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"spend_ratio": frame["spend"] / frame["amount"]})


def score(frame: pd.DataFrame):
    return (frame["spend"] * 10 + frame["clicks"] + frame["spend_ratio"]).to_numpy()


@pytest.fixture
def entity_model(workspace):
    """A user view pushed to the online store, an on-demand ratio, and a model over both."""
    from forgeml.features import (
        Entity,
        Feature,
        FeatureStore,
        FeatureView,
        OnDemandFeatureView,
        PushSource,
        RequestSource,
    )
    from forgeml.registry import promote, register_model

    user = Entity("user", join_keys=["user_id"])
    stats = FeatureView("user_stats", entities=[user], source=PushSource("user_stats_push"),
                        features=[Feature("clicks", "int64"), Feature("spend", "float64")])
    ratio = OnDemandFeatureView("txn", sources=[stats, RequestSource("request", [("amount", "float64")])],
                                features=[Feature("spend_ratio")], transformation=spend_ratio)
    store = FeatureStore(workspace)
    store.apply([user, stats, ratio])
    now = pd.Timestamp.now(tz="UTC")
    store.push("user_stats", pd.DataFrame({"user_id": [1, 2, 3], "event_timestamp": [now] * 3,
                                           "clicks": [5, 7, 9], "spend": [2.0, 4.0, 8.0]}))
    example = pd.DataFrame({"clicks": [1, 2], "spend": [1.0, 2.0], "spend_ratio": [0.5, 1.0]})
    mv = register_model("scorer", score, flavor="python", input_example=example,
                        feature_views=["user_stats:clicks", "user_stats:spend", "txn:spend_ratio"],
                        entity_keys=["user_id"])
    promote("scorer", mv.version, "production", reason="test")
    return mv

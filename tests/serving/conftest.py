"""Fixtures for serving tests: a registered scikit-learn model and servers started on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

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

"""The Label Studio round trip against a real server on loopback (tests/services/label-studio.sh).

A label set's project is created from its dataset and classes, active learning sends tasks with the
model's pre-labels, annotations made through Label Studio's REST API (as its UI does) come back into
the label set, and a second pull brings only what changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.service


@pytest.fixture
def ls_workspace(workspace: Any, pool: Any, label_studio: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The pool's workspace with plugins.toml choosing the label_studio backend on the test server."""
    import tomlkit

    from forgeml.selection import use_plugin
    from forgeml.workspace import Workspace, set_current

    use_plugin(workspace.root, "labeling.backend", "label_studio")
    path = workspace.root / "plugins.toml"
    doc = tomlkit.parse(path.read_text())
    doc["labeling"]["backend"]["url"] = label_studio.url
    doc["labeling"]["backend"]["token"] = {"env": "FORGEML_TEST_LABEL_STUDIO_TOKEN"}
    path.write_text(tomlkit.dumps(doc))
    monkeypatch.setenv("FORGEML_TEST_LABEL_STUDIO_TOKEN", label_studio.token)
    ws = Workspace(workspace.root)
    set_current(ws)
    yield ws
    ws.close()


def _annotate(client: Any, project: int, key: str, label: str) -> None:
    task = next(t for t in client.tasks.list(project=project, fields="all") if t.data["forgeml_key"] == key)
    result = [{"from_name": "label", "to_name": "item", "type": "choices", "value": {"choices": [label]}}]
    if task.annotations:
        client.annotations.update(id=task.annotations[0]["id"], result=result)
    else:
        client.annotations.create(id=task.id, result=result)


def test_label_studio_round_trip(ls_workspace: Any, pool: Any) -> None:
    """Project, tasks with pre-labels, annotations imported, incremental pull, and training rows out."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from forgeml.datasets import read_dataset
    from forgeml.labeling import get_labels, training_set
    from forgeml.labeling.active import next_batch
    from forgeml.labeling.annotate import backend, pull
    from forgeml.registry.models import register_model

    _, y, _ = pool
    table = read_dataset("pool@v1", workspace=ls_workspace)
    x = pd.DataFrame({c: table[c].to_numpy() for c in "abc"})
    uri = register_model("clf", LogisticRegression().fit(x[:40], np.array(["neg", "pos"])[y[:40]]),
                         input_example=x[:5], workspace=ls_workspace).uri

    batch = next_batch("pool-labels", uri, strategy_name="margin", n=6, workspace=ls_workspace)
    assert (batch.backend, batch.sent) == ("label_studio", 6)
    client, project = backend(ls_workspace).client, int(batch.project)
    assert "is it positive?" in client.projects.get(id=project).label_config
    tasks = list(client.tasks.list(project=project, fields="all"))
    assert sorted(t.data["forgeml_key"] for t in tasks) == sorted(batch.keys)
    guesses = dict(zip(batch.keys, zip(batch.predictions, batch.scores)))
    for t in tasks:
        prediction = t.predictions[0]
        assert prediction.result[0]["value"]["choices"] == [guesses[t.data["forgeml_key"]][0]]
        assert prediction.score == pytest.approx(guesses[t.data["forgeml_key"]][1])
        assert prediction.model_version == uri
        assert float(t.data["a"]) == pytest.approx(table["a"][int(t.data["forgeml_key"])].as_py())

    # a resend of the same items adds nothing
    again = next_batch("pool-labels", uri, strategy_name="margin", n=3, send=False, workspace=ls_workspace)
    assert not set(again.keys) & set(batch.keys)

    first = batch.keys[:4]
    for key in first:
        _annotate(client, project, key, ["neg", "pos"][y[int(key)]])
    got = pull("pool-labels", workspace=ls_workspace)
    assert got["annotations"] == 4 and got["skipped"] == []
    records = get_labels("pool-labels", kinds=["annotator"], workspace=ls_workspace)
    assert sorted((r.key, r.label) for r in records) == sorted((k, ["neg", "pos"][y[int(k)]]) for k in first)
    assert {r.source for r in records} == {"admin@example.com"}
    assert pull("pool-labels", workspace=ls_workspace)["annotations"] == 0

    flipped = first[0]
    new_label = ["pos", "neg"][y[int(flipped)]]
    _annotate(client, project, flipped, new_label)
    _annotate(client, project, batch.keys[4], "pos")
    assert pull("pool-labels", workspace=ls_workspace)["annotations"] == 2
    labels = {r.key: r.label for r in get_labels("pool-labels", kinds=["annotator"], workspace=ls_workspace)}
    assert labels[flipped] == new_label and labels[batch.keys[4]] == "pos" and len(labels) == 5
    assert training_set("pool-labels", workspace=ls_workspace).num_rows == 5


def test_label_studio_errors_are_one_line(ls_workspace: Any, label_studio: Any) -> None:
    """A wrong token and an unreachable server are ForgeErrors naming the server, never its token."""
    from forgeml.contracts import AnnotationTask
    from forgeml.errors import ForgeError
    from forgeml.plugins.label_studio import LabelStudioBackend, LabelStudioSettings

    class Token:
        def get(self) -> str:
            return "not-the-token"

    bad = LabelStudioBackend(LabelStudioSettings(url=label_studio.url, token=Token()))
    with pytest.raises(ForgeError, match="HTTP 401") as err:
        bad.create_project("x", ["a", "b"], ["f"])
    assert "not-the-token" not in str(err.value)
    gone = LabelStudioBackend(LabelStudioSettings(url="http://127.0.0.1:9", token=Token(), timeout_s=2))
    with pytest.raises(ForgeError, match="cannot reach the server"):
        gone.send_tasks("1", [AnnotationTask("k", {"f": 1})])

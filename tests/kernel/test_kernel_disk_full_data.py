"""A full disk while pushing features and while writing the prediction log: a one-line StorageError
(or, for the log, which must never fail serving, a counted one-line error), nothing half-written left
behind, and what was there before still readable.

The full disk is real: RLIMIT_FSIZE in a child process makes any file write past the limit fail with
EFBIG, through the same code path as ENOSPC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pandas as pd

LIMIT = textwrap.dedent("""
    import json, os, resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
""")

PUSH_CHILD = LIMIT + textwrap.dedent("""
    import pandas as pd
    from datetime import UTC, datetime, timedelta
    from forgeml.errors import ForgeError
    from forgeml.features import FeatureStore
    from forgeml.workspace import current
    now = datetime.now(UTC)
    n = 200_000
    rows = pd.DataFrame({"user_id": range(n), "score": [float(i) for i in range(n)],
                         "event_timestamp": [now - timedelta(seconds=1)] * n})
    out = {}
    try:
        FeatureStore(current()).push("live", rows, to=sys.argv[2])
        out["ok"] = True
    except ForgeError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(out))
""")


def _child(code: str, workspace, *args: str) -> dict:
    env = {**os.environ, "FORGEML_HOME": str(workspace.root)}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _leftovers(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and
                  (p.name.endswith(".tmp") or ".tmp." in p.name or p.name.endswith(".part")))


def test_a_full_disk_while_pushing_features(workspace):
    from forgeml.features import Entity, Feature, FeatureStore, FeatureView, PushSource

    store = FeatureStore(workspace)
    user = Entity("user", join_keys=["user_id"])
    store.apply([user, FeatureView("live", entities=[user], source=PushSource("live_push"),
                                   features=[Feature("score")])])
    before = pd.DataFrame({"user_id": [1, 2], "score": [0.5, 0.25],
                           "event_timestamp": [datetime.now(UTC) - timedelta(minutes=1)] * 2})
    assert store.push("live", before) == 2
    for target in ("offline", "online_and_offline"):
        out = _child(PUSH_CHILD, workspace, str(256 * 1024), target)
        assert "error" in out, out
        assert out["error"].startswith("StorageError: ") and "\n" not in out["error"], out
        assert "File too large" in out["error"] or "full" in out["error"], out
        assert _leftovers(workspace.root) == []
        # what was pushed before still reads, offline and online, and nothing of the failed push shows
        offline = store.offline.read("live")
        assert sorted(offline.column("user_id").to_pylist()) == [1, 2]
        online = store.get_online_features([{"user_id": 1}, {"user_id": 5}], ["live:score"]).to_dict()
        assert online["score"] == [0.5, None]


PREDLOG_CHILD = LIMIT + textwrap.dedent("""
    import datetime as dt
    from forgeml.serving.predlog import PredictionLogger, log_root
    from forgeml.workspace import current
    logger = PredictionLogger(log_root(current()), flush_interval_s=60)
    n = 100_000
    logger.log("clf", 1, "primary", "req-big", dt.datetime.now(dt.UTC), 1.0,
               {"f0": [float(i) for i in range(n)]}, [0.5] * n, n)
    logger.flush()
    print(json.dumps({"errors": logger.errors, "last_error": logger.last_error, "written": logger.written_rows}))
""")


def test_a_full_disk_while_writing_the_prediction_log(workspace):
    import datetime as dt

    from forgeml.serving.predlog import PredictionLogger, log_root, read_prediction_log

    logger = PredictionLogger(log_root(workspace))
    logger.log("clf", 1, "primary", "req-small", dt.datetime.now(dt.UTC), 1.0, {"f0": [1.0, 2.0]}, [0.1, 0.2], 2)
    logger.close()
    out = _child(PREDLOG_CHILD, workspace, str(64 * 1024))
    assert (out["errors"], out["written"]) == (1, 0), out
    assert out["last_error"].startswith("StorageError: ") and "\n" not in out["last_error"], out
    assert "File too large" in out["last_error"] or "full" in out["last_error"], out
    assert _leftovers(workspace.root) == []
    table = read_prediction_log("clf", workspace=workspace)
    assert table.column("_request_id").to_pylist() == ["req-small", "req-small"]

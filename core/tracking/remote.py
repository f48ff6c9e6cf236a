"""Runs logged through `forgeml server`: metrics buffered and sent in batches by a background thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forgeml.errors import NotFoundError, ValidationError
from forgeml.tracking.records import FINISHED, ArtifactRecord, Run


class RemoteRun(Run):
    """A run this process logs to over HTTP; the same methods as a local active run."""

    def bind(self, client: Any) -> RemoteRun:
        """Attach the client and a writer that posts metric points in batches."""
        from forgeml.tracking.writer import MetricWriter

        self._client = client
        self._writer = MetricWriter(self._send, 0.5)
        self._steps: dict[str, int] = {}
        self._owner_pid = os.getpid()
        self._ended = False
        self._sampler = None
        self._lock = threading.Lock()
        return self

    def __enter__(self) -> RemoteRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from forgeml.tracking.active import status_for

        self.end(status_for(exc))

    def _send(self, points: Sequence[tuple[int, str, int, float, float]]) -> None:
        import orjson

        # columns, encoded by orjson: a tenth of the cost of per-point objects through the stdlib encoder
        body = orjson.dumps({"metrics": {"keys": [p[1] for p in points], "steps": [p[2] for p in points],
                                         "timestamps": [p[3] for p in points], "values": [p[4] for p in points]}})
        self._client.call("POST", f"/runs/{self.id}/log", content=body,
                          headers={"Content-Type": "application/json"})

    def log_metric(self, key: str, value: Any, step: int | None = None, timestamp: float | None = None) -> None:
        """Buffer one metric point; a background thread sends batches."""
        if key.__class__ is not str or not key:
            raise ValidationError(f"metric key must be a non-empty string, got {key!r}")
        step = self._steps.get(key, -1) + 1 if step is None else int(step)
        self._steps[key] = step
        v = float(value) + 0.0  # -0.0 reads back as 0.0 everywhere, as from a local run
        self.metrics[key] = v
        self._writer.append((0, key, step, time.time() if timestamp is None else float(timestamp), v))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, timestamp: float | None = None) -> None:
        """Buffer several metric points at the same step and time."""
        ts = time.time() if timestamp is None else float(timestamp)
        for key, value in metrics.items():
            self.log_metric(key, value, step, ts)

    def flush(self) -> int:
        """Send every buffered point now; return how many were sent."""
        return self._writer.flush()

    def log_param(self, key: str, value: Any) -> None:
        """Record one param."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params."""
        values = {str(k): str(v) for k, v in params.items()}
        self._client.call("POST", f"/runs/{self.id}/log", json={"params": values})
        self.params.update(values)

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags."""
        values = {str(k): str(v) for k, v in tags.items()}
        self._client.call("POST", f"/runs/{self.id}/log", json={"tags": values})
        self.tags.update(values)

    def log_input(self, dataset: str | None = None, feature_view: str | None = None, **refs: str) -> None:
        """Record what the run read: dataset="name@v3", feature_view="view@2", or other kind=ref pairs."""
        found = [{"kind": kind, "ref": str(ref)} for kind, ref in
                 {"dataset": dataset, "feature_view": feature_view, **refs}.items() if ref is not None]
        if not found:
            raise ValidationError("log_input needs at least one reference, e.g. dataset='name@v3'")
        self._client.call("POST", f"/runs/{self.id}/inputs", json={"inputs": found})
        self.inputs.extend(found)

    def log_bytes(self, data: bytes, name: str) -> ArtifactRecord:
        """Upload bytes as an artifact at a path of this run."""
        row = self._client.call("PUT", f"/runs/{self.id}/artifacts/{name}", content=data)
        return ArtifactRecord(**row)

    def log_text(self, text: str, name: str) -> ArtifactRecord:
        """Upload text as an artifact."""
        return self.log_bytes(text.encode(), name)

    def log_dict(self, value: Any, name: str) -> ArtifactRecord:
        """Upload a dict as JSON."""
        import json

        return self.log_text(json.dumps(value, indent=2, default=str), name)

    def log_artifact(self, path: str | Path, name: str | None = None) -> list[ArtifactRecord]:
        """Upload a file, or every file under a folder."""
        path = Path(path)
        if not path.exists():
            raise NotFoundError(f"cannot log artifact {str(path)!r}: no such file or folder")
        base = (name or path.name).strip("/")
        files = [(path, base)] if path.is_file() else [
            (p, f"{base}/{p.relative_to(path).as_posix()}") for p in sorted(path.rglob("*")) if p.is_file()]
        return [self.log_bytes(p.read_bytes(), rel) for p, rel in files]

    def end(self, status: str = FINISHED) -> None:
        """Send what is buffered, then record the end status on the server (once)."""
        from forgeml.tracking.active import leave_stack

        if not leave_stack(self, status):
            return
        self._writer.flush()
        if self._owner_pid != os.getpid():
            return
        row = self._client.call("POST", f"/runs/{self.id}/end", json={"status": status})
        self.status, self.end_time = row["status"], row["end_time"]


def _run(row: dict[str, Any]) -> Run:
    return Run(**{k: row[k] for k in Run.__dataclass_fields__ if k in row})


def start_run(client: Any, name: str | None, experiment: str | None, tags: Mapping[str, Any] | None,
              parent: Any, run_id: str | None) -> RemoteRun:
    """Create (or attach to) a run on the server and make it this process's active run."""
    from forgeml.tracking.active import current_stack, push

    stack = current_stack()
    attach = run_id or (os.environ.get("FORGEML_RUN_ID") if not stack and parent is None else None)
    if attach:
        row = client.call("GET", f"/runs/{attach}")
        if tags:
            client.call("POST", f"/runs/{attach}/log", json={"tags": {str(k): str(v) for k, v in tags.items()}})
    else:
        parent_id = getattr(parent, "id", parent) if parent is not None else (stack[-1].id if stack else None)
        row = client.call("POST", "/runs", json={
            "name": name, "experiment": experiment or "default", "parent": parent_id,
            "tags": {str(k): str(v) for k, v in (tags or {}).items()}})
    run = RemoteRun(**{k: row[k] for k in Run.__dataclass_fields__ if k in row}).bind(client)
    push(run)  # type: ignore[arg-type]
    return run


def get_run(client: Any, run_id: str) -> Run:
    """Return a run from the server."""
    return _run(client.call("GET", f"/runs/{run_id}"))


def search_runs(client: Any, query: str, experiments: Sequence[str] | None, include_deleted: bool,
                limit: int | None) -> Any:
    """Search on the server and rebuild the same DataFrame the local search returns."""
    import numpy as np
    import pandas as pd

    frames = []
    for experiment in experiments or [None]:
        params: dict[str, Any] = {"query": query or ""}
        if experiment:
            params["experiment"] = experiment
        if include_deleted:
            params["include_deleted"] = "true"
        if limit:
            params["limit"] = int(limit)
        answer = client.call("GET", "/runs", params=params)
        data = answer["data"]
        columns: dict[str, Any] = {}
        for name in answer["columns"]:
            values = data[name]
            if name in ("start_time", "end_time"):
                # seconds carry microseconds exactly once rounded (the store keeps microseconds)
                micros = [None if v is None else round(v * 1e6) for v in values]
                stamps = np.array([np.nan if m is None else m for m in micros], dtype="float64")
                columns[name] = pd.DatetimeIndex(stamps.astype("datetime64[us]")).tz_localize("UTC")
            elif name.startswith("metrics."):
                columns[name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
            else:
                columns[name] = pd.Series(values, dtype=object)
        frames.append(pd.DataFrame(columns, index=range(answer["count"])))
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def metric_history(client: Any, run_id: str, key: str) -> Any:
    """Return one metric's points from the server as the DataFrame the local call answers."""
    from urllib.parse import quote

    from forgeml.tracking.reading import history_frame

    answer = client.call("GET", f"/runs/{quote(run_id, safe='')}/metrics/{quote(key, safe='')}")
    return history_frame(answer["steps"], answer["timestamps"], answer["values"])


def list_artifacts(client: Any, run_id: str) -> list[ArtifactRecord]:
    """Return a run's artifact records from the server."""
    from urllib.parse import quote

    answer = client.call("GET", f"/runs/{quote(run_id, safe='')}/artifacts")
    return [ArtifactRecord(**row) for row in answer["artifacts"]]


def download_artifacts(client: Any, run_id: str, dest: str | Path, path: str | None) -> list[Path]:
    """Download a run's artifacts (all, one file or one folder) under dest, each checked against its digest."""
    import hashlib
    from urllib.parse import quote

    from forgeml.errors import CorruptObjectError
    from forgeml.tracking.reading import place_artifacts, select_artifacts

    records = select_artifacts(list_artifacts(client, run_id), run_id, path)

    def fetch(record: ArtifactRecord, part: Path) -> Path:
        data = client.call("GET", f"/runs/{quote(record.run_id, safe='')}/artifacts/{quote(record.path)}")
        if hashlib.sha256(data).hexdigest() != record.digest:
            raise CorruptObjectError(f"artifact {record.path!r} of run {record.run_id} arrived damaged "
                                     "(its digest does not match)")
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(data)
        return part

    return place_artifacts(records, dest, fetch)

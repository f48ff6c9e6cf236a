"""A run being logged by this process: the hot logging path, artifacts, and how it ends."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forgeml.errors import ForgeError, NotFoundError, ValidationError
from forgeml.paths import safe_relpath
from forgeml.tracking.records import END_STATUSES, FAILED, FINISHED, KILLED, ArtifactRecord, Run
from forgeml.tracking.values import INT64, check_key, check_step, check_texts, check_timestamp, check_value

# The runs this process has started, innermost last; shared by every thread, as in MLflow.
_stack: list[ActiveRun] = []
_stack_lock = threading.RLock()


class ActiveRun(Run):
    """A run this process logs to; use it as a context manager to end it with the right status."""

    def bind(self, store: Any, finishes: bool = True) -> ActiveRun:
        """Attach the store and writer this run logs through; finishes: whether ending it sets its status."""
        self._store = store
        self._writer = store.writer
        self._seq = -1  # set once the run row exists
        self._steps: dict[str, int] = {}
        # only the process that started the run (not a forked child, not a non-zero rank) ends it
        self._owner_pid = os.getpid() if finishes else -1
        self._ended = False
        self._sampler: Any = None
        self._marks: dict[str, float] = {}
        return self

    # ------------------------------------------------------------ context manager
    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.end(status_for(exc))

    # ------------------------------------------------------------ metrics (the hot path)
    def log_metric(self, key: str, value: Any, step: int | None = None, timestamp: float | None = None) -> None:
        """Buffer one metric point; it reaches the store within a second, at flush() or at exit."""
        # every value is checked here, at the call: a bad point must never reach (and block) the writer
        last = self._steps.get(key) if key.__class__ is str else None
        if last is None:
            check_key(key)
            last = -1
        # the common case (a known key, an int step, a float value) costs a few comparisons
        if step is None:
            step = last + 1
            if step >= INT64:
                check_step(step)
        elif step.__class__ is not int or not -INT64 <= step < INT64:
            step = check_step(step)
        # + 0.0 turns -0.0 into 0.0: SQLite keeps no sign on a zero, so every store reads zero the same way
        v = (value if value.__class__ is float else check_value(value, key)) + 0.0
        ts = time.time() if timestamp is None else check_timestamp(timestamp)
        self._steps[key] = step
        self.metrics[key] = v
        self._writer.append((self._seq, key, step, ts, v))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, timestamp: float | None = None) -> None:
        """Buffer several metric points at the same step and time."""
        ts = time.time() if timestamp is None else check_timestamp(timestamp)
        for key, value in metrics.items():
            self.log_metric(key, value, step, ts)

    def log_throughput(self, samples: float, seconds: float | None = None, step: int | None = None,
                       key: str = "throughput/samples_per_s") -> float:
        """Log samples per second: over `seconds`, or since this key's previous call (or the run's start)."""
        now = time.time()
        if seconds is None:
            seconds = now - self._marks.get(key, self.start_time)
        self._marks[key] = now
        rate = float(samples) / seconds if seconds > 0 else 0.0
        self.log_metric(key, rate, step)
        return rate

    def flush(self) -> int:
        """Write this process's buffered points now; return how many were written."""
        return self._writer.flush()

    # ------------------------------------------------------------ params, tags, inputs
    def log_param(self, key: str, value: Any) -> None:
        """Record one param."""
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params (stored as text with a numeric shadow for search)."""
        texts = check_texts(params, "param")
        self._store.write_params(self.id, params)
        self.params.update(texts)

    def set_tag(self, key: str, value: Any) -> None:
        """Set one tag."""
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags."""
        texts = check_texts(tags, "tag")
        self._store.write_tags(self.id, texts)
        self.tags.update(texts)

    def log_input(self, dataset: str | None = None, feature_view: str | None = None, **refs: str) -> None:
        """Record what the run read: dataset="name@v3", feature_view="view@2", or other kind=ref pairs."""
        found = [(kind, str(ref)) for kind, ref in {"dataset": dataset, "feature_view": feature_view, **refs}.items()
                 if ref is not None]
        if not found:
            raise ValidationError("log_input needs at least one reference, e.g. dataset='name@v3'")
        self._store.add_inputs(self.id, found)
        self.inputs.extend({"kind": k, "ref": r} for k, r in found)

    # ------------------------------------------------------------ artifacts
    def log_artifact(self, path: str | Path, name: str | None = None) -> list[ArtifactRecord]:
        """Store a file, or every file under a folder, as artifacts of this run."""
        path = Path(path)
        if not path.exists():
            raise NotFoundError(f"cannot log artifact {str(path)!r}: no such file or folder")
        base = safe_relpath(name if name is not None else path.name, "artifact name")
        files = [(path, base)] if path.is_file() else [
            (p, f"{base}/{p.relative_to(path).as_posix()}") for p in sorted(path.rglob("*")) if p.is_file()]
        from forgeml.pii.tags import refuse_pii_in_file

        for p, rel in files:
            refuse_pii_in_file(self._store.workspace, p, f"artifact {rel!r} of run {self.id}")
        store = self._store.workspace.artifacts
        return [self._store.add_artifact(self.id, rel, store.put_file(p), p.stat().st_size) for p, rel in files]

    def log_bytes(self, data: bytes, name: str) -> ArtifactRecord:
        """Store bytes as an artifact at a path of this run."""
        name = safe_relpath(name, "artifact name")
        digest = self._store.workspace.artifacts.put_bytes(data)
        return self._store.add_artifact(self.id, name, digest, len(data))

    def log_text(self, text: str, name: str) -> ArtifactRecord:
        """Store text as an artifact."""
        return self.log_bytes(text.encode(), name)

    def log_dict(self, value: Any, name: str) -> ArtifactRecord:
        """Store a dict as JSON, or YAML when the name ends in .yaml or .yml."""
        if name.endswith((".yaml", ".yml")):
            import yaml

            return self.log_text(yaml.safe_dump(value, sort_keys=False), name)
        return self.log_text(json.dumps(value, indent=2, default=str), name)

    # ------------------------------------------------------------ ending
    def end(self, status: str = FINISHED) -> None:
        """Flush, record the end status and time, and announce it to plugins (once)."""
        if not leave_stack(self, status):
            return
        if self._sampler is not None:
            self._sampler.stop()
        lost: ForgeError | None = None
        try:
            self._writer.flush()
        except ForgeError as e:  # a full or read-only disk: the run cannot count as FINISHED
            lost, status = e, FAILED
        if self._owner_pid == os.getpid():
            from forgeml.tracking.api import finish_run

            try:
                finished = finish_run(self.id, status, workspace=self._store.workspace, flush=False)
                self.status, self.end_time = finished.status, finished.end_time
            except ForgeError:
                if lost is None:
                    raise
        if lost is not None:
            raise lost


def leave_stack(run: Any, status: str) -> bool:
    """Check an end status and take a run off the active stack; False when it had already ended."""
    if status not in END_STATUSES:
        raise ValidationError(f"end status must be one of {', '.join(END_STATUSES)}, not {status!r}")
    with _stack_lock:
        if run._ended:
            return False
        run._ended = True
        if run in _stack:
            _stack.remove(run)
    return True


def status_for(exc: BaseException | None) -> str:
    """Return the end status for how a run block exited."""
    if exc is None:
        return FINISHED
    if isinstance(exc, KeyboardInterrupt):
        return KILLED
    if isinstance(exc, SystemExit):
        return FINISHED if exc.code in (0, None) else FAILED
    return FAILED


def current_stack() -> list[ActiveRun]:
    """Return this process's active runs, outermost first."""
    return list(_stack)


def push(run: ActiveRun) -> None:
    """Make a run the innermost active run."""
    with _stack_lock:
        _stack.append(run)


def end_owned_runs_at_exit() -> None:
    """End the runs this process started and never ended, with the status its exit implies."""
    status = status_for(getattr(sys, "last_value", None))
    for run in reversed(current_stack()):
        if run._owner_pid == os.getpid():
            try:
                run.end(status)
            except ForgeError as e:
                warnings.warn(f"forgeml: could not end run {run.id} at exit: {e}", stacklevel=1)


def _after_fork_in_child() -> None:
    # A forked child logs into the parent's runs but never ends them: the parent owns them.
    for run in _stack:
        run._owner_pid = -1
        run._sampler = None

"""``@step`` and ``@pipeline``: a pipeline function calls steps, and the data passed between them forms the DAG.

Calling a pipeline's function under a trace does not run any step: each step call returns a
:class:`StepOutput` placeholder, and a placeholder passed to a later step is an edge. The runner
then executes the recorded graph. Outside a pipeline a step is an ordinary function call.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError, NotFoundError, ValidationError

_PIPELINES: dict[str, Pipeline] = {}


@dataclass
class Step:
    """A pipeline step: a function plus how to run it (retries, backoff, GPUs, caching)."""

    fn: Callable[..., Any]
    name: str
    retries: int = 0
    backoff_s: float = 1.0
    gpus: int = 0
    cache: bool = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Record the call when a pipeline is being traced; run the function otherwise."""
        trace = _TRACE.get()
        if trace is None:
            return self.fn(*args, **kwargs)
        return trace.add(self, args, kwargs)


def step(fn: Callable[..., Any] | None = None, *, name: str | None = None, retries: int = 0,
         backoff: float = 1.0, gpus: int = 0, cache: bool = True) -> Any:
    """Declare a pipeline step; ``@step`` or ``@step(retries=2, backoff=1.0, gpus=1, cache=False)``."""
    if retries < 0 or backoff < 0 or gpus < 0:
        raise ValidationError("step: retries, backoff and gpus must not be negative")

    def wrap(f: Callable[..., Any]) -> Step:
        s = Step(f, name or f.__name__, retries, backoff, gpus, cache)
        functools.update_wrapper(s, f)  # type: ignore[arg-type]
        return s

    return wrap(fn) if fn is not None else wrap


@dataclass(frozen=True)
class StepOutput:
    """A placeholder for a step's output while a pipeline is traced; index it to pass a part along."""

    node: str
    path: tuple[Any, ...] = ()

    def __getitem__(self, key: Any) -> StepOutput:
        return StepOutput(self.node, (*self.path, key))

    def __iter__(self) -> Iterator[Any]:
        raise ValidationError(f"cannot unpack the output of step {self.node!r} while the pipeline is built; "
                              "index it instead (out[0], out['model'])")

    def __bool__(self) -> bool:
        raise ValidationError(f"the output of step {self.node!r} is not known while the pipeline is built; "
                              "branch inside a step instead")


@dataclass
class Node:
    """One step call in a pipeline graph."""

    id: str
    step: Step
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    upstream: list[str] = field(default_factory=list)


class _Trace:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def add(self, s: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> StepOutput:
        node_id, i = s.name, 2
        while node_id in self.nodes:
            node_id, i = f"{s.name}-{i}", i + 1
        upstream = sorted({o.node for o in placeholders((args, kwargs))})
        self.nodes[node_id] = Node(node_id, s, args, kwargs, upstream)
        return StepOutput(node_id)


_TRACE: ContextVar[_Trace | None] = ContextVar("forgeml_pipeline_trace", default=None)


def placeholders(value: Any) -> Iterator[StepOutput]:
    """Yield every StepOutput inside nested tuples, lists and dicts."""
    if isinstance(value, StepOutput):
        yield value
    elif isinstance(value, tuple | list):
        for v in value:
            yield from placeholders(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from placeholders(v)


@dataclass
class Pipeline:
    """A named pipeline; call ``run(**params)`` (or the object) to execute it in the current workspace."""

    fn: Callable[..., Any]
    name: str

    def parameters(self) -> dict[str, Any]:
        """Return the pipeline's parameters and their defaults (inspect.Parameter.empty when required)."""
        return {p.name: p.default for p in inspect.signature(self.fn).parameters.values()}

    def resolve_params(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Merge given parameters with defaults; unknown or missing ones are errors."""
        params = dict(params or {})
        known = self.parameters()
        for key in params:
            if key not in known:
                from forgeml.errors import did_you_mean

                raise ValidationError(f"pipeline {self.name!r} has no parameter {key!r}{did_you_mean(key, known)}; "
                                      f"parameters: {', '.join(known) or 'none'}")
        merged = {k: params.get(k, v) for k, v in known.items()}
        missing = [k for k, v in merged.items() if v is inspect.Parameter.empty]
        if missing:
            raise ValidationError(f"pipeline {self.name!r} needs parameter(s) {', '.join(missing)}")
        return merged

    def graph(self, params: dict[str, Any] | None = None) -> list[Node]:
        """Trace the pipeline function and return its step calls in a valid execution order."""
        merged = self.resolve_params(params)
        trace = _Trace()
        token = _TRACE.set(trace)
        try:
            self.fn(**merged)
        finally:
            _TRACE.reset(token)
        if not trace.nodes:
            raise ValidationError(f"pipeline {self.name!r} calls no @step function")
        return list(trace.nodes.values())

    def run(self, _cause: str = "manual", _workspace: Any = None, **params: Any) -> Any:
        """Run the pipeline now, in this process; return its PipelineRun."""
        from forgeml.pipelines.runner import run_pipeline

        return run_pipeline(self, params, cause=_cause, workspace=_workspace)

    __call__ = run


def pipeline(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Declare a pipeline: a function whose body calls @step functions; ``@pipeline`` or ``@pipeline(name=...)``."""

    def wrap(f: Callable[..., Any]) -> Pipeline:
        p = Pipeline(f, name or f.__name__)
        _PIPELINES[p.name] = p
        return p

    return wrap(fn) if fn is not None else wrap


# ---------------------------------------------------------------- finding pipelines
def _import(spec: str, root: Path | None) -> Any:
    """Import a module given as a dotted name or a .py file path (relative to the workspace root)."""
    if spec.endswith(".py") or "/" in spec:
        path = Path(spec)
        if not path.is_absolute() and root is not None:
            path = root / path
        if not path.exists():
            raise ConfigError(f"pipelines module {str(path)!r} does not exist")
        name = f"forgeml_pipelines_{path.stem}"
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
            return sys.modules[name]
        spec_obj = importlib.util.spec_from_file_location(name, path)
        if spec_obj is None or spec_obj.loader is None:
            raise ConfigError(f"cannot import pipelines module {str(path)!r}")
        module = importlib.util.module_from_spec(spec_obj)
        sys.modules[name] = module
        spec_obj.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as e:
        raise ConfigError(f"cannot import pipelines module {spec!r}: {e}") from e


def load_pipelines(workspace: Any = None) -> dict[str, Pipeline]:
    """Import the modules listed in [pipelines] modules and return every declared pipeline by name."""
    if workspace is not None:
        for spec in workspace.config.section("pipelines").modules:
            _import(spec, workspace.root)
    return dict(_PIPELINES)


def get_pipeline(name: str, workspace: Any = None) -> Pipeline:
    """Return a pipeline by name, or by ``module:name`` / ``file.py:name``."""
    if ":" in name:
        spec, _, attr = name.rpartition(":")
        module = _import(spec, workspace.root if workspace is not None else None)
        found = getattr(module, attr, None)
        if not isinstance(found, Pipeline):
            raise NotFoundError(f"{spec} has no @pipeline named {attr!r}")
        return found
    pipelines = load_pipelines(workspace)
    if name not in pipelines:
        from forgeml.errors import unknown_name

        raise unknown_name("pipeline", name, pipelines, "add its module to [pipelines] modules")
    return pipelines[name]

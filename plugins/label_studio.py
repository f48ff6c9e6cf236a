"""The Label Studio annotation backend, through label-studio-sdk (``pip install 'forgeml[labeling]'``).

A label set becomes a Label Studio project whose labelling config shows each item's fields as text
and offers the classes as single choices (or a config of your own naming its choices ``label``).
Tasks carry the item's key in ``forgeml_key`` and the model's guess as a prediction, which annotators
see as a pre-label. ``pull`` reads annotated tasks and returns annotations created or updated after
the cursor (the latest ``updated_at`` seen), so repeated pulls bring each change once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import quoteattr

from forgeml import hookimpl
from forgeml.config import Secret, redact_url, reveal, setting
from forgeml.contracts import Annotation, AnnotationTask
from forgeml.errors import ConfigError, NotFoundError, PluginError

KEY_FIELD = "forgeml_key"
TEXT_FIELD = "forgeml_text"


@dataclass
class LabelStudioSettings:
    """Send tasks to a Label Studio server and pull its annotations."""

    url: Secret | str = setting("http://127.0.0.1:8080", "The server's address, or { env = \"VAR\" }.")
    token: Secret | None = setting(None, "An API token (legacy token or personal access token): { env = \"VAR\" }.")
    label_config: str = setting("", "A labelling config (XML) of your own; its Choices tag must be named \"label\". "
                                    "Empty: one Text of the item's fields and one Choices of the classes.")
    timeout_s: float = setting(30.0, "Give up on a request after this many seconds.")


def label_config(classes: Sequence[str], instructions: str = "") -> str:
    """The default labelling config: the item's fields as one text, one choice per class."""
    choices = "".join(f"<Choice value={quoteattr(str(c))}/>" for c in classes)
    header = f"<Header value={quoteattr(instructions)}/>" if instructions else ""
    return (f"<View>{header}<Text name=\"item\" value=\"${TEXT_FIELD}\"/>"
            f"<Choices name=\"label\" toName=\"item\" choice=\"single\" showInLine=\"true\">{choices}</Choices></View>")


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class LabelStudioBackend:
    """Projects, tasks with pre-labels and annotations on a Label Studio server."""

    name = "label_studio"

    def __init__(self, settings: LabelStudioSettings, workspace: Any = None):
        try:
            from label_studio_sdk import LabelStudio
        except ImportError as e:
            raise ConfigError("the label_studio backend needs label-studio-sdk: pip install 'forgeml[labeling]'") from e
        url = (reveal(settings.url) or "").rstrip("/")
        self.where = redact_url(url)
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"[labeling.backend] url must start with http:// or https://, got {self.where}")
        if settings.token is None:
            raise ConfigError("[labeling.backend] token is missing: token = { env = \"LABEL_STUDIO_TOKEN\" }")
        self.settings = settings
        self.client = LabelStudio(base_url=url, api_key=settings.token.get(), timeout=settings.timeout_s)
        self._users: dict[int, str] | None = None

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call; server and network errors become one ForgeError line naming the server."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            return fn(*args, **kwargs)
        except ApiError as e:
            body = e.body if isinstance(e.body, str) else json.dumps(e.body, default=str)
            if e.status_code == 404:
                raise NotFoundError(f"Label Studio at {self.where}: {what}: not found") from None
            raise PluginError(f"Label Studio at {self.where}: {what} failed with HTTP {e.status_code}: "
                              f"{(body or '')[:300]}") from None
        except httpx.HTTPError as e:
            raise PluginError(f"Label Studio at {self.where}: {what}: cannot reach the server ({e})") from None

    def _project_id(self, project: str) -> int:
        if not str(project).isdigit():
            raise NotFoundError(f"Label Studio project ids are numbers, got {project!r}")
        return int(project)

    def create_project(self, title: str, classes: Sequence[str], fields: Sequence[str], instructions: str = "") -> str:
        """Create a project with the default (or configured) labelling config; return its id."""
        config = self.settings.label_config or label_config(classes, instructions)
        made = self._call("create project", self.client.projects.create, title=title[:50], label_config=config,
                          description=instructions or f"labels for {title}")
        return str(made.id)

    def _tasks(self, pid: int, **kwargs: Any) -> Any:
        pager = self._call("list tasks", self.client.tasks.list, project=pid, page_size=500, **kwargs)
        return self._call("list tasks", list, pager)

    def send_tasks(self, project: str, tasks: Sequence[AnnotationTask]) -> int:
        """Import tasks whose keys the project lacks, each with its pre-label as a prediction."""
        pid = self._project_id(project)
        self._call("read project", self.client.projects.get, id=pid)
        have = {str((t.data or {}).get(KEY_FIELD)) for t in self._tasks(pid)}
        new, seen = [], set()
        for t in tasks:
            if t.key in have or t.key in seen:
                continue
            seen.add(t.key)
            text = "\n".join(f"{k}: {v}" for k, v in t.data.items())
            entry: dict[str, Any] = {"data": {**t.data, KEY_FIELD: t.key, TEXT_FIELD: text}}
            if t.prediction is not None:
                prediction: dict[str, Any] = {"result": [{"from_name": "label", "to_name": "item", "type": "choices",
                                                          "value": {"choices": [t.prediction]}}]}
                if t.score is not None:
                    prediction["score"] = float(t.score)
                if t.model:
                    prediction["model_version"] = t.model
                entry["predictions"] = [prediction]
            new.append(entry)
        if new:
            self._call("import tasks", self.client.projects.import_tasks, id=pid, request=new)
        return len(new)

    def _annotator(self, user: Any) -> str:
        if isinstance(user, dict):
            return str(user.get("email") or user.get("username") or user.get("id"))
        if self._users is None:
            self._users = {u.id: (u.email or u.username or str(u.id))
                           for u in self._call("list users", self.client.users.list)}
        return self._users.get(user, f"user-{user}")

    def pull(self, project: str, cursor: str | None = None) -> tuple[list[Annotation], str | None]:
        """Return annotations created or updated after the cursor (an ISO time), oldest first."""
        pid = self._project_id(project)
        self._call("read project", self.client.projects.get, id=pid)
        after = _when(cursor) if cursor else None
        found: list[tuple[datetime, Annotation]] = []
        for task in self._tasks(pid, fields="all", only_annotated=True):
            key = str((task.data or {}).get(KEY_FIELD))
            for a in task.annotations or []:
                if a.get("was_cancelled"):
                    continue
                changed = _when(a.get("updated_at") or a.get("created_at"))
                if after is not None and changed <= after:
                    continue
                choices = [r["value"]["choices"][0] for r in a.get("result") or []
                           if r.get("from_name") == "label" and r.get("value", {}).get("choices")]
                if not choices:
                    continue
                found.append((changed, Annotation(key, str(choices[0]), self._annotator(a.get("completed_by")),
                                                  changed.timestamp())))
        found.sort(key=lambda pair: pair[0])
        return [a for _, a in found], (found[-1][0].isoformat() if found else cursor)


@hookimpl
def forgeml_register_annotation_backends(register):
    """Offer the Label Studio backend."""
    register("label_studio", LabelStudioBackend, settings=LabelStudioSettings,
             description="a Label Studio server, through label-studio-sdk")

"""The local annotation backend: tasks and answers kept in the workspace's metadata store.

People label in ``forgeml tui`` (the Labeling screen) or through ``forgeml.labeling.annotate.answer``;
no server runs. Answers are an append-only log, so ``pull`` returns every answer after the cursor
(the last answer id it returned) exactly once, a changed answer included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgeml.config import setting
from forgeml.contracts import Annotation, AnnotationTask, Migration
from forgeml.errors import NotFoundError, ValidationError

MIGRATION_SET = "labeling_local"


def _m001_initial(tx: Any) -> None:
    """Create the local projects, tasks and answers."""
    import sqlalchemy as sa

    from forgeml.sqltypes import ID, create_tables

    metadata = sa.MetaData()
    sa.Table(
        "local_label_projects", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("classes", sa.Text, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "local_label_tasks", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("project", sa.BigInteger, nullable=False),
        sa.Column("item_key", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prediction", sa.Text),
        sa.Column("score", sa.Double),
        sa.Column("model", sa.Text),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Index("local_label_tasks_key", "project", "item_key", unique=True),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "local_label_answers", metadata,
        sa.Column("id", ID, primary_key=True),
        sa.Column("project", sa.BigInteger, nullable=False),
        sa.Column("item_key", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("annotator", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Index("local_label_answers_project", "project", "id"),
        sqlite_autoincrement=True,
    )
    create_tables(tx, metadata)


MIGRATIONS = [Migration(1, "m001_initial", apply=_m001_initial)]


@dataclass
class LocalSettings:
    """Keep annotation tasks in the workspace and label them in the terminal UI."""

    order: str = setting("score", "Which pending task comes first: \"score\" (least confident pre-label) or \"sent\".")


class LocalBackend:
    """Annotation projects, tasks and answers in the workspace's metadata store."""

    name = "local"

    def __init__(self, settings: LocalSettings | None, workspace: Any):
        settings = settings or LocalSettings()
        if settings.order not in ("score", "sent"):
            raise ValidationError(f"[labeling.backend] order must be \"score\" or \"sent\", got {settings.order!r}")
        self.order = settings.order
        self.workspace = workspace

    @property
    def db(self) -> Any:
        """The metadata store with this backend's tables (opened on first use: the workspace opens layers one at a time)."""
        return self.workspace.metadata_for(MIGRATION_SET, MIGRATIONS)

    def _project(self, project: str) -> dict[str, Any]:
        rows = self.db.query("SELECT * FROM local_label_projects WHERE id = ?", (int(project),)) \
            if str(project).isdigit() else []
        if not rows:
            raise NotFoundError(f"local annotation backend has no project {project!r}")
        return rows[0]

    def create_project(self, title: str, classes: Sequence[str], fields: Sequence[str], instructions: str = "") -> str:
        """Create a project and return its id."""
        if len(classes) < 2:
            raise ValidationError(f"a labelling project needs at least two classes, got {list(classes)}")
        with self.db.transaction() as tx:
            row = tx.query("INSERT INTO local_label_projects (title, classes, fields, instructions, created_at)"
                           " VALUES (?, ?, ?, ?, ?) RETURNING id",
                           (title, json.dumps(list(classes)), json.dumps(list(fields)), instructions, time.time()))
        return str(row[0]["id"])

    def classes(self, project: str) -> list[str]:
        """Return a project's classes."""
        return json.loads(self._project(project)["classes"])

    def send_tasks(self, project: str, tasks: Sequence[AnnotationTask]) -> int:
        """Add tasks whose keys the project lacks; return how many were added."""
        pid = int(self._project(project)["id"])
        now = time.time()
        rows = [(pid, str(t.key), json.dumps(t.data, default=str), t.prediction, t.score, t.model, now) for t in tasks]
        with self.db.transaction() as tx:
            return tx.insert_or_ignore("local_label_tasks", ("project", "item_key", "data", "prediction", "score",
                                                             "model", "created_at"), rows)

    def pull(self, project: str, cursor: str | None = None) -> tuple[list[Annotation], str | None]:
        """Return the answers after the cursor, oldest first, and the id of the last as the next cursor."""
        pid = int(self._project(project)["id"])
        after = int(cursor) if cursor and cursor.isdigit() else 0
        rows = self.db.query("SELECT id, item_key, label, annotator, at FROM local_label_answers"
                             " WHERE project = ? AND id > ? ORDER BY id", (pid, after))
        out = [Annotation(r["item_key"], r["label"], r["annotator"], r["at"]) for r in rows]
        return out, (str(rows[-1]["id"]) if rows else cursor)

    def pending(self, project: str, annotator: str, limit: int = 50) -> list[AnnotationTask]:
        """Tasks the annotator has not answered, least confident pre-label first (or in the order sent)."""
        pid = int(self._project(project)["id"])
        order = "COALESCE(t.score, 0), t.id" if self.order == "score" else "t.id"
        rows = self.db.query(
            "SELECT t.item_key, t.data, t.prediction, t.score, t.model FROM local_label_tasks t"
            " WHERE t.project = ? AND NOT EXISTS (SELECT 1 FROM local_label_answers a WHERE a.project = t.project"
            f" AND a.item_key = t.item_key AND a.annotator = ?) ORDER BY {order} LIMIT ?", (pid, annotator, int(limit)))
        return [AnnotationTask(r["item_key"], json.loads(r["data"]), r["prediction"], r["score"], r["model"])
                for r in rows]

    def annotate(self, project: str, key: str, label: str, annotator: str) -> None:
        """Record one person's label for one task."""
        info = self._project(project)
        if label not in json.loads(info["classes"]):
            raise ValidationError(f"label {label!r} is not one of {json.loads(info['classes'])}")
        pid = int(info["id"])
        if not self.db.query("SELECT 1 FROM local_label_tasks WHERE project = ? AND item_key = ?", (pid, str(key))):
            raise NotFoundError(f"project {project} has no task {key!r}")
        with self.db.transaction() as tx:
            tx.insert_rows("local_label_answers", ("project", "item_key", "label", "annotator", "at"),
                           [(pid, str(key), label, annotator, time.time())])

"""The prediction log's part of ``forget``: find and erase a data subject's logged requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forgeml.contracts import Holding, Subject
from forgeml.pii.files import rewrite_parquet, subject_rows
from forgeml.serving.predlog import log_root


class PredictionLogEraser:
    """Rewrites prediction-log Parquet files without the rows of a subject."""

    name = "prediction_log"

    def __init__(self, workspace: Any):
        self.root = log_root(workspace)
        self.keyring = workspace.encryption_keyring()

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("model=*/date=*/*.parquet")) if self.root.is_dir() else []

    def _location(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def find_subject(self, subject: Subject) -> list[Holding]:
        """Return each log file holding rows of the subject."""
        found = []
        for path in self._files():
            rows = subject_rows(path, subject, self.keyring)
            if rows:
                found.append(Holding(self.name, self._location(path), rows))
        return found

    def erase_subject(self, subject: Subject) -> list[Holding]:
        """Rewrite each log file holding the subject without its rows."""
        removed = []
        for path in self._files():
            if subject_rows(path, subject, self.keyring):
                removed.append(Holding(self.name, self._location(path), rewrite_parquet(path, subject, self.keyring)))
        return removed

"""The tamper-evident audit log: every record is hash-chained to the one before it, append-only.

Each record's ``hash`` is the sha256 of the previous record's hash and the record's own fields, so
editing a record breaks its hash and deleting one breaks its successor's; the newest hash and the
count of chained records are also kept in ``kv`` (``audit.head``), so dropping records from the end
is seen too. Records are appended only inside a write transaction, which every metadata store
serialises against other writers, so the chain has one order on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
HEAD_KEY = "audit.head"
Record = tuple[float, str, str, str, str]  # at, actor, action, subject, detail JSON


def record_hash(prev: str, at: float, actor: str, action: str, subject: str, detail: str) -> str:
    """Return a record's chained hash (the float time in its shortest exact text, so both databases agree)."""
    body = json.dumps([prev, repr(float(at)), actor, action, subject, detail], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _head(tx: Any) -> tuple[int, str]:
    rows = tx.query("SELECT value FROM kv WHERE key = ?", (HEAD_KEY,))
    if not rows:
        return 0, GENESIS
    count, _, digest = rows[0]["value"].partition(":")
    return int(count), digest


def append(tx: Any, records: Sequence[Record]) -> None:
    """Append records to the chain inside the caller's write transaction."""
    if not records:
        return
    count, prev = _head(tx)
    rows = []
    for at, actor, action, subject, detail in records:
        prev = record_hash(prev, at, actor, action, subject, detail)
        rows.append((at, actor, action, subject, detail, prev))
    tx.executemany("INSERT INTO audit_log (at, actor, action, subject, detail, hash) VALUES (?, ?, ?, ?, ?, ?)", rows)
    tx.execute("INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)"
               " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
               (HEAD_KEY, f"{count + len(rows)}:{prev}", time.time()))


def append_one(tx: Any, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
    """Append one record (detail as a dict) inside the caller's transaction."""
    append(tx, [(time.time(), actor, action, subject, json.dumps(detail, default=str))])


@dataclass
class Verification:
    """The outcome of checking the chain: how many records, which were unchained, what is wrong."""

    records: int = 0
    chained: int = 0
    unchained: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no record was edited, removed or slipped in."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return {"ok": self.ok, "records": self.records, "chained": self.chained,
                "unchained_before_chain": self.unchained, "problems": self.problems}


def verify(db: Any) -> Verification:
    """Recompute the chain over every record and compare it with the stored hashes and the head."""
    result = Verification()
    prev = GENESIS
    started = False
    for batch in db.stream("SELECT id, at, actor, action, subject, detail, hash FROM audit_log ORDER BY id"):
        for rid, at, actor, action, subject, detail, stored in batch:
            result.records += 1
            if stored is None:
                if started:
                    result.problems.append(f"record {rid} was inserted outside the chain")
                else:
                    result.unchained += 1  # written before the chain existed
                continue
            started = True
            expected = record_hash(prev, at, actor, action, subject, detail)
            if expected != stored:
                result.problems.append(f"record {rid} was edited, or the record before it was removed")
            result.chained += 1
            prev = stored
    rows = db.query("SELECT value FROM kv WHERE key = ?", (HEAD_KEY,))
    count, _, head = rows[0]["value"].partition(":") if rows else ("0", "", GENESIS)
    if int(count) != result.chained or (result.chained and head != prev):
        result.problems.append(f"the chain's head records {count} record(s) ending in {head[:12]}, the log holds "
                               f"{result.chained} ending in {prev[:12]}: records were removed from the end")
    return result


def parse_time(text: str | float | None, what: str) -> float | None:
    """Return epoch seconds for an ISO time (UTC when no zone), a number, or an age such as 7d, 12h, 30m."""
    import re
    from datetime import UTC, datetime

    from forgeml.errors import ValidationError

    if text is None or text == "":
        return None
    if isinstance(text, int | float):
        return float(text)
    age = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if age:
        return time.time() - float(age.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[age.group(2)]
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise ValidationError(f"{what} {text!r} is not an ISO time (2024-05-01T12:00) or an age (7d, 12h)") from e
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def records(workspace: Any, actor: str | None = None, action: str | None = None, subject: str | None = None,
            since: str | float | None = None, until: str | float | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Return audit records, newest first: who did or read what, and when (needs auth.admin)."""
    from forgeml.auth import store as db_
    from forgeml.auth.service import flush_access_log, require

    require("auth.admin", workspace=workspace, subject="audit")
    flush_access_log(workspace)
    return db_.access_rows(db_.auth_db(workspace), actor, action, parse_time(since, "since") or 0.0, limit,
                           subject=subject, until=parse_time(until, "until"))


def verify_chain(workspace: Any) -> Verification:
    """Check the whole audit chain of a workspace (needs auth.admin)."""
    from forgeml.auth import store as db_
    from forgeml.auth.service import flush_access_log, require

    require("auth.admin", workspace=workspace, subject="audit")
    flush_access_log(workspace)
    return verify(db_.auth_db(workspace))

"""The tamper-evident audit log: every record is chained to the one before it, append-only.

Each record's ``hash`` covers the previous record's hash and the record's own fields, so editing a
record breaks its hash and deleting one breaks its successor's; the newest hash and the count of
chained records are also kept in ``kv`` (``audit.head``), so dropping records from the end is seen too.
Records are appended only inside a write transaction, which every metadata store serialises against
other writers, so the chain has one order on SQLite and on PostgreSQL alike.

With a key in ``FORGEML_AUDIT_KEY`` (a workspace secret, kept in the environment like the other
secrets, never in the metadata) the chain is an HMAC-SHA256 chain, stored as ``k:<key id>:<hex>``, and
the head carries a MAC too: someone who can write the database but lacks the key cannot recompute a
consistent chain after an edit. Without a key the chain is plain sha256 (64 hex characters), which
shows accidents but not a deliberate rewrite; ``verify`` says so, and ``rekey`` moves an intact
unkeyed (or older-key) chain under the current key. Several comma-separated keys may be set: the
first signs, the others still verify records signed before a rotation until ``rekey`` runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forgeml.errors import ConfigError

GENESIS = "0" * 64
HEAD_KEY = "audit.head"
KEY_ENV = "FORGEML_AUDIT_KEY"
MIN_KEY_CHARS = 16
Record = tuple[float, str, str, str, str]  # at, actor, action, subject, detail JSON
# what json.dumps(..., separators=(",", ":")) writes, without building an encoder per record
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def audit_keys() -> dict[str, bytes]:
    """Return the audit keys from the environment by key id, the signing key first (empty when unset)."""
    value = os.environ.get(KEY_ENV, "")
    keys: dict[str, bytes] = {}
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if len(part) < MIN_KEY_CHARS:
            raise ConfigError(f"a key in {KEY_ENV} has {len(part)} characters; use at least {MIN_KEY_CHARS} "
                              "(e.g. `openssl rand -hex 32`)")
        keys[hashlib.sha256(part.encode()).hexdigest()[:8]] = part.encode()
    return keys


def _signing_key() -> tuple[str, bytes] | None:
    keys = audit_keys()
    return next(iter(keys.items())) if keys else None


def record_hash(prev: str, at: float, actor: str, action: str, subject: str, detail: str,
                key: tuple[str, bytes] | None = None) -> str:
    """Return a record's chained hash: HMAC under (key id, key) when given, else plain sha256.

    The float time is written in its shortest exact text, so both databases agree.
    """
    body = _COMPACT.encode([prev, repr(float(at)), actor, action, subject, detail]).encode()
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return f"k:{key[0]}:{hmac.new(key[1], body, hashlib.sha256).hexdigest()}"


def _head_mac(count: int, digest: str, key: bytes) -> str:
    return hmac.new(key, f"head:{count}:{digest}".encode(), hashlib.sha256).hexdigest()


def _head_value(count: int, digest: str, key: tuple[str, bytes] | None) -> str:
    return f"{count}:{digest}" + (f"|{_head_mac(count, digest, key[1])}" if key else "")


def _parse_head(value: str | None) -> tuple[int, str, str | None]:
    if value is None:
        return 0, GENESIS, None
    body, _, mac = value.partition("|")
    count, _, digest = body.partition(":")
    return int(count), digest, mac or None


def _head(tx: Any) -> tuple[int, str, str | None]:
    rows = tx.query("SELECT value FROM kv WHERE key = ?", (HEAD_KEY,))
    return _parse_head(rows[0]["value"] if rows else None)


def _write_head(tx: Any, count: int, digest: str, key: tuple[str, bytes] | None) -> None:
    tx.execute("INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)"
               " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
               (HEAD_KEY, _head_value(count, digest, key), time.time()))


def append(tx: Any, records: Sequence[Record]) -> None:
    """Append records to the chain inside the caller's write transaction (keyed when a key is set)."""
    if not records:
        return
    count, prev, mac = _head(tx)
    # a chain is keyed from its start or by an explicit rekey, never by an append: appending keyed
    # records onto an unsigned head would bless whatever an attacker rewrote there without the key
    key = _signing_key() if count == 0 or mac is not None else None
    rows = []
    for at, actor, action, subject, detail in records:
        prev = record_hash(prev, at, actor, action, subject, detail, key)
        rows.append((at, actor, action, subject, detail, prev))
    tx.executemany("INSERT INTO audit_log (at, actor, action, subject, detail, hash) VALUES (?, ?, ?, ?, ?, ?)", rows)
    _write_head(tx, count + len(rows), prev, key)


def append_one(tx: Any, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
    """Append one record (detail as a dict) inside the caller's transaction."""
    append(tx, [(time.time(), actor, action, subject, json.dumps(detail, default=str))])


@dataclass
class Verification:
    """The outcome of checking the chain: how many records, which were unchained, what is wrong."""

    records: int = 0
    chained: int = 0
    unchained: int = 0
    keyed: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no record was edited, removed or slipped in."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return plain values for JSON output."""
        return {"ok": self.ok, "records": self.records, "chained": self.chained, "keyed": self.keyed,
                "unchained_before_chain": self.unchained, "problems": self.problems, "warnings": self.warnings}


def _check(rid: int, prev: str, fields: tuple[Any, ...], stored: str, keys: dict[str, bytes],
           keyed_seen: bool) -> str | None:
    """Return what is wrong with one chained record, or None."""
    if stored.startswith("k:"):
        kid = stored.split(":")[1]
        if kid not in keys:
            return (f"record {rid} is signed with audit key {kid}, which is not in {KEY_ENV}: "
                    "set that key to verify it")
        expected = record_hash(prev, *fields, key=(kid, keys[kid]))
    else:
        if keyed_seen:
            return f"record {rid} is unkeyed inside the keyed chain: written without the key, or forged"
        expected = record_hash(prev, *fields)
    return None if hmac.compare_digest(expected, stored) else \
        f"record {rid} was edited, or the record before it was removed"


def _batches(db: Any) -> Any:
    """Yield the log in id order as tuples: streamed from a store, read whole inside a transaction."""
    sql = "SELECT id, at, actor, action, subject, detail, hash FROM audit_log ORDER BY id"
    if hasattr(db, "stream"):
        yield from db.stream(sql)
    else:
        yield [tuple(r.values()) for r in db.query(sql)]


def _walk(db: Any, keys: dict[str, bytes], result: Verification, adopting: bool = False) -> list[tuple[Any, ...]]:
    """Check every record in order; return the chained rows (for rekey)."""
    prev, started, keyed_seen = GENESIS, False, False
    chained_rows = []
    for batch in _batches(db):
        for rid, at, actor, action, subject, detail, stored in batch:
            result.records += 1
            if stored is None:
                if started:
                    result.problems.append(f"record {rid} was inserted outside the chain")
                else:
                    result.unchained += 1  # written before the chain existed
                continue
            started = True
            problem = _check(rid, prev, (at, actor, action, subject, detail), stored, keys, keyed_seen)
            if problem:
                result.problems.append(problem)
            if stored.startswith("k:"):
                keyed_seen = True
                result.keyed += 1
            result.chained += 1
            chained_rows.append((rid, at, actor, action, subject, detail))
            prev = stored
    rows = db.query("SELECT value FROM kv WHERE key = ?", (HEAD_KEY,))
    count, head, mac = _parse_head(rows[0]["value"] if rows else None)
    if count != result.chained or (result.chained and head != prev):
        result.problems.append(f"the chain's head records {count} record(s) ending in {head[:14]}, the log holds "
                               f"{result.chained} ending in {prev[:14]}: records were removed from the end")
    elif keys and result.chained and mac is None and not adopting:
        result.problems.append(f"the chain's head is not signed though {KEY_ENV} is set: the chain was rewritten "
                               "without the key, or it predates the key (then run `forgeml audit rekey`)")
    elif head.startswith("k:"):
        kid = head.split(":")[1]
        if kid in keys and (mac is None or not hmac.compare_digest(mac, _head_mac(count, head, keys[kid]))):
            result.problems.append("the chain's head was rewritten without the key: records were removed from the end")
    if result.chained and result.keyed < result.chained and not result.problems:
        result.warnings.append(f"{result.chained - result.keyed} record(s) are chained without a key, so anyone who "
                               f"can write the database could recompute them: set {KEY_ENV} and run "
                               "`forgeml audit rekey`")
    return chained_rows


def verify(db: Any) -> Verification:
    """Recompute the chain over every record and compare it with the stored hashes and the head."""
    result = Verification()
    _walk(db, audit_keys(), result)
    return result


def rekey(db: Any) -> Verification:
    """Re-chain every chained record under the current key, once the chain as it stands verifies.

    This moves an unkeyed chain (or one signed by a key being retired) under the first key of
    ``FORGEML_AUDIT_KEY``; a chain that does not verify is left as it is, so tampering is never signed.
    """
    from forgeml.errors import ForgeError

    key = _signing_key()
    if key is None:
        raise ConfigError(f"{KEY_ENV} is not set: put the audit key there (at least {MIN_KEY_CHARS} characters) "
                          "before rekeying")
    with db.transaction() as tx:
        result = Verification()
        rows = _walk(tx, audit_keys(), result, adopting=True)
        if not result.ok:
            raise ForgeError(f"the audit log does not verify, so it is not rekeyed: {result.problems[0]}")
        prev = GENESIS
        for rid, at, actor, action, subject, detail in rows:
            prev = record_hash(prev, at, actor, action, subject, detail, key)
            tx.execute("UPDATE audit_log SET hash = ? WHERE id = ?", (prev, rid))
        _write_head(tx, len(rows), prev, key)
    out = Verification()
    _walk(db, audit_keys(), out)
    return out


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


def rekey_chain(workspace: Any) -> Verification:
    """Move the workspace's audit chain under the current audit key (needs auth.admin)."""
    from forgeml.auth import store as db_
    from forgeml.auth.service import flush_access_log, require

    require("auth.admin", workspace=workspace, subject="audit")
    flush_access_log(workspace)
    return rekey(db_.auth_db(workspace))

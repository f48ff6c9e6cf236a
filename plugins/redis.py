"""The Redis online store: one hash per (view, entity key), pipelined HMGET reads and scripted upserts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgeml import hookimpl
from forgeml.config import Secret, reveal, setting

# Upsert only when the stored event time is not newer, atomically per key.
UPSERT = """
local held = redis.call('HGET', KEYS[1], 't')
if held and tonumber(held) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'v', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
"""


@dataclass
class RedisSettings:
    """Settings of the Redis online store."""

    url: Secret | str = setting("redis://127.0.0.1:6379/0",
                                "Redis URL (redis://, rediss:// or unix://); one holding a password: { env = \"VAR\" }.")
    password: Secret | None = setting(None, "Password, given as { env = \"VAR\" } (or put it in the URL).")
    key_prefix: str = setting("forgeml:", "Prefix of every key this store writes, so one Redis can hold several.")
    expire_s: int = setting(0, "Expire keys this many seconds after their last write (0: never).")
    batch: int = setting(1000, "Keys per pipeline round trip.")


class RedisOnlineStore:
    """Latest values per (view, entity key) as Redis hashes {t: event µs, v: JSON payload}."""

    def __init__(self, url: str, password: str | None = None, key_prefix: str = "forgeml:", expire_s: int = 0,
                 batch: int = 1000):
        import redis

        self.client = redis.Redis.from_url(url, password=password)
        self.key_prefix = key_prefix
        self.expire_ms = int(expire_s * 1000)
        self.batch = batch
        self._upsert = self.client.register_script(UPSERT)

    def _key(self, view: str, key: str) -> str:
        return f"{self.key_prefix}{view}:{key}"

    def _call(self, fn: Any, *args: Any) -> Any:
        import redis

        from forgeml.errors import StorageError

        try:
            return fn(*args)
        except redis.RedisError as e:
            raise StorageError(f"Redis online store: {e}") from e

    def write(self, view: str, rows: Any, key_columns: Sequence[str], timestamp_field: str) -> int:
        """Upsert each key's newest row unless Redis holds a newer one; return rows written."""
        from forgeml.storage.online import encode_rows

        encoded = list(zip(*encode_rows(rows, key_columns, timestamp_field)))
        written = 0
        for start in range(0, len(encoded), self.batch):
            pipe = self.client.pipeline(transaction=False)
            for key, ts, payload in encoded[start:start + self.batch]:
                self._upsert(keys=[self._key(view, key)], args=[ts, payload, self.expire_ms], client=pipe)
            written += sum(self._call(pipe.execute))
        return written

    def read_rows(self, view: str, keys: Sequence[tuple[Any, ...]]) -> list[tuple[int, dict[str, Any]] | None]:
        """Return (event µs, values) or None per key, in order, with one pipelined round trip per batch."""
        from forgeml.storage.online import decode_payloads, entity_key

        if len(keys) == 1:
            got = [self._call(self.client.hmget, self._key(view, entity_key(keys[0])), "t", "v")]
        else:
            got = []
            for start in range(0, len(keys), self.batch):
                pipe = self.client.pipeline(transaction=False)
                for k in keys[start:start + self.batch]:
                    pipe.hmget(self._key(view, entity_key(k)), "t", "v")
                got.extend(self._call(pipe.execute))
        present = [v.decode() for t, v in got if t is not None]
        decoded = iter(decode_payloads(present))
        return [None if t is None else (int(t), next(decoded)) for t, _ in got]

    def read(self, view: str, keys: Sequence[tuple[Any, ...]], features: Sequence[str]) -> Any:
        """Return the features and _event_timestamp per key as an Arrow table."""
        from forgeml.storage.online import rows_to_table

        return rows_to_table(self.read_rows(view, keys), features)

    def delete_view(self, view: str) -> int:
        """Remove every key of a view (SCAN + UNLINK in batches)."""
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{self.key_prefix}{view}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                removed += self._call(self.client.unlink, *batch)
                batch = []
        if batch:
            removed += self._call(self.client.unlink, *batch)
        return removed

    def _subject_keys(self, subject: Any) -> list[tuple[str, bytes]]:
        """Return (view, Redis key) pairs of the subject's rows."""
        from forgeml.storage.online import KEY_SEPARATOR

        found: list[tuple[str, bytes]] = []
        for view, join_keys in subject.views.items():
            if subject.column not in join_keys:
                continue
            if len(join_keys) == 1:
                key = self._key(view, subject.value)
                if self._call(self.client.exists, key):
                    found.append((view, key.encode()))
                continue
            prefix = f"{self.key_prefix}{view}:".encode()
            for key in self.client.scan_iter(match=prefix + b"*", count=1000):
                parts = tuple(key[len(prefix):].decode().split(KEY_SEPARATOR))
                if len(parts) == len(join_keys) and subject.matches_key(join_keys, parts):
                    found.append((view, key))
        return found

    def find_subject(self, subject: Any) -> list[Any]:
        """Return each view holding a hash of the subject."""
        from forgeml.storage.online import subject_holdings

        return subject_holdings("online", self._subject_keys(subject))

    def erase_subject(self, subject: Any) -> list[Any]:
        """Delete the subject's hashes."""
        from forgeml.storage.online import subject_holdings

        keys = self._subject_keys(subject)
        if keys:
            self._call(self.client.delete, *[k for _, k in keys])
        return subject_holdings("online", keys)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


def _redis(settings: RedisSettings, workspace: Any) -> RedisOnlineStore:
    password = settings.password.get() if settings.password is not None else None
    return RedisOnlineStore(reveal(settings.url) or "", password=password, key_prefix=settings.key_prefix,
                            expire_s=settings.expire_s, batch=settings.batch)


@hookimpl
def forgeml_register_online_stores(register):
    """Offer the Redis online store."""
    register("redis", _redis, settings=RedisSettings, description="latest values per entity in Redis hashes")

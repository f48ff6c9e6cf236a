"""Key rotation for encryption at rest: rewrite artifacts and prediction logs under the current key."""

from __future__ import annotations

import json
from typing import Any

from forgeml.errors import ConfigError


def reencrypt(workspace: Any = None) -> dict[str, int]:
    """Re-encrypt every artifact object and prediction-log file not under the current key; return counts."""
    from forgeml.pii.encryption import HEADER, is_sealed, key_id_of
    from forgeml.pii.files import read_parquet, write_parquet
    from forgeml.serving.predlog import log_root

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    keyring = workspace.encryption_keyring()
    if keyring is None:
        raise ConfigError("encryption at rest is off: set [privacy] encrypt_at_rest = true and put the new key "
                          "first in the keys variable before rotating")
    artifacts = workspace.artifacts
    rotate = getattr(artifacts, "reencrypt", None)
    if rotate is None:
        raise ConfigError(f"the artifact store {type(artifacts).__name__} does not encrypt at rest")
    counts = {f"artifact_{k}": v for k, v in rotate().items()}
    logs = rewritten = 0
    root = log_root(workspace)
    for path in sorted(root.glob("model=*/date=*/*.parquet")) if root.is_dir() else []:
        logs += 1
        with open(path, "rb") as f:
            head = f.read(HEADER)
        if is_sealed(head) and key_id_of(head) == keyring.current:
            continue
        write_parquet(read_parquet(path, keyring), path, keyring)
        rewritten += 1
    counts.update(prediction_log_files=logs, prediction_log_rewritten=rewritten)
    return counts


NOT_REWRITTEN = ("dataset snapshots (frozen versions: read them through forgeml.privacy.upgrade, or register "
                 "new versions)", "run artifacts", "prediction logs (PII columns are dropped from them by default)",
                 "event streams (their events are read once; what they fed is rewritten)")


def rotate_pseudonyms(dry_run: bool = False, workspace: Any = None) -> dict[str, Any]:
    """Move every stored pseudonym under the whole key chain (after a new key was appended to it).

    Each pseudonym made by fewer keys than the chain holds gets one more HMAC per missing key, in the
    offline store's files (rewritten atomically) and the online store's keys and values, window state
    included. Runs are idempotent: a pseudonym already under the whole chain is left as it is.
    """
    import time

    from forgeml.auth.service import current_principal, require
    from forgeml.auth.store import auth_db, write_access
    from forgeml.pii.tokens import PSEUDONYM, key_env, pii_keys, upgrade_one

    if workspace is None:
        from forgeml.workspace import current

        workspace = current()
    keys = pii_keys(workspace) or []
    if len(keys) < 2:
        raise ConfigError(f"{key_env(workspace)} holds one key: append the new key after a comma (OLD,NEW) "
                          "before rotating")
    if not dry_run:
        require("privacy.forget", workspace=workspace, subject="privacy/pseudonyms")
    out: dict[str, Any] = {"dry_run": dry_run, "keys": len(keys), "changed": {}, "not_rewritten": list(NOT_REWRITTEN)}
    for place, store in (("offline", workspace.offline_store), ("online", workspace.online_store)):
        mapper = getattr(store, "map_text", None)
        if mapper is None:
            out["not_rewritten"].insert(0, f"{place} store {type(store).__name__} (it has no map_text)")
            continue
        for table, n in mapper(PSEUDONYM, lambda text: upgrade_one(text, keys), dry_run).items():
            out["changed"][f"{place}:{table}"] = n
    if not dry_run:
        write_access(auth_db(workspace), [(time.time(), current_principal(workspace).name, "privacy.pseudonyms.rotate",
                                           "pseudonyms", json.dumps({"keys": len(keys), "changed": out["changed"]}))])
    return out

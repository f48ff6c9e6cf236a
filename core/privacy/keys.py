"""Key rotation for encryption at rest: rewrite artifacts and prediction logs under the current key."""

from __future__ import annotations

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

"""The [privacy] section of plugins.toml: PII tags and key, encryption at rest, and retention limits."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class RetentionSettings:
    """How long each kind of record is kept; 0 keeps it forever. Applied by `forgeml gc`."""

    prediction_logs_days: int = setting(0, "Delete prediction-log days older than this many days.")
    runs_days: int = setting(0, "Purge runs that ended more than this many days ago (params, metrics, artifacts).")
    archived_model_artifacts_days: int = setting(
        0, "Delete the stored files of model versions archived more than this many days ago (the record stays).")
    unreferenced_artifacts_hours: float = setting(
        24.0, "Reclaim artifact objects no metadata refers to once they are this many hours old (0: never).")
    stream_events_days: int = setting(
        0, "Delete the offline events of pushed, streamed and window views older than this many days "
           "(whole days).")
    window_state_days: int = setting(
        0, "Delete the online window state (tiles) of entities no event has updated for this many days.")
    every_hours: float = setting(
        0.0, "Apply these limits every this many hours from the scheduler daemon (`forgeml scheduler`), each "
             "run recorded in the audit log; 0: only when `forgeml gc` runs.")


@dataclass
class PrivacySettings:
    """Personal data: which columns are PII, the key that pseudonymizes them, and where PII may go."""

    key_env: str = setting("FORGEML_PII_KEY", "Environment variable holding the secret key of PII pseudonyms "
                                              "(HMAC-SHA256; at least 16 characters). Never put the key itself here.")
    pii_columns: list[str] = setting([], "Columns treated as PII everywhere, besides those tagged pii=True in "
                                         "feature views, entities, request sources and datasets.")
    log_pii: bool = setting(False, "Allow PII columns in prediction logs, run artifacts and alerts (off: they are "
                                   "dropped from logs and refused in artifacts).")
    encrypt_at_rest: bool = setting(False, "Encrypt artifacts and prediction logs with AES-256-GCM (readers "
                                           "decrypt transparently).")
    encryption_keys_env: str = setting("FORGEML_ENCRYPTION_KEYS", "Environment variable holding the encryption "
                                       "keys: comma-separated 32-byte URL-safe base64 keys, the first encrypts.")
    retention: RetentionSettings = setting(default_factory=RetentionSettings, doc="Retention limits.")

"""Personal data primitives every layer uses: PII tags, keyed pseudonyms, subject-free table rewrites, purges."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".tokens": ["pseudonym", "tokenize", "pii_key", "pii_keys", "upgrade"],
    ".tags": ["pii_columns", "kept_out", "refuse_pii", "publish_pii"],
})

"""Personal data: PII tags, keyed pseudonyms, erasure of a data subject everywhere, audit and retention."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "forgeml.pii.tokens": ["pseudonym", "tokenize", "pii_key", "pii_keys", "upgrade"],
    ".keys": ["rotate_pseudonyms"],
    "forgeml.pii.tags": ["pii_columns", "refuse_pii"],
    ".forget": ["forget", "find_subject", "verify_forgotten", "parse_subject", "ForgetReport"],
})

"""What a safe relative path is: the one check every name a user, a remote host or an import supplies passes."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from forgeml.errors import ValidationError

# a one-component name (model, dataset, view, job id, log file): letters, digits, '_', '-', '.'
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_DIGEST = re.compile(r"[0-9a-f]{64}")
MAX_PATH = 1024
MAX_COMPONENT = 255


def _refuse(what: str, name: object, why: str) -> ValidationError:
    return ValidationError(f"{what} {name!r} is not a safe relative path: {why}")


def _looks_like_a_slash(char: str) -> bool:
    names = unicodedata.name(char, "")
    return "SOLIDUS" in names or "SLASH" in names


def safe_relpath(name: object, what: str = "path") -> str:
    """Return name as a normalized '/'-separated relative path, or raise ValidationError when it could escape."""
    if not isinstance(name, str):
        raise _refuse(what, name, "it is not a string")
    if not name or len(name) > MAX_PATH:
        raise _refuse(what, name, f"it must have 1 to {MAX_PATH} characters")
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")), None)
    if bad is not None:
        raise _refuse(what, name, f"it holds the control character U+{ord(bad):04X}")
    if "\\" in name:
        raise _refuse(what, name, "it holds a backslash (use '/' between folders)")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise _refuse(what, name, "it is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts:
        raise _refuse(what, name, "it names no file")
    for part in parts:
        # NFKC folds look-alikes (fullwidth dots, one-dot leaders, division slashes) into what a
        # filesystem or a later normalization may treat as '..' or a separator
        folded = unicodedata.normalize("NFKC", part)
        if part == ".." or folded in (".", "..") or any(s in folded for s in ("/", "\\")):
            raise _refuse(what, name, "it leaves its folder ('..' or a look-alike)")
        slash = next((c for c in part if not c.isascii() and _looks_like_a_slash(c)), None)
        if slash is not None:
            raise _refuse(what, name, f"U+{ord(slash):04X} looks like a folder separator")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT:
            raise _refuse(what, name, f"a component is longer than {MAX_COMPONENT} bytes")
    return "/".join(parts)


def safe_join(root: str | Path, name: object, what: str = "path") -> Path:
    """Return root/name after checking name with safe_relpath and that no symlink leads it out of root."""
    rel = safe_relpath(name, what)
    base = Path(os.path.realpath(root))
    target = base.joinpath(*rel.split("/"))
    resolved = Path(os.path.realpath(target))
    if resolved != base and base not in resolved.parents:
        raise _refuse(what, name, f"a symlink leads it out of {str(root)!r}")
    return target


def safe_component(name: object, what: str = "name") -> str:
    """Return a one-folder name (letters, digits, '_', '-', '.', starting with a letter or digit) or raise."""
    if not isinstance(name, str) or not _COMPONENT.fullmatch(name) or len(name) > MAX_COMPONENT:
        raise ValidationError(f"invalid {what} {name!r}: use letters, digits, '_', '-' and '.', "
                              "starting with a letter or digit")
    return name


def safe_digest(digest: object, what: str = "digest") -> str:
    """Return a sha256 hex digest (64 lowercase hex characters) or raise ValidationError."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ValidationError(f"{what} {digest!r} is not a sha256 digest (64 lowercase hex characters)")
    return digest

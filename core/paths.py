"""What a safe relative path is: the one check every name a user, a remote host or an import supplies passes."""

from __future__ import annotations

import os
import re
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def check_not_input(output: str | Path, inputs: Sequence[str | Path], what: str = "--output") -> Path:
    """Return output as a Path, refusing one that is an input or lies inside an input folder."""
    out = Path(os.path.realpath(output))
    for given in inputs:
        source = Path(os.path.realpath(given))
        if out == source or (source.is_dir() and source in out.parents):
            raise ValidationError(f"{what} {str(output)!r} would overwrite the input {str(given)!r}; "
                                  "write somewhere else")
    return Path(output)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside path, renamed over it when the block succeeds and removed when it fails."""
    final = Path(path)
    if final.is_dir():
        raise ValidationError(f"{str(final)!r} is a folder; give a file name to write")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        yield tmp
        if tmp.exists():
            os.replace(tmp, final)  # readers see the old file or the whole new one, never a part
    finally:
        tmp.unlink(missing_ok=True)


def extract_archive(tar: Any, dest: str | Path) -> None:
    """Unpack a tar archive under dest, refusing members that are absolute, climb out with '..' or are links."""
    import tarfile

    if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later: the standard library's own "data" rules
        tar.extractall(dest, filter="data")
        return
    members = []
    for member in tar.getmembers():  # older Pythons: the same refusals, checked here (links are refused outright)
        if not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"member {member.name!r} is a link or special file")
        try:
            safe_relpath(member.name, "archive member")
        except ValidationError as e:
            raise tarfile.TarError(str(e)) from e
        member.mode &= 0o755  # no set-uid, set-gid or sticky bits, as the data filter does
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        members.append(member)
    tar.extractall(dest, members=members, numeric_owner=True)

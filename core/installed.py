"""Installed distributions read straight from their ``.dist-info`` folders: entry points and versions.

Every forgeml process looks up the ``forgeml`` entry-point group and a run records package versions.
``importlib.metadata`` answers both but costs tens of milliseconds per process (its import and an
email-format parse per distribution); this module does the same directory walk with plain file
reads. Where sys.path holds anything but folders (zip files, eggs) or another finder can supply
distributions, it hands the question to ``importlib.metadata`` so the answers are always the same.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

_SEPARATORS = re.compile(r"[-_.]+")
_ENTRY_POINT_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?(\[.*\]\s*)?$")


@dataclass(frozen=True)
class Distribution:
    """An installed distribution: its name and version as its metadata states them."""

    name: str
    version: str


@dataclass(frozen=True)
class EntryPoint:
    """One entry point of a group, with the distribution that declares it."""

    name: str
    value: str
    group: str
    dist: Distribution | None

    def load(self) -> Any:
        """Import the module the entry point names and return the object it points at."""
        match = _ENTRY_POINT_VALUE.match(self.value.strip())
        if match is None:
            raise ValueError(f"entry point {self.name!r} has a malformed value {self.value!r}")
        target: Any = importlib.import_module(match.group("module"))
        for part in filter(None, (match.group("attr") or "").split(".")):
            target = getattr(target, part)
        return target


def normalize(name: str) -> str:
    """Return a distribution name the way metadata folders are matched (PEP 503, dashes as underscores)."""
    return _SEPARATORS.sub("-", name).lower().replace("-", "_")


def _plain_folders_only() -> bool:
    # another finder may know distributions that no folder on sys.path shows
    for finder in sys.meta_path:
        if finder is not importlib.machinery.PathFinder and hasattr(finder, "find_distributions"):
            return False
    return not any(os.path.isfile(entry) or entry.lower().endswith(".egg") for entry in sys.path)


def _metadata_folders() -> dict[str, str] | None:
    """Return normalized name -> metadata folder, first on sys.path wins; None when not plain folders."""
    if not _plain_folders_only():
        return None
    found: dict[str, str] = {}
    for entry in sys.path:
        root = entry or "."
        try:
            children = os.listdir(root)
        except OSError:
            continue
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                found.setdefault(normalize(low.rpartition(".")[0].partition("-")[0]), os.path.join(root, child))
    return found


def _header(folder: str) -> tuple[str, str] | None:
    """Return (Name, Version) from a metadata folder's METADATA or PKG-INFO header."""
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, filename), encoding="utf-8", errors="replace") as f:
                name = version = None
                for line in f:
                    if not line.strip():
                        break  # the header ends at the first blank line
                    key, _, value = line.partition(":")
                    if key == "Name" and name is None:
                        name = value.strip()
                    elif key == "Version" and version is None:
                        version = value.strip()
                    if name is not None and version is not None:
                        return name, version
        except OSError:
            continue
    return None


def _section(text: str, group: str) -> list[tuple[str, str]]:
    """Return the ``name = value`` lines of one [group] of an entry_points.txt."""
    lines: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
            continue
        if inside and "=" in line:
            name, _, value = line.partition("=")
            lines.append((name.strip(), value.strip()))
    return lines


def entry_points(group: str) -> list[EntryPoint]:
    """Return every entry point of a group, one distribution per name as importlib.metadata does."""
    folders = _metadata_folders()
    if folders is None:
        return _entry_points_from_importlib(group)
    found = []
    for folder in folders.values():
        try:
            with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        if f"[{group}]" not in text:
            continue
        header = _header(folder)
        dist = Distribution(*header) if header else None
        found.extend(EntryPoint(name, value, group, dist) for name, value in _section(text, group))
    return found


def _entry_points_from_importlib(group: str) -> list[EntryPoint]:
    from importlib.metadata import entry_points as metadata_entry_points

    found = []
    for ep in metadata_entry_points(group=group):
        dist = ep.dist
        found.append(EntryPoint(ep.name, ep.value, group,
                                None if dist is None else Distribution(dist.name, dist.version)))
    return found


def versions(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Return the installed version of each named distribution that is installed (one folder walk)."""
    folders = _metadata_folders()
    found: dict[str, str] = {}
    for name in names:
        if folders is None:
            from importlib.metadata import PackageNotFoundError
            from importlib.metadata import version as metadata_version

            try:
                found[name] = metadata_version(name)
            except PackageNotFoundError:
                continue
        else:
            folder = folders.get(normalize(name))
            header = _header(folder) if folder else None
            if header:
                found[name] = header[1]
    return found

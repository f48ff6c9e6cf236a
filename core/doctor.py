"""Health checks behind `forgeml doctor`."""

from __future__ import annotations

import platform
import sys
from typing import TYPE_CHECKING, Any

from forgeml.contracts import GpuInventory, HealthCheck
from forgeml.errors import ForgeError
from forgeml.layers import LAYER, LAYERS

if TYPE_CHECKING:
    from forgeml.plugin_manager import PluginHost
    from forgeml.workspace import Workspace


def _torch_check() -> list[HealthCheck]:
    try:
        import torch
    except ImportError as e:
        return [HealthCheck("torch", False, f"not importable: {e}")]
    cuda = torch.cuda.is_available()
    detail = f"{torch.__version__}; CUDA {'available: ' + str(torch.version.cuda) if cuda else 'not available'}"
    return [HealthCheck("torch", True, detail)]


def gpu_checks(inventory: GpuInventory) -> list[HealthCheck]:
    """Report each GPU an inventory sees, or that the machine runs in CPU mode."""
    devices = inventory.devices()
    if not devices:
        return [HealthCheck("gpus", True, "no NVIDIA GPU found, CPU mode")]
    return [
        HealthCheck(f"gpu {d.index}", True,
                    f"{d.name}, {d.memory_free_mb}/{d.memory_total_mb} MiB free, {d.utilization_pct:.0f}% busy")
        for d in devices
    ]


def _default_gpu_checks(host: PluginHost) -> list[HealthCheck]:
    """Outside a workspace: the GPUs the default inventory sees, opened with its default settings."""
    layer = LAYER["gpu_inventories"]
    found = host.providers(layer.name)
    if layer.default not in found:
        return [HealthCheck("gpus", True, f"not checked: no {layer.noun} {layer.default!r} (plugin disabled)")]
    provider = found[layer.default]
    return gpu_checks(provider.factory(provider.settings() if provider.settings else None, None))  # type: ignore[arg-type]


def _where(provider: object) -> str:
    return str(getattr(provider, "url", None) or getattr(provider, "root", None) or "")


def layer_checks(ws: Workspace) -> list[HealthCheck]:
    """Open every layer's provider the workspace chooses (every row of the layer table) and report each."""
    checks: list[HealthCheck] = []
    for layer in LAYERS:
        if layer.section is None:
            names = sorted(ws.plugins.providers(layer.name))
            checks.append(HealthCheck(f"{layer.noun}s", True, ", ".join(names) or "none registered"))
        elif layer.named:
            try:
                chosen = ws.config.named(layer)
            except ForgeError as e:
                checks.append(HealthCheck(f"[{layer.section}]", False, str(e)))
                continue
            for name, (provider, _settings) in chosen.items():
                try:
                    opened = ws.open_named(layer.name, name)
                    detail = getattr(opened, "describe", lambda: "")() or _where(opened)
                    checks.append(HealthCheck(f"{layer.entry} {name}", True, f"{provider.name}: {detail}".rstrip(": ")))
                except ForgeError as e:
                    checks.append(HealthCheck(f"{layer.entry} {name}", False, str(e)))
        elif layer.name == "gpu_inventories":
            try:
                checks += gpu_checks(ws.gpu_inventory)
            except ForgeError as e:
                checks.append(HealthCheck("gpus", False, str(e)))
        else:
            try:
                provider, _settings = ws.config.provider(layer.section)
                checks.append(HealthCheck(layer.noun, True, _where(ws.open_layer(layer.name)) or provider.name))
            except ForgeError as e:
                checks.append(HealthCheck(layer.noun, False, str(e)))
    return checks


def run_checks(deep: bool = False) -> list[HealthCheck]:
    """Run every check: Python, torch/CUDA, the workspace, every layer's provider, every plugin.

    ``deep`` reads every referenced artifact and verifies its hash instead of only checking it exists.
    """
    checks = [HealthCheck("python", sys.version_info >= (3, 11), f"{platform.python_version()} at {sys.executable}")]
    checks += _torch_check()
    from forgeml.plugin_manager import make_plugin_manager
    from forgeml.workspace import Workspace

    try:
        ws = Workspace.find()
    except ForgeError as e:
        host = make_plugin_manager(report=lambda msg: None)
        try:
            checks += _default_gpu_checks(host)
        except ForgeError as gpu_error:
            checks.append(HealthCheck("gpus", False, str(gpu_error)))
        checks.append(HealthCheck("workspace", False, str(e)))
    else:
        host = ws.plugins
        checks.append(HealthCheck("workspace", True, str(ws.root)))
        checks += layer_checks(ws)
        checks.append(_orphaned_runs_check(ws))
        try:
            checks += storage_checks(ws, deep)
        except ForgeError as e:  # a store that cannot open is already reported by its layer's check
            checks.append(HealthCheck("database integrity", False, f"not checked: {e}"))
    for info in host.infos:
        if info.error:
            checks.append(HealthCheck(f"plugin {info.name}", False, info.error))
        else:
            checks.append(HealthCheck(f"plugin {info.name}", True,
                                      f"{info.origin} {info.version}, {'enabled' if info.enabled else 'disabled'}"))
    return checks


def _orphaned_runs_check(ws: Workspace) -> HealthCheck:
    """Mark runs left RUNNING by a killed process as KILLED, and say how many there were."""
    from forgeml.tracking.liveness import reap_orphaned_runs

    try:
        reaped = reap_orphaned_runs(ws)
    except ForgeError as e:
        return HealthCheck("orphaned runs", False, str(e))
    if reaped:
        return HealthCheck("orphaned runs", True, f"marked KILLED {len(reaped)} run(s) whose process is gone: "
                                                  + ", ".join(r[:8] for r in reaped[:10]))
    return HealthCheck("orphaned runs", True, "no RUNNING run has lost its process")


def referenced_artifacts(ws: object) -> dict[str, set[str]]:
    """Return the artifact digests each service layer points at, by layer; a layer that cannot say is skipped."""
    from forgeml.layers import artifact_referencers

    found: dict[str, set[str]] = {}
    for layer, referenced in artifact_referencers().items():
        try:
            found[layer] = referenced(ws)
        except ForgeError:  # that layer cannot be read here; its own check says why
            continue
    return found


def _artifact_problems(artifacts: Any, digests: set[str], deep: bool) -> tuple[list[str], list[str]]:
    """Return the missing and (with ``deep``, which reads and hashes every object) the corrupt digests."""
    from forgeml.errors import CorruptObjectError

    missing, corrupt = [], []
    for digest in sorted(digests):
        try:
            if not deep:
                if not artifacts.exists(digest):
                    missing.append(digest)
                continue
            with artifacts.open(digest) as f:
                while f.read(1 << 20):
                    pass
        except CorruptObjectError:
            corrupt.append(digest)
        except ForgeError:
            missing.append(digest)
    return missing, corrupt


def storage_checks(ws: object, deep: bool = False) -> list[HealthCheck]:
    """Check the database's integrity, that every referenced artifact exists (``deep``: and hashes right),
    and that an empty database does not sit beside stored objects."""
    checks = []
    metadata = ws.metadata  # type: ignore[attr-defined]
    artifacts = ws.artifacts  # type: ignore[attr-defined]
    problems = getattr(metadata, "integrity_problems", None)
    if problems is not None:
        found = problems()
        checks.append(HealthCheck("database integrity", not found,
                                  "; ".join(found[:5]) + " (restore the database from a backup)" if found else "ok"))
    digests: set[str] = set().union(*referenced_artifacts(ws).values())
    missing, corrupt = _artifact_problems(artifacts, digests, deep)
    detail = (f"{len(digests)} referenced object(s) present and intact" if deep else
              f"{len(digests)} referenced object(s) present (`forgeml doctor --deep` verifies their bytes)")
    if missing or corrupt:
        detail = "; ".join(part for part in (
            f"{len(missing)} missing ({', '.join(d[:12] for d in missing[:5])})" if missing else "",
            f"{len(corrupt)} corrupt ({', '.join(d[:12] for d in corrupt[:5])})" if corrupt else "") if part)
        detail += f" in {getattr(artifacts, 'root', 'the artifact store')}"
    checks.append(HealthCheck("artifacts", not missing and not corrupt, detail))
    if not digests:
        stored = sum(1 for _ in artifacts.list())
        if stored:
            checks.append(HealthCheck("metadata", False, f"the database references no artifacts but the artifact "
                                      f"store holds {stored} object(s): was the database deleted and recreated? "
                                      "restore it from a backup"))
    return checks

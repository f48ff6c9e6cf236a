"""The [runtimes.torch] settings section, apart from the runtimes so that declaring it stays cheap."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class TorchSettings:
    """How the torch runtime loads models ([runtimes.torch])."""

    device: str = setting("auto", "\"auto\" picks the CUDA device with the most free memory, else the CPU; or \"cpu\", \"cuda:1\".")
    quantize: bool = setting(False, "Apply dynamic INT8 quantization to Linear layers (CPU only).")
    compile: bool = setting(False, "Wrap the module with torch.compile (slower first call, faster after).")

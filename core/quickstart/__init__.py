"""`forgeml quickstart`: the whole lifecycle on the embedded defaults, in a new workspace."""

from forgeml.quickstart.lifecycle import SCALES, Scale
from forgeml.quickstart.runner import DEFAULT_DIRECTORY, QuickstartStepError, StepEvent, run_quickstart
from forgeml.quickstart.summary import Summary

__all__ = ["DEFAULT_DIRECTORY", "SCALES", "QuickstartStepError", "Scale", "StepEvent", "Summary", "run_quickstart"]

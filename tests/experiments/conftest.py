"""Experiments tests serve real endpoints with the serving tests' server helper."""

from __future__ import annotations

import sys
from pathlib import Path

# serving_support (a uvicorn server on a free loopback port) lives beside the serving tests
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serving"))

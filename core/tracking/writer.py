"""The buffered metric writer: ``log_metric`` appends to memory, a daemon thread writes batches."""

from __future__ import annotations

from forgeml.buffering import BufferedWriter, flush_all

Point = tuple[int, str, int, float, float]  # run seq, key, step, ts, value

MetricWriter = BufferedWriter  # its defaults name and show metric points

__all__ = ["MetricWriter", "Point", "flush_all"]

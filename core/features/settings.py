"""The [features] section of plugins.toml: how the feature store guards what is pushed to it."""

from __future__ import annotations

from dataclasses import dataclass

from forgeml.config import setting


@dataclass
class FeaturesSettings:
    """The feature store."""

    max_future_skew_s: float = setting(
        300.0, "Refuse pushed rows whose event time lies more than this many seconds in the future "
        "(such a row would pin the online value until the clock caught up).")
    compact_after_files: int = setting(
        1000, "The stream process compacts a view's offline table in the background once it has added this "
        "many files since the last compaction (0: never; `forgeml features compact VIEW` does it by hand).")

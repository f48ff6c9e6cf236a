"""Dataset versions, splits and validation."""

from forgeml.datasets.splits import split
from forgeml.datasets.validation import (
    Expectation,
    ExpectationResult,
    ExpectationSuite,
    ValidationReport,
    validate,
)
from forgeml.datasets.versions import (
    DatasetVersion,
    diff,
    get_dataset_version,
    lineage,
    list_datasets,
    list_versions,
    read_dataset,
    record_use,
    register_dataset,
    restore_files,
)

__all__ = [
    "DatasetVersion", "Expectation", "ExpectationResult", "ExpectationSuite", "ValidationReport", "diff",
    "get_dataset_version", "lineage", "list_datasets", "list_versions", "read_dataset", "record_use",
    "register_dataset", "restore_files", "split", "validate",
]

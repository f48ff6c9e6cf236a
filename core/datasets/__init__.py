"""Dataset versions, splits and validation."""

from forgeml.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    ".splits": ["split"],
    ".validation": ["Expectation", "ExpectationResult", "ExpectationSuite", "ValidationReport", "validate"],
    ".versions": ["DatasetVersion", "diff", "get_dataset_version", "lineage", "list_datasets",
        "list_versions", "read_dataset", "record_use", "register_dataset", "restore_files"],
})

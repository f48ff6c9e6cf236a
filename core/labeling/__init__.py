"""Labels: label sets, annotation backends, active learning, weak supervision and label quality."""

from forgeml.labeling.labelsets import (
    LabelRecord,
    LabelSet,
    add_labels,
    create_label_set,
    get_label_set,
    get_labels,
    list_label_sets,
    snapshot,
    training_set,
)

__all__ = ["LabelRecord", "LabelSet", "add_labels", "create_label_set", "get_label_set", "get_labels",
           "list_label_sets", "snapshot", "training_set"]

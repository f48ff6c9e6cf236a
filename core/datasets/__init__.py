"""Dataset versions, splits and validation."""

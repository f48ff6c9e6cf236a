"""`forgeml quickstart`: the whole lifecycle on the embedded defaults, in a new workspace."""

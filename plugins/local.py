"""Local compute: the workstation executor, the default placement policy and the [scheduler] settings."""

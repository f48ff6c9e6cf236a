"""Alert notifiers: log, shell command, webhook, desktop."""

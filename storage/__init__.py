"""Embedded engines bound to the hook specs by the built-in plugins."""

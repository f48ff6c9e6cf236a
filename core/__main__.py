"""``python -m forgeml`` runs the CLI."""

from forgeml.cli import main

main()

"""Shared pieces of the remote compute plugins: code snapshots, syncing and state mapping."""

"""Pipeline settings and triggers."""

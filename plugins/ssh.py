"""Compute on SSH hosts through paramiko."""

"""Compute on Kubernetes."""

"""Compute on a Slurm cluster."""

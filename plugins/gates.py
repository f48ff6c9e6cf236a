"""Built-in promotion gates: metric thresholds, no regression, approvals, custom command."""

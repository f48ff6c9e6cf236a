"""Monitoring: drift reports, output monitoring, alert rules and notifications."""

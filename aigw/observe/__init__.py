"""Observing a running gateway: access logs and traces (metrics live here too)."""

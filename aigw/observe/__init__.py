"""Observing a running gateway: in-process metrics, access logs and traces."""

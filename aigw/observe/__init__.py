"""Observability: in-process metrics (and, later, access logs and traces)."""

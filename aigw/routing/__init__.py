"""Routing: which provider and upstream model serve a call (health and retries later)."""

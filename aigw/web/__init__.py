"""The gateway's own pages and admin endpoints: /dashboard and /metrics."""

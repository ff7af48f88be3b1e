"""Client-facing wire formats: request validation and response encoding."""

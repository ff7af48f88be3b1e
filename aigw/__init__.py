"""aigw: an AI gateway in one process and one SQLite file."""

__version__ = "0.1.0.dev0"

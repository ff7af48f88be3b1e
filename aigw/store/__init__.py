"""All SQL lives here. One :class:`~aigw.store.db.Database` owns the connections."""

from aigw.store.db import Database, open_database

__all__ = ["Database", "open_database"]

"""State behind protocols (:mod:`aigw.store.base`); SQLite is the default backend.

``Database``/``open_database`` open the SQLite state file; :class:`SQLiteStore`
binds it to the protocols. All SQL lives in :mod:`aigw.store.sqlite`.
"""

from aigw.store.sqlite import SQLiteStore
from aigw.store.sqlite.db import Database, open_database

__all__ = ["Database", "SQLiteStore", "open_database"]

"""A memo for answers derived from client-chosen strings, bounded in size.

Model names come from clients, so a memo keyed by them must not grow with what
clients send: forty distinct 1 MiB names would otherwise stay in memory for good.
Keys longer than ``max_key`` characters are never stored (legitimate names are
short; such a call simply computes its answer), and the memo holds at most
``max_entries`` keys, dropping the oldest first. So it holds at most
``max_entries * max_key`` characters of keys; the values are small (shared
records, booleans, or slices of the key).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEY = 256
MAX_ENTRIES = 4096


class Memo(Generic[K, V]):
    """``compute(key)``, remembered for short keys, at most ``max_entries`` of them."""

    __slots__ = ("_compute", "_data", "_size", "max_entries", "max_key")

    def __init__(
        self,
        compute: Callable[[K], V],
        size: Callable[[K], int],
        *,
        max_entries: int = MAX_ENTRIES,
        max_key: int = MAX_KEY,
    ) -> None:
        self._compute = compute
        self._size = size
        self._data: dict[K, V] = {}
        self.max_entries = max_entries
        self.max_key = max_key

    def __call__(self, key: K) -> V:
        try:
            return self._data[key]
        except KeyError:
            pass
        value = self._compute(key)
        if self._size(key) <= self.max_key:
            if len(self._data) >= self.max_entries:
                del self._data[next(iter(self._data))]  # the oldest (insertion order)
            self._data[key] = value
        return value

    def __len__(self) -> int:
        return len(self._data)

    def key_chars(self) -> int:
        """Characters held in keys (for tests: the bound in action)."""
        return sum(self._size(k) for k in self._data)

    def clear(self) -> None:
        self._data.clear()

"""Group commit: rows from concurrent requests share one write.

A request hands its rows to :class:`GroupWriter` and waits; the writer takes
everything that queued up while the previous write ran and hands it to
``write_many`` at once (for the ledger: its rows and their audit events in one
transaction, one commit). Under load that is one commit for many requests; alone,
one commit. The rows of one :meth:`GroupWriter.append` always share a commit; the
backend only supplies ``write_many``, which must write all of its rows or none and
raise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupWriter(Generic[T]):
    """Batches rows for ``write_many``; each caller waits for its own row's commit."""

    def __init__(self, write_many: Callable[[list[T]], Awaitable[None]], *, name: str) -> None:
        self.write_many = write_many
        self.name = name  # "ledger", "audit": for messages and the logger's name
        self._log = logging.getLogger(f"aigw.{name}")
        self._pending: list[tuple[tuple[T, ...], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self.commits = 0
        self.rows = 0

    async def append(self, *rows: T) -> None:
        """Queue ``rows`` (committed together) and return once they are committed
        (raises if the commit failed)."""
        # The commit runs in the writer task: a cancelled request only cancels its own
        # future (the writer skips futures that are done), never the shared commit.
        await self.submit(*rows)

    def submit(self, *rows: T) -> asyncio.Future[None]:
        """Queue ``rows`` (committed together) and return the future of their commit,
        so the caller can do other work while it runs; it must then await the future
        (or cancel it: the rows are still committed). Raises RuntimeError once closed."""
        if self._closing:
            raise RuntimeError(f"the {self.name} is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, fut))
        self._wake.set()
        return fut

    async def run(self) -> None:
        """The writer loop (a background task); returns after close() once drained."""
        while True:
            await self._wake.wait()
            # One turn of the loop first: requests already answered by then add their
            # rows to this commit instead of waiting for the next one.
            await asyncio.sleep(0)
            self._wake.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._commit(batch)
            elif self._closing:
                return

    async def _commit(self, batch: list[tuple[tuple[T, ...], asyncio.Future[None]]]) -> None:
        try:
            await self.write_many([row for rows, _ in batch for row in rows])
        except Exception as exc:
            self._log.exception("%s commit of %d rows failed", self.name, len(batch))
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.commits += 1
        self.rows += len(batch)  # appends (calls), not rows
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    def close(self) -> None:
        """Stop accepting rows; run() commits what is queued, then returns."""
        self._closing = True
        self._wake.set()

"""Graceful shutdown: let the calls in flight finish, then cut and record the rest.

On SIGTERM the server stops accepting connections (so a load balancer moves on),
closes idle keep-alive connections, and gives every request in flight up to
``[server] drain_seconds`` to finish normally. At the deadline (or on a second
SIGTERM) the requests still running are cancelled. A provider bills a call even when
nobody reads its answer, so the pipeline catches that cancellation while
:attr:`Drain.cutting` is set, records the call with status 503 and usage estimated
from the prompt and the text streamed so far, and answers the client with a 503 (or
ends its stream with an error event). The ledger writer stops only after all that,
so every row is committed before the process exits.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aigw.errors import GatewayError
from aigw.usage import Usage

if TYPE_CHECKING:
    from aigw.pipeline.context import Context

CUT_STATUS = 503
# After the cut, how long the cut requests get to record their rows.
RECORD_GRACE = 5.0


class Drain:
    """The request tasks in flight, and the deadline that cuts them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.cutting = False
        self.waited = 0.0
        self._hurried = False
        self._wake: asyncio.Future[None] | None = None

    def enter(self) -> asyncio.Task[Any] | None:
        """Track the current request's task."""
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        return task

    def leave(self, task: asyncio.Task[Any] | None) -> None:
        if task is None:
            return
        self.tasks.discard(task)
        if not self.tasks:
            self._resolve()

    def hurry(self) -> None:
        """Cut now instead of at the deadline (a second SIGTERM, or the deadline itself)."""
        self._hurried = True
        self._resolve()

    def _resolve(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def run(self, seconds: float) -> int:
        """Wait up to ``seconds`` for the requests in flight, then cut the rest.

        Returns how many were cut; they have recorded their rows (or had
        ``RECORD_GRACE`` seconds to) when this returns.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self.tasks and not self._hurried:
            self._wake = loop.create_future()
            timer = loop.call_later(seconds, self.hurry)
            try:
                await self._wake
            finally:
                timer.cancel()
        self.waited = loop.time() - started
        left = [t for t in self.tasks if not t.done()]
        if not left:
            return 0
        self.cutting = True
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=RECORD_GRACE)
        return len(left)

    def cut(self, ctx: Context) -> GatewayError:
        """In a request cancelled by the cut: absorb the cancellation and say why.

        A call the provider already received gets its prompt estimate as usage (a
        stream's relay adds the text it streamed).
        """
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # handled here: later awaits (recording) must not see it
        if ctx.upstream_called and ctx.usage is None:
            ctx.usage, ctx.usage_estimated = Usage(ctx.prompt_estimate), True
        return GatewayError(
            CUT_STATUS,
            "The gateway shut down before this call finished "
            f"(it waited {self.waited:.0f} s for calls in flight). Retry it.",
            type="server_error",
            code="server_shutting_down",
        )

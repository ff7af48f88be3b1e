"""Start and stop an aiohttp app on host:port: ``aigw serve``, ``aigw demo``, the tests.

Set-up runs the app's ``cleanup_ctx`` (the gateway's services come up), ``listen``
opens the socket and learns the bound port from aiohttp's public ``addresses`` (port
0 picks a free one), ``drain`` stops taking requests and lets those in flight finish,
``close`` runs the cleanup (background work drained, ledger committed).
:func:`settle_heap` tunes the garbage collector once ``aigw serve`` is up.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from aigw.drain import Drain


class Server:
    """One app behind one listening socket."""

    def __init__(
        self,
        app: web.Application,
        *,
        handler_cancellation: bool = False,
        shutdown_timeout: float = 5.0,
    ) -> None:
        # handler_cancellation=False: a client that disconnects must not cancel the
        # handler before its ledger row is written. shutdown_timeout is a backstop:
        # drain() has already finished or cut (and recorded) every proxied call.
        self.app = app
        self.runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=handler_cancellation,
            shutdown_timeout=shutdown_timeout,
        )
        self.host = ""
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def setup(self) -> None:
        """Start the app's services (its cleanup_ctx), without a socket yet."""
        await self.runner.setup()

    async def listen(self, host: str, port: int, *, backlog: int = 128) -> int:
        """Open the socket; returns the port it is bound to."""
        site = web.TCPSite(self.runner, host, port, backlog=backlog)
        await site.start()
        self.host = host
        self.port = int(self.runner.addresses[-1][1])
        return self.port

    async def drain(self, inflight: Drain, seconds: float) -> int:
        """Stop taking requests, give those in flight ``seconds``, cut the rest.

        Returns how many were cut (each recorded in the ledger); :meth:`close`
        afterwards commits the ledger and closes everything.
        """
        for site in list(self.runner.sites):
            await site.stop()  # close the listening socket: a load balancer moves on
        server = self.runner.server
        if server is not None:
            # Idle keep-alive connections close now; busy ones after their reply, so
            # no new request starts on them.
            server.pre_shutdown()
        return await inflight.run(seconds)

    async def close(self) -> None:
        await self.runner.cleanup()


YOUNG_THRESHOLD = 10_000


def settle_heap(young: int = YOUNG_THRESHOLD) -> None:
    """Tune the cyclic garbage collector for serving, once start-up is over.

    Start-up leaves tens of thousands of long-lived objects (modules, config, price
    table, routes) that every full collection would walk again for nothing:
    ``gc.freeze()`` moves them out of the collector's sight for good (they stay alive
    and are never freed anyway). Each request then allocates hundreds of container
    objects, nearly all freed by reference counting: with the default threshold (700)
    the youngest generation is collected every few requests, a cost with next to no
    garbage to show for it. Collected every ``young`` allocations instead, cycles are
    still found and freed, a little later: at most about ``young`` extra objects wait
    (tests/test_memory_bounds.py).
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)


@asynccontextmanager
async def running(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    handler_cancellation: bool = False,
    shutdown_timeout: float = 5.0,
) -> AsyncIterator[Server]:
    """``app`` set up and listening for the ``async with`` block, closed after it."""
    server = Server(
        app, handler_cancellation=handler_cancellation, shutdown_timeout=shutdown_timeout
    )
    await server.setup()
    try:
        await server.listen(host, port)
        yield server
    finally:
        await server.close()

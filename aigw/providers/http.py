"""The HTTP transport: one shared aiohttp session with a connection pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp

from aigw.providers.base import UpstreamRequest, UpstreamResponse


class HTTPResponse:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self) -> bytes:
        return await self._resp.read()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._resp.content.iter_any()

    def close(self) -> None:
        # close(), not release(): an unfinished body must not go back to the pool.
        self._resp.close()


class HTTPTransport:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def send(self, req: UpstreamRequest) -> UpstreamResponse:
        resp = await self.session.request(
            req.method, req.url, headers=req.headers, data=req.body, allow_redirects=False
        )
        return HTTPResponse(resp)


def new_session(connect_timeout: float) -> aiohttp.ClientSession:
    """The process-wide session. Read timeouts are enforced per call by the forward step."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout
        ),
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
    )

"""The seams of issue 8: provider adapters, the step list, the one way to start a server."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from aigw.config import PROVIDER_TYPES, ProviderConfig
from aigw.providers import adapters
from aigw.providers.base import CHAT, COUNT_TOKENS, EMBEDDINGS, RESPONSES, ProviderAdapter
from aigw.server import Server, running


def test_every_provider_type_has_an_adapter() -> None:
    found: dict[str, ProviderAdapter] = adapters()  # each satisfies the protocol (mypy)
    assert set(found) == set(PROVIDER_TYPES)
    for adapter in found.values():
        assert CHAT in adapter.capabilities


@pytest.mark.parametrize("type_", PROVIDER_TYPES)
def test_declared_capabilities_are_served(type_: str) -> None:
    """A capability an adapter declares builds a request; one it does not is refused."""
    adapter = adapters()[type_]
    pc = ProviderConfig(name="p", type=type_, base_url="http://upstream.invalid/v1")
    body = {"model": "m", "input": "hi", "messages": [{"role": "user", "content": "hi"}]}
    optional = {
        EMBEDDINGS: lambda: adapter.embeddings_request(pc, "k", body, upstream_model="m"),
        RESPONSES: lambda: adapter.responses_request(pc, "k", body, upstream_model="m"),
        COUNT_TOKENS: lambda: adapter.count_tokens_request(pc, "k", body, upstream_model="m"),
    }
    for capability, build in optional.items():
        if capability in adapter.capabilities:
            assert build() is not None
        else:
            with pytest.raises(NotImplementedError):
                build()


def test_no_provider_type_branches_in_the_pipeline() -> None:
    from pathlib import Path

    import aigw.pipeline

    root = Path(aigw.pipeline.__file__).parent
    for path in root.glob("*.py"):
        if path.name in ("admit.py", "authenticate.py"):
            continue  # the limits engine's call sites
        assert ".type ==" not in path.read_text(), path.name
        assert ".type !=" not in path.read_text(), path.name


async def test_server_listens_on_a_free_port_and_closes() -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    async with running(app) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as s, s.get(server.url + "/") as resp:
            assert await resp.text() == "hi"
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as s, s.get(server.url + "/"):
            pass


async def test_server_drain_with_nothing_in_flight() -> None:
    from aigw.drain import Drain

    server = Server(web.Application())
    await server.setup()
    try:
        await server.listen("127.0.0.1", 0)
        assert await server.drain(Drain(), 5) == 0
        assert not server.runner.sites
    finally:
        await server.close()


async def test_the_relay_reads_the_first_event_before_the_headers() -> None:
    """Until the first upstream event, nothing has gone to the client (failover room)."""
    from collections.abc import AsyncIterator, Mapping
    from unittest import mock

    from aiohttp.test_utils import make_mocked_request

    from aigw.config import UpstreamConfig
    from aigw.drain import Drain
    from aigw.errors import Wire
    from aigw.pipeline.context import Context
    from aigw.pipeline.relay import Relayer
    from aigw.providers.openai import OpenAIStream

    writer = mock.MagicMock()
    writer.write_headers = mock.AsyncMock()
    writer.write = mock.AsyncMock()
    writer.write_eof = mock.AsyncMock()
    writer.drain = mock.AsyncMock()
    request = make_mocked_request("POST", "/v1/chat/completions", writer=writer)
    seen: list[int] = []

    class Upstream:
        status = 200
        headers: Mapping[str, str] = {}

        async def read(self) -> bytes:
            return b""

        async def chunks(self) -> AsyncIterator[bytes]:
            seen.append(writer.write_headers.await_count)
            yield b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
            seen.append(writer.write_headers.await_count)
            yield b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'

        def close(self) -> None:
            pass

    accountant = mock.AsyncMock()
    relayer = Relayer(UpstreamConfig(), accountant, Drain())
    ctx = Context(Wire.OPENAI, "chat.completions", request)
    await relayer.relay(ctx, request, Upstream(), OpenAIStream(False), lambda e: b"", 1)
    assert seen == [0, 1]  # headers only once the first event was read
    accountant.record.assert_awaited_once_with(ctx)

"""Bad input and bad upstreams: clear errors in the OpenAI envelope, nothing lost."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import openai
import pytest

from aigw.config import UpstreamConfig
from tests.conftest import RunningGateway, StartGateway
from tests.fakes.base import DieMidStream, Fail, Hang, Reply
from tests.fakes.openai import FakeOpenAI

HI = [{"role": "user", "content": "hi"}]


def envelope(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    return dict(err)


async def post(gw: RunningGateway, key: str | None, data: bytes, **headers: str) -> tuple[int, Any]:
    hdrs = {"Content-Type": "application/json", **headers}
    if key:
        hdrs["Authorization"] = f"Bearer {key}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + "/v1/chat/completions", data=data, headers=hdrs) as r,
    ):
        assert "x-request-id" in r.headers
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize(
    ("data", "param", "fragment"),
    [
        (b'{"model": "fast", "messages": [', None, "not valid JSON"),
        (b"", None, "empty"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"messages": []}', "model", "Missing required parameter: 'model'"),
        (b'{"model": 42, "messages": []}', "model", "expected a non-empty string, got integer"),
        (b'{"model": "fast"}', "messages", "Missing required parameter: 'messages'"),
        (b'{"model": "fast", "messages": "hi"}', "messages", "expected an array, got string"),
        (b'{"model": "fast", "messages": []}', "messages", "at least one message"),
        (b'{"model": "fast", "messages": [1]}', "messages[0]", "expected an object"),
        (b'{"model": "fast", "messages": [{"role": "robot"}]}', "messages[0].role", "robot"),
        (
            b'{"model": "fast", "messages": [{"role": "user", "content": 5}]}',
            "messages[0].content",
            "got integer",
        ),
        (
            b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "stream",
            "expected a boolean, got string",
        ),
        (
            b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}',
            "max_tokens",
            "expected an integer, got string",
        ),
        (
            b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            "max_tokens",
            "below the minimum",
        ),
        (
            b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "temperature": 3}',
            "temperature",
            "above the maximum",
        ),
        (
            b'{"model": "fast", "messages": [{"role": "user", "content": "x"}], "stop": [1]}',
            "stop",
            "array of strings",
        ),
    ],
)
async def test_bad_requests_get_clear_400s(
    gateway: RunningGateway,
    fake_openai: FakeOpenAI,
    data: bytes,
    param: str | None,
    fragment: str,
) -> None:
    key = await gateway.key()
    status, body = await post(gateway, key, data)
    assert status == 400
    err = envelope(body)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert fragment in err["message"]
    assert fake_openai.requests == []  # nothing bad went upstream


async def test_bad_request_raises_sdk_bad_request_error(gateway: RunningGateway) -> None:
    key = await gateway.key()
    async with gateway.openai(key) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="fast", messages=HI, max_tokens=-1)
    assert info.value.status_code == 400


async def test_huge_body_is_413_and_server_survives(start_gateway: StartGateway) -> None:
    from aigw.config import Config

    cfg = Config()
    cfg.server.max_request_mb = 0.01
    gw = await start_gateway(providers={"mock": ("mock", "")}, config=cfg)
    key = await gw.key()
    big = b'{"model": "mock/echo", "messages": [{"role": "user", "content": "' + b"x" * 50_000
    status, body = await post(gw, key, big + b'"}]}')
    assert status == 413
    assert envelope(body)["code"] == "request_too_large"
    async with gw.openai(key) as client:  # still serving
        await client.chat.completions.create(model="mock/echo", messages=HI)


async def test_unknown_route_and_method_use_the_envelope(gateway: RunningGateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/v1/nothing-here") as r:
            assert r.status == 404
            envelope(await r.json())
        async with http.get(gateway.url + "/v1/chat/completions") as r:
            assert r.status == 405
            envelope(await r.json())


async def test_upstream_429_keeps_status_and_retry_after(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Fail(429, "Rate limit reached for requests", {"Retry-After": "17"}))
    key = await gateway.key()
    async with gateway.openai(key) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(model="fast", messages=HI)
    assert info.value.response.headers["retry-after"] == "17"
    assert "Rate limit reached" in info.value.message
    rows = await gateway.gw.store.reports.by_request_id(info.value.response.headers["x-request-id"])
    assert rows[0].status == 429 and "Rate limit" in (rows[0].error or "")


async def test_upstream_500_passes_through_as_500(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Fail(500, "The server had an error while processing your request."))
    key = await gateway.key()
    async with gateway.openai(key) as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="fast", messages=HI)
    assert info.value.status_code == 500


async def test_upstream_rejecting_our_key_is_502_and_never_leaks_it(
    start_gateway: StartGateway,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-proj-SUPERSECRETvalue1234567890"
    monkeypatch.setenv("AIGW_OPENAI_API_KEY", secret)
    gw = await start_gateway(providers={"openai": ("openai", fake_openai.base_url + "/v1")})
    # OpenAI echoes a masked key in its 401 message; the raw key must never come back.
    fake_openai.then(Fail(401, f"Incorrect API key provided: {secret}. Find your key at ..."))
    key = await gw.key()
    async with gw.openai(key) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="openai/gpt-4o", messages=HI)
    assert info.value.status_code == 502
    assert "rejected the gateway's credentials" in info.value.message
    assert secret not in info.value.response.text
    assert secret not in caplog.text


async def test_unreachable_provider_is_502(start_gateway: StartGateway) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = await start_gateway(providers={"down": ("openai", f"http://127.0.0.1:{port}/v1")})
    key = await gw.key()
    async with gw.openai(key) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="down/gpt-4o", messages=HI)
    assert info.value.status_code == 502
    assert "Cannot connect to provider 'down'" in info.value.message


async def test_hanging_provider_is_504_and_does_not_block_others(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1"), "mock": ("mock", "")},
        upstream=UpstreamConfig(first_byte_timeout=0.5, idle_timeout=0.5),
    )
    fake_openai.then(Hang())
    key = await gw.key()
    async with gw.openai(key) as client:
        hung = asyncio.create_task(
            client.chat.completions.create(model="openai/gpt-4o", messages=HI)
        )
        # While one call hangs upstream, others are served at once.
        fast = await client.chat.completions.create(model="mock/echo", messages=HI)
        assert fast.choices[0].message.content
        assert not hung.done()
        with pytest.raises(openai.APIStatusError) as info:
            await hung
    assert info.value.status_code == 504
    assert "did not answer within 0.5 s" in info.value.message


async def test_provider_dying_mid_stream_raises_in_sdk_and_is_recorded(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(DieMidStream(after=3))
    key = await gateway.key()
    async with gateway.openai(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="fast", messages=HI, stream=True
        )
        received = []
        with pytest.raises(openai.APIError) as info:
            async for chunk in raw.parse():
                received.append(chunk)
    assert len(received) == 3
    assert "mid-stream" in info.value.message or "before the answer" in info.value.message
    rows = await gateway.gw.store.reports.by_request_id(raw.headers["x-request-id"])
    assert rows[0].status == 502 and rows[0].usage_estimated


async def test_provider_going_silent_mid_stream_times_out(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gw = await start_gateway(
        providers={"openai": ("openai", fake_openai.base_url + "/v1")},
        upstream=UpstreamConfig(first_byte_timeout=5, idle_timeout=0.3),
    )
    fake_openai.then(Reply(chunk_delay=1.0))
    key = await gw.key()
    async with gw.openai(key) as client:
        # Silent before the first content: nothing was sent yet, so the client gets
        # a plain 504 (with a second target it would have failed over invisibly).
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="openai/gpt-4o", messages=HI, stream=True)
        assert info.value.status_code == 504
    assert "went silent" in info.value.message
    # Silent after the first content: the stream is under way and ends with an error.
    fake_openai.then(Reply(chunk_delay=1.0, delay_from=2))
    async with gw.openai(key) as client:
        stream = await client.chat.completions.create(
            model="openai/gpt-4o", messages=HI, stream=True
        )
        with pytest.raises(openai.APIError) as info2:
            async for _ in stream:
                pass
    assert "went silent" in info2.value.message


async def test_upstream_invalid_json_is_502(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    key = await gateway.key()
    fake_openai.then(Fail(200, body=b"<html>oops</html>"))
    async with gateway.openai(key) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="fast", messages=HI)
    assert info.value.status_code == 502
    assert "not a JSON object" in info.value.message


async def test_client_disconnecting_mid_stream_is_recorded_as_499(
    gateway: RunningGateway, fake_openai: FakeOpenAI
) -> None:
    fake_openai.then(Reply(text="a long answer " * 20, chunk_delay=0.05))
    key = await gateway.key()
    body = {"model": "fast", "stream": True, "messages": HI}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            gateway.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
        )
        rid = resp.headers["x-request-id"]
        await resp.content.readany()  # the first chunk, then hang up
        resp.close()
    for _ in range(100):  # the gateway notices at its next write
        rows = await gateway.gw.store.reports.by_request_id(rid)
        if rows:
            break
        await asyncio.sleep(0.05)
    assert rows and rows[0].status == 499
    assert rows[0].usage_estimated and rows[0].completion_tokens > 0
    # The server is fine afterwards.
    async with gateway.openai(key) as client:
        await client.chat.completions.create(model="fast", messages=HI)

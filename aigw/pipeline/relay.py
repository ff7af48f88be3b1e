"""Relaying a provider's stream to the client, event by event.

The relay reads the upstream's stream up to its first content (text, a tool call, a
finish) before it sends the client's headers: until then nothing is committed to
the client, so a failure raises :class:`UpstreamFailed` and another target can
still answer, invisibly. Every later wait is bounded by ``idle_timeout`` through one
:class:`Watchdog`. Once the headers are out nothing raises (cancellation aside):
every failure ends the stream with an error event in the client's format, and the
ledger row is committed before the stream's end goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp
from aiohttp import web

from aigw.config import UpstreamConfig
from aigw.drain import Drain
from aigw.errors import GatewayError, Wire
from aigw.formats import ClientStream
from aigw.pipeline.account import Accountant
from aigw.pipeline.context import CLIENT_GONE, Context, StreamTap, base_headers, cost_header
from aigw.providers.base import (
    HubStream,
    Secrets,
    StreamState,
    UpstreamFault,
    UpstreamResponse,
    redact_bytes,
)
from aigw.routing.retry import CUT, RETRY_STATUSES, STATUS, STREAM, TIMEOUT, UpstreamFailed
from aigw.scrub.restore import StreamRestorer
from aigw.sse import Event, SSEParser
from aigw.tokens import chars_to_tokens
from aigw.translate.common import TranslationError
from aigw.usage import Usage

log = logging.getLogger("aigw.forward")

# The most a stream's opening (events before any content: metadata, thinking) is held
# back from the client; past it the stream starts even without content.
HOLD_LIMIT = 64 * 1024


class Relay(Protocol):
    """Turns upstream events into client bytes; ``tail`` ends the stream."""

    state: StreamState

    def feed(self, event: Event) -> bytes: ...

    def tail(self) -> bytes: ...


class Watchdog:
    """Calls ``expire`` when a wait runs past its deadline.

    A stream waits on its upstream once per chunk. Re-arming a timer each time would
    cost two timer-heap operations per chunk; here each wait only stores a deadline,
    and the one timer re-arms itself when it fires early.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, expire: Callable[[], None]) -> None:
        self.loop = loop
        self.expire = expire
        self.deadline = math.inf
        self.expired = False
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds
        timer = self._timer
        if timer is None or timer.when() > self.deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self.loop.call_at(self.deadline, self._fire)

    def pause(self) -> None:
        """Not waiting (e.g. writing to the client): no deadline until the next arm."""
        self.deadline = math.inf

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self.deadline == math.inf:
            return  # paused; the next arm() sets a new timer
        if self.loop.time() >= self.deadline:
            self.expired = True
            self.expire()
        else:
            self._timer = self.loop.call_at(self.deadline, self._fire)


class Translating:
    """A provider stream translated event by event into the client's stream format."""

    def __init__(self, hub: HubStream, client: ClientStream) -> None:
        self.hub = hub
        self.client = client
        self.state = hub.state

    def feed(self, event: Event) -> bytes:
        out = b""
        for chunk in self.hub.feed(event):
            # The usage chunk goes out with the end of the stream, after the commit.
            if chunk.get("usage") and not chunk.get("choices"):
                continue
            out += self.client.feed(chunk)
        return out

    def tail(self) -> bytes:
        return self.client.finish(self.hub.final_usage_chunk())


class _Tapped:
    """A relay whose events a :class:`StreamTap` sees too (the response cache)."""

    __slots__ = ("relay", "state", "tap")

    def __init__(self, relay: Relay, tap: StreamTap) -> None:
        self.relay = relay
        self.tap = tap
        self.state = relay.state

    def feed(self, event: Event) -> bytes:
        self.tap.feed(event)
        return self.relay.feed(event)

    def tail(self) -> bytes:
        return self.relay.tail()


class Restoring:
    """A relay whose output gets the request's redacted values back (aigw.scrub.restore)."""

    def __init__(self, relay: Relay, restorer: StreamRestorer) -> None:
        self.relay = relay
        self.restorer = restorer
        self.state = relay.state

    def feed(self, event: Event) -> bytes:
        return self.restorer.feed(self.relay.feed(event))

    def tail(self) -> bytes:
        restorer = self.restorer
        return restorer.feed(self.relay.tail()) + restorer.flush()


class _Reader:
    """The upstream's SSE events, one chunk's worth per :meth:`read`, under the watchdog."""

    def __init__(
        self, resp: UpstreamResponse, config: UpstreamConfig, capture: list[bytes] | None = None
    ) -> None:
        self.config = config
        self.capture = capture  # the audit log's copy of the upstream bytes, when kept
        self.parser = SSEParser()
        self.chunks = resp.chunks().__aiter__()
        self.wait = config.first_byte_timeout
        self.ended = False
        self.watchdog = Watchdog(asyncio.get_running_loop(), resp.close)

    async def read(self) -> list[Event]:
        watchdog = self.watchdog
        watchdog.arm(self.wait)
        try:
            data: bytes | None = await anext(self.chunks)
        except StopAsyncIteration:
            data = None
        watchdog.pause()
        if watchdog.expired:
            raise TimeoutError
        self.wait = self.config.idle_timeout
        if data is None:
            self.ended = True
            return self.parser.flush()
        if self.capture is not None:
            self.capture.append(data)
        return self.parser.feed(data)


class Relayer:
    """Relays upstream streams to clients and accounts for them."""

    def __init__(self, config: UpstreamConfig, accountant: Accountant, drain: Drain) -> None:
        self.config = config
        self.accountant = accountant
        self.drain = drain

    def _failure(self, ctx: Context, reader: _Reader, exc: BaseException) -> GatewayError:
        """The error that ends the stream, for the exception being handled."""
        secrets = ctx.target.provider.secrets if ctx.target else None
        if isinstance(exc, asyncio.CancelledError):
            if not self.drain.cutting:
                raise exc
            return self.drain.cut(ctx)  # shutdown: recorded with the text so far
        if isinstance(exc, (aiohttp.ClientError, OSError)):  # TimeoutError is an OSError
            if reader.watchdog.expired or isinstance(exc, TimeoutError):
                name = ctx.target.provider.name if ctx.target else "?"
                return GatewayError(
                    504,
                    f"Provider '{name}' went silent for {reader.wait:g} s mid-stream.",
                    type="timeout",
                    code="upstream_timeout",
                )
            return GatewayError(
                502,
                "The provider closed the connection mid-stream.",
                type="upstream_error",
                code="upstream_connection_error",
            )
        if isinstance(exc, TranslationError):
            return UpstreamFault(
                502,
                f"The provider's stream could not be translated: {exc.message}",
                code="upstream_bad_response",
            ).to_error(secrets)
        if isinstance(exc, Exception):  # our own bug: end the stream properly
            return stream_failed(ctx)
        raise exc

    async def _hold(
        self, ctx: Context, reader: _Reader, relay: Relay, secrets: Secrets
    ) -> tuple[bytes, list[Event]]:
        """Read and translate the stream up to its first content (event by event: one
        read may bring content and an error after it). Return the bytes so far, not
        yet sent, and the events read but not yet fed. Raise :class:`UpstreamFailed`
        if the stream fails before its first content."""
        state = relay.state
        held: list[bytes] = []
        size = 0
        try:
            while True:
                events = await reader.read()
                for i, event in enumerate(events):
                    payload = redact_bytes(relay.feed(event), secrets)
                    if state.error is not None:
                        fault = state.error
                        retry = fault.status >= 500 or fault.status in RETRY_STATUSES
                        raise UpstreamFailed(
                            fault.to_error(secrets),
                            STREAM if retry else STATUS,
                            fault.status,
                            None,
                            state.usage,
                        )
                    held.append(payload)
                    size += len(payload)
                    if state.chars or state.finished or state.done or size > HOLD_LIMIT:
                        ctx.first_byte = time.perf_counter()
                        return b"".join(held), events[i + 1 :]
                if reader.ended:
                    raise UpstreamFailed(
                        GatewayError(
                            502,
                            "The provider ended the stream before its first content.",
                            type="upstream_error",
                            code="upstream_incomplete",
                        ),
                        CUT,
                        usage=state.usage,
                    )
        except UpstreamFailed:
            reader.watchdog.cancel()
            raise
        except (aiohttp.ClientError, OSError, TranslationError) as exc:
            reader.watchdog.cancel()
            raise UpstreamFailed(
                self._failure(ctx, reader, exc),
                TIMEOUT if reader.watchdog.expired or isinstance(exc, TimeoutError) else CUT,
                usage=state.usage,
            ) from None
        except BaseException:
            reader.watchdog.cancel()
            raise

    async def relay(
        self,
        ctx: Context,
        request: web.Request,
        resp: UpstreamResponse,
        relay: Relay,
        stream_error: Callable[[GatewayError], bytes],
        prompt_estimate: int,
    ) -> web.StreamResponse:
        """Relay an upstream SSE stream event by event; commit the ledger before its end.

        Raises :class:`UpstreamFailed` if the stream fails before its first content:
        nothing has reached the client then, so another target may still answer.
        """
        secrets = ctx.target.provider.secrets if ctx.target else None
        tap = ctx.capture.stream(ctx) if ctx.capture is not None else None
        if tap is not None:
            relay = _Tapped(relay, tap)
        if ctx.restorer is not None:
            relay = Restoring(relay, ctx.restorer.stream())
        if ctx.body_retention is not None:
            ctx.answer_chunks = []  # the stream as the provider sent it, for the audit log
        reader = _Reader(resp, self.config, ctx.answer_chunks)
        state = relay.state
        failure: GatewayError | None = None
        client_gone = False
        held, events = await self._hold(ctx, reader, relay, secrets)
        out = web.StreamResponse(
            status=200,
            headers={
                **base_headers(ctx),
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
            },
        )
        try:
            await out.prepare(request)
        except BaseException:
            reader.watchdog.cancel()
            raise
        try:
            while not client_gone and state.error is None:
                payload = redact_bytes(b"".join([relay.feed(ev) for ev in events]), secrets)
                if state.error is not None:
                    if held:  # the content before the error still goes out
                        with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionError):
                            await out.write(held)
                    break
                if held:  # one write for the opening and what came with it
                    payload, held = held + payload, b""
                if payload:
                    try:
                        await out.write(payload)
                    except (ConnectionError, aiohttp.ClientConnectionError):
                        client_gone = True
                if reader.ended:
                    break
                events = await reader.read()
            if state.error is not None:
                failure = state.error.to_error(secrets)
        except BaseException as exc:
            failure = self._failure(ctx, reader, exc)
        finally:
            reader.watchdog.cancel()
        if failure is None and not client_gone and not (state.done or state.finished):
            failure = GatewayError(
                502,
                "The provider ended the stream before the answer was complete.",
                type="upstream_error",
                code="upstream_incomplete",
            )

        usage = state.usage
        complete = failure is None and not client_gone
        if usage is None or not complete:
            # No final count: estimate the output from the text streamed so far (the
            # provider bills what it generated even if the stream broke).
            usage = usage or Usage(prompt_estimate)
            usage.completion_tokens = max(usage.completion_tokens, chars_to_tokens(state.chars))
            ctx.usage_estimated = True
        ctx.usage = usage
        tail = b""
        if failure is None and not client_gone:
            try:
                tail = redact_bytes(relay.tail(), secrets)
            except Exception:
                failure = stream_failed(ctx)
        if client_gone:
            ctx.status, ctx.error = CLIENT_GONE, "client closed the connection mid-stream"
        elif failure is not None:
            ctx.status, ctx.error = failure.status, failure.message
        try:
            await self.accountant.record(ctx)
        except GatewayError as err:
            failure = failure or err
        except Exception:
            failure = failure or stream_failed(ctx)
        if tap is not None and failure is None and not client_gone:
            tap.done(ctx)  # complete: the cache may keep it
        if client_gone:
            return out
        try:
            # The cost is known only now, after the headers went out: an SSE comment
            # carries it. google-genai chokes on comments, so Gemini streams go without.
            cost = (
                b""
                if ctx.wire is Wire.GOOGLE
                else (b": x-aigw-cost-usd " + cost_header(ctx).encode() + b"\n\n")
            )
            await out.write(cost + (stream_error(failure) if failure else tail))
            await out.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionError):
            pass
        return out


def stream_failed(ctx: Context) -> GatewayError:
    """Log the exception being handled (a gateway bug) and describe it for the client.

    Once a stream's headers are out, no second HTTP response can follow; this error
    goes out as the stream's own error event instead.
    """
    log.exception("request %s: the stream failed after its headers were sent", ctx.request_id)
    return GatewayError(
        500,
        f"Internal gateway error mid-stream (request id {ctx.request_id}).",
        type="server_error",
        code="internal_error",
    )

"""EVALSHA on a raw connection: the Redis counters' per-request scripts, cheaply.

Every limited call runs two scripts in Redis (admission, then settling; a third per
upstream call under a provider quota). redis-py's asyncio client spends more CPU on
each call than the gateway spends on the rest of the request's limits (a connection
checked out of a pool and back, a retry wrapper, an encoder object, a stream reader per
reply). :class:`RedisWire` does only what those scripts need: it packs ``EVALSHA sha
numkeys keys... args...`` itself and writes it on one connection of its own, where
replies come back in the order the commands went out (RESP is pipelined), so
concurrent calls share the connection: the commands of one event-loop turn go out in
one write, and a protocol callback parses the replies and wakes each caller.
Everything else (pub/sub, probes, seeding) stays on redis-py.

It behaves like redis-py with ``decode_responses=True`` for these calls: bulk strings
come back as ``str``; errors raise redis-py's exceptions (``ResponseError`` for an
error reply, ``ConnectionError`` when the connection cannot be made or drops,
``TimeoutError`` when Redis does not answer in time), so callers keep catching what
they caught. The connection speaks RESP2 (no ``HELLO``), whose replies to a script are
what the limiter reads; RESP3 types are parsed too. ``NOSCRIPT`` (Redis restarted, or
``SCRIPT FLUSH``) is answered by ``EVAL`` with the source, which also caches the
script again. A dropped connection fails the calls in flight and the next call
connects again. The URL (host, port, unix socket, user, database) is read by
redis-py's own parser and the password comes from the caller, so both clients log in
alike; ``rediss://`` is left to redis-py (see :func:`supports`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

from redis.asyncio.connection import parse_url
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    NoScriptError,
    RedisError,
    ResponseError,
    TimeoutError,
)

_CRLF = b"\r\n"


def supports(url: str) -> bool:
    """Whether :class:`RedisWire` can serve ``url`` (redis:// and unix://, not TLS)."""
    return url.startswith(("redis://", "unix://"))


def _arg(value: Any) -> bytes:
    """One argument as redis-py encodes it."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):  # redis-py refuses bools too
        raise TypeError("a bool is not a Redis argument; pass 0 or 1")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    raise TypeError(f"not a Redis argument: {type(value).__name__}")


def pack(*parts: bytes) -> bytes:
    """A command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out.append(b"$%d\r\n" % len(p))
        out.append(p)
        out.append(_CRLF)
    return b"".join(out)


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def _error(message: str) -> RedisError:
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return AuthenticationError(message)
    return ResponseError(message)


def parse(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply at ``buf[pos:]``: (value, the position after it); raises
    :class:`_Incomplete` when the buffer ends first. An error reply is returned as a
    exception instance (raised by the caller when it is the whole reply)."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    nxt = end + 2
    if kind == 36 or kind == 61 or kind == 33:  # $ bulk, = verbatim, ! bulk error
        n = int(line)
        if n < 0:
            return None, nxt
        if len(buf) < nxt + n + 2:
            raise _Incomplete
        data = bytes(buf[nxt : nxt + n]).decode()
        if kind == 61:
            data = data[4:]  # "txt:" / "mkd:"
        elif kind == 33:
            return _error(data), nxt + n + 2
        return data, nxt + n + 2
    if kind == 58 or kind == 40:  # : integer, ( big number
        return int(line), nxt
    if kind == 42 or kind == 126 or kind == 62:  # * array, ~ set, > push
        n = int(line)
        if n < 0:
            return None, nxt
        items = []
        for _ in range(n):
            item, nxt = parse(buf, nxt)
            items.append(item)
        return items, nxt
    if kind == 43:  # + simple string
        return line.decode(), nxt
    if kind == 45:  # - error
        return _error(line.decode()), nxt
    if kind == 95:  # _ null
        return None, nxt
    if kind == 44:  # , double
        return float(line), nxt
    if kind == 35:  # # boolean
        return line == b"t", nxt
    if kind == 37:  # % map
        out = {}
        for _ in range(int(line)):
            k, nxt = parse(buf, nxt)
            v, nxt = parse(buf, nxt)
            out[k] = v
        return out, nxt
    raise ConnectionError(f"Redis sent an unknown reply type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    """One connection: commands out in order, each reply to the oldest waiting call."""

    def __init__(self, wire: RedisWire) -> None:
        self.wire = wire
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.out: list[bytes] = []
        self.buf = bytearray()
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, command: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        if self.closed:
            raise ConnectionError("the connection to Redis was closed")
        fut: asyncio.Future[Any] = loop.create_future()
        self.waiting.append((fut, time.monotonic()))
        if not self.out:
            # Commands queued in this turn of the event loop go out in one write.
            loop.call_soon(self.flush)
        self.out.append(command)
        if self.timer is None:
            self.timer = loop.call_later(self.wire.timeout, self.check)
        return fut

    def flush(self) -> None:
        if self.out and not self.closed and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def data_received(self, data: bytes) -> None:
        buf: bytes | bytearray
        if self.buf:
            self.buf += data
            buf = self.buf
        else:
            buf = data  # the usual case: whole replies, parsed without a copy
        pos = 0
        try:
            while pos < len(buf) and self.waiting:
                try:
                    value, pos = parse(buf, pos)
                except _Incomplete:
                    break
                fut, _ = self.waiting.popleft()
                if fut.done():  # its caller was cancelled: the reply is dropped
                    continue
                if isinstance(value, RedisError):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        except Exception as exc:  # a reply we cannot read: this connection is done
            self.abort(ConnectionError(f"unreadable reply from Redis: {exc}"))
            return
        if buf is self.buf:
            del self.buf[:pos]
        elif pos < len(buf):
            self.buf += buf[pos:]
        if not self.waiting and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def check(self) -> None:
        """The timeout: the oldest call waiting longer than it ends the connection."""
        self.timer = None
        if not self.waiting:
            return
        waited = time.monotonic() - self.waiting[0][1]
        if waited >= self.wire.timeout:
            self.abort(TimeoutError(f"Redis did not answer within {self.wire.timeout:g} s"))
            return
        self.timer = asyncio.get_running_loop().call_later(self.wire.timeout - waited, self.check)

    def abort(self, exc: Exception) -> None:
        """Fail every call in flight with ``exc`` and close the connection."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.closed = True
        self.out.clear()
        while self.waiting:
            fut, _ = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()
        self.wire._dropped(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.abort(ConnectionError(f"connection to Redis lost ({exc or 'closed'})"))


class Script:
    """A Lua script run with EVALSHA (EVAL when Redis does not have it)."""

    __slots__ = ("head", "sha", "source", "wire")

    def __init__(self, wire: RedisWire, source: str) -> None:
        self.wire = wire
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest().encode()
        self.head = pack(b"EVALSHA", self.sha)[4:]  # without the array's length line

    async def __call__(self, keys: Sequence[str] = (), args: Sequence[Any] = ()) -> Any:
        n = 2 + 1 + len(keys) + len(args)
        parts = [b"*%d\r\n" % n, self.head]
        for p in (str(len(keys)).encode(), *(k.encode() for k in keys), *map(_arg, args)):
            parts += (b"$%d\r\n" % len(p), p, _CRLF)
        try:
            return await self.wire.call(b"".join(parts))
        except NoScriptError:
            body = [str(len(keys)).encode(), *(k.encode() for k in keys), *map(_arg, args)]
            return await self.wire.call(pack(b"EVAL", self.source, *body))


class RedisWire:
    """Raw EVALSHA calls to the Redis at ``url`` over one pipelined connection."""

    def __init__(
        self,
        url: str,
        password: str | None = None,
        *,
        connect_timeout: float = 2.0,
        timeout: float = 5.0,
    ) -> None:
        if not supports(url):
            raise ValueError(f"not a redis:// or unix:// URL: {url}")
        opts = parse_url(url)
        self.host: str = opts.get("host") or "localhost"
        self.port = int(opts.get("port") or 6379)
        self.path: str | None = opts.get("path")
        self.db = int(opts.get("db") or 0)
        self.username: str | None = opts.get("username")
        self.password = password if password is not None else opts.get("password")
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self.connects = 0  # connections made (tests watch reconnects)

    def script(self, source: str) -> Script:
        return Script(self, source)

    async def call(self, command: bytes) -> Any:
        """Send one packed command and return its reply (an error reply raises)."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect()
        return await conn.send(command, asyncio.get_running_loop())

    async def _connect(self) -> _Protocol:
        if self._connecting is not None:  # concurrent callers share one attempt
            return await asyncio.shield(self._connecting)
        fut: asyncio.Future[_Protocol] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self._connecting = fut
        err: RedisError
        try:
            conn = await self._open()
        except RedisError as exc:
            err = exc
        except OSError as exc:  # refused, unreachable, or the connect timeout
            err = ConnectionError(f"cannot connect to Redis: {exc or type(exc).__name__}")
        except BaseException:
            self._connecting = None
            fut.set_exception(ConnectionError("the connection attempt was interrupted"))
            raise
        else:
            self._connecting = None
            self._conn = conn
            fut.set_result(conn)
            return conn
        self._connecting = None
        fut.set_exception(err)
        raise err

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            if self.path is not None:
                _, proto = await loop.create_unix_connection(lambda: _Protocol(self), self.path)
            else:
                _, proto = await loop.create_connection(
                    lambda: _Protocol(self), self.host, self.port
                )
            hello: list[bytes] = []
            if self.password:
                auth = [self.username.encode()] if self.username else []
                hello.append(pack(b"AUTH", *auth, self.password.encode()))
            if self.db:
                hello.append(pack(b"SELECT", str(self.db).encode()))
            try:
                for fut in [proto.send(c, loop) for c in hello]:
                    await fut
            except BaseException as exc:
                proto.abort(ConnectionError("closed after a failed login"))
                if isinstance(exc, ResponseError):  # e.g. no such database
                    raise ConnectionError(f"Redis refused the connection: {exc}") from None
                raise
        self.connects += 1
        return proto

    def _dropped(self, conn: _Protocol) -> None:
        if self._conn is conn:
            self._conn = None

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.abort(ConnectionError("the client was closed"))


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a shared connect attempt's failure as seen (no caller may be waiting)."""
    if not fut.cancelled():
        fut.exception()

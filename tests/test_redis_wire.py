"""aigw's own Redis connection for the limit scripts (:mod:`aigw.limits.wire`).

Against real Redis: each kind of reply a script can give, in the shapes redis-py gives
them (``decode_responses=True``), concurrent calls pipelined on one connection, NOSCRIPT
after ``SCRIPT FLUSH``, a killed connection, a restarted server, AUTH and the database
from the URL. Against a scripted fake server: replies split anywhere, a caller that
goes away mid-call, and a server that never answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError, TimeoutError

from aigw.limits.wire import RedisWire, parse, supports
from tests.conftest import until
from tests.redis_kit import (
    REDIS_SERVER,
    REDIS_URL,
    PrivateRedis,
    prefixed,
    unavailable,
)

BOUND = 30.0  # only a bug makes a wait this long

KINDS = """
local what = ARGV[1]
if what == 'int' then return 42 end
if what == 'str' then return 'héllo' end
if what == 'nil' then return false end
if what == 'true' then return true end
if what == 'status' then return redis.status_reply('FINE') end
if what == 'error' then return redis.error_reply('MYERR went wrong') end
if what == 'nested' then return {1, 'two', {3, {'four'}}, false, ''} end
if what == 'float' then return 1.75 end
if what == 'keys' then return {KEYS[1], ARGV[2], #ARGV} end
if what == 'set' then redis.call('SET', KEYS[1], ARGV[2]) return redis.call('GET', KEYS[1]) end
return redis.call('NOSUCHCOMMAND')
"""


@pytest.fixture
async def shared() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    async with prefixed() as got:
        yield got


@pytest.fixture
async def private() -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_every_kind_of_reply_reads_as_redis_py_reads_it(
    shared: tuple[aioredis.Redis, str],
) -> None:
    _, prefix = shared
    decoded = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    wire = RedisWire(REDIS_URL)
    ours, theirs = wire.script(KINDS), decoded.register_script(KINDS)
    try:
        for what in ("int", "str", "nil", "true", "status", "nested", "float", "keys", "set"):
            keys, args = [f"{prefix}k"], [what, 2.5]
            assert await ours(keys=keys, args=args) == await theirs(keys=keys, args=args), what
        assert await ours(keys=[f"{prefix}k"], args=["int"]) == 42
        assert await ours(keys=[f"{prefix}k"], args=["str"]) == "héllo"
        assert await ours(keys=[f"{prefix}k"], args=["nested"]) == [
            1,
            "two",
            [3, ["four"]],
            None,
            "",
        ]
        assert await ours(keys=[f"{prefix}k"], args=["keys", 7]) == [f"{prefix}k", "7", 2]
        for what, message in (("error", "MYERR went wrong"), ("other", "Unknown Redis command")):
            with pytest.raises(ResponseError, match=message):
                await ours(keys=[f"{prefix}k"], args=[what])
        # An error reply leaves the connection in step: the next call reads its own reply.
        assert await ours(keys=[f"{prefix}k"], args=["int"]) == 42
        assert wire.connects == 1
    finally:
        await wire.aclose()
        await decoded.aclose()


async def test_concurrent_calls_share_one_connection_and_each_gets_its_reply(
    shared: tuple[aioredis.Redis, str],
) -> None:
    _, prefix = shared
    wire = RedisWire(REDIS_URL)
    echo = wire.script("return {ARGV[1], redis.call('INCR', KEYS[1])}")
    try:
        replies = await asyncio.gather(*(echo(keys=[f"{prefix}n"], args=[i]) for i in range(500)))
        assert [r[0] for r in replies] == [str(i) for i in range(500)]
        assert sorted(r[1] for r in replies) == list(range(1, 501))
        assert wire.connects == 1
    finally:
        await wire.aclose()


async def test_noscript_after_script_flush_runs_the_source(private: PrivateRedis) -> None:
    wire = RedisWire(private.url)
    admin = aioredis.Redis.from_url(private.url)
    script = wire.script("return 'ran ' .. ARGV[1]")
    try:
        assert await script(args=["once"]) == "ran once"  # EVALSHA: NOSCRIPT, then EVAL
        assert await admin.script_exists(script.sha.decode()) == [True]
        await admin.script_flush()
        assert await script(args=["twice"]) == "ran twice"
        assert await script(args=["thrice"]) == "ran thrice"
        assert wire.connects == 1
    finally:
        await wire.aclose()
        await admin.aclose()


async def test_a_killed_connection_is_noticed_and_the_next_call_reconnects(
    private: PrivateRedis,
) -> None:
    wire = RedisWire(private.url)
    admin = aioredis.Redis.from_url(private.url)
    script = wire.script("return 1")
    try:
        assert await script() == 1
        await admin.client_setname("admin")
        for c in await admin.client_list():
            if c["name"] != "admin":
                await admin.client_kill_filter(_id=c["id"])
        await until(
            lambda: wire._conn is None, BOUND, "the kill noticed"
        )  # its end of the socket closed
        assert await script() == 1
        assert wire.connects == 2
    finally:
        await wire.aclose()
        await admin.aclose()


async def test_a_restarted_redis_is_unavailable_then_used_again(private: PrivateRedis) -> None:
    wire = RedisWire(private.url, connect_timeout=1.0)
    script = wire.script("return redis.call('INCR', KEYS[1])")
    try:
        assert await script(keys=["n"]) == 1
        await private.stop()
        for _ in range(3):  # no crash, no hang: each call fails at once
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(script(keys=["n"]), BOUND)
        await private.start()
        assert await script(keys=["n"]) == 1  # an empty server: NOSCRIPT, then EVAL
        assert wire.connects == 2
    finally:
        await wire.aclose()


async def test_auth_and_the_database_come_from_the_url_and_the_password() -> None:
    server = PrivateRedis(password="s3cret")
    await server.start()
    url = f"redis://127.0.0.1:{server.port}/3"
    admin = aioredis.Redis.from_url(url, password="s3cret", decode_responses=True)
    try:
        wire = RedisWire(url, "s3cret")
        try:
            put = wire.script("redis.call('SET', KEYS[1], ARGV[1]) return 'OK'")
            assert await put(keys=["where"], args=["db3"]) == "OK"
            assert await admin.get("where") == "db3"  # in database 3, not 0
        finally:
            await wire.aclose()
        wrong = RedisWire(url, "wrong")
        with pytest.raises(AuthenticationError):
            await wrong.script("return 1")()
        await wrong.aclose()
        anonymous = RedisWire(url)
        with pytest.raises(AuthenticationError, match="NOAUTH"):
            await anonymous.script("return 1")()
        await anonymous.aclose()
    finally:
        await admin.aclose()
        await server.stop()


def test_only_plain_and_unix_urls_are_served() -> None:
    assert supports("redis://h:6379/0") and supports("unix:///run/redis.sock")
    assert not supports("rediss://h:6380/0")


# -- a scripted fake server ----------------------------------------------------------


class FakeRedis:
    """Accepts connections, collects what arrives, and sends what the test says."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.received = bytearray()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while data := await reader.read(65536):
            self.received += data

    async def commands(self, n: int) -> None:
        """Wait until ``n`` commands have arrived."""

        await until(lambda: self.received.count(b"EVALSHA") >= n, BOUND, f"{n} commands")

    async def send(self, data: bytes, *, one_byte_at_a_time: bool = False) -> None:
        w = self.writers[-1]
        for chunk in [data[i : i + 1] for i in range(len(data))] if one_byte_at_a_time else [data]:
            w.write(chunk)
            await w.drain()

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def fake() -> AsyncIterator[FakeRedis]:
    f = FakeRedis()
    try:
        yield f
    finally:
        await f.close()


async def test_replies_split_anywhere_are_read_whole(fake: FakeRedis) -> None:
    wire = RedisWire(await fake.start())
    s = wire.script("return 1")
    try:
        calls = [asyncio.ensure_future(s(keys=["a"], args=[i])) for i in range(3)]
        await fake.commands(3)
        await fake.send(
            b"*3\r\n$2\r\nok\r\n:17\r\n*2\r\n$-1\r\n+x\r\n"  # nested, a nil
            b"$5\r\nh\r\nlo\r\n"  # a bulk string holding CRLF
            b"-ERR no\r\n",
            one_byte_at_a_time=True,
        )
        assert await calls[0] == ["ok", 17, [None, "x"]]
        assert await calls[1] == "h\r\nlo"
        with pytest.raises(ResponseError, match="ERR no"):
            await calls[2]
    finally:
        await wire.aclose()


async def test_a_caller_that_goes_away_does_not_shift_the_replies(fake: FakeRedis) -> None:
    wire = RedisWire(await fake.start())
    s = wire.script("return 1")
    try:
        first = asyncio.ensure_future(s(args=["first"]))
        second = asyncio.ensure_future(s(args=["second"]))
        await fake.commands(2)
        first.cancel()
        await fake.send(b"$5\r\nfirst\r\n$6\r\nsecond\r\n")
        assert await second == "second"
        with pytest.raises(asyncio.CancelledError):
            await first
    finally:
        await wire.aclose()


async def test_a_server_that_never_answers_times_out_and_is_left(fake: FakeRedis) -> None:
    wire = RedisWire(await fake.start(), timeout=0.2)
    s = wire.script("return 1")
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(s(), BOUND)
        # The timed-out connection is closed; the next call opens a new one.
        late = asyncio.ensure_future(s())
        await until(lambda: len(fake.writers) == 2, BOUND, "a new connection")
        await fake.commands(2)
        await fake.send(b":5\r\n")
        assert await late == 5
        assert wire.connects == 2
    finally:
        await wire.aclose()


async def test_a_connection_dropped_mid_call_fails_it_and_the_next_call_reconnects(
    fake: FakeRedis,
) -> None:
    wire = RedisWire(await fake.start())
    s = wire.script("return 1")
    try:
        pending = asyncio.ensure_future(s())
        await fake.commands(1)
        fake.writers[-1].close()  # the server goes away with the call unanswered
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(pending, BOUND)
        late = asyncio.ensure_future(s())
        await until(lambda: len(fake.writers) == 2, BOUND, "a new connection")
        await fake.commands(2)
        await fake.send(b"+back\r\n")
        assert await late == "back"
        assert wire.connects == 2
    finally:
        await wire.aclose()


def test_parse_reads_resp3_types() -> None:
    assert parse(b"_\r\n", 0) == (None, 3)
    assert parse(b",1.5\r\n", 0) == (1.5, 6)
    assert parse(b"#t\r\n", 0) == (True, 4)
    assert parse(b"%1\r\n+a\r\n:1\r\n", 0) == ({"a": 1}, 12)
    assert parse(b"=7\r\ntxt:abc\r\n", 0) == ("abc", 13)
    assert parse(b"~1\r\n:2\r\n", 0) == ([2], 8)


def redis_server() -> str:
    if not Path(REDIS_SERVER).exists():
        unavailable(f"no redis-server at {REDIS_SERVER}")
    return REDIS_SERVER


async def test_a_unix_socket_url_with_its_database(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    proc = await asyncio.create_subprocess_exec(
        *[redis_server(), "--port", "0", "--unixsocket", str(sock), "--save", ""],
        *["--appendonly", "no"],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await until(sock.exists, BOUND, "redis-server listening on its socket")
        url = f"unix://{sock}?db=2"
        wire = RedisWire(url)
        admin = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            put = wire.script("redis.call('SET', KEYS[1], ARGV[1]) return 'OK'")
            assert await put(keys=["where"], args=["db2"]) == "OK"
            assert await admin.get("where") == "db2"
        finally:
            await wire.aclose()
            await admin.aclose()
    finally:
        proc.kill()
        await proc.wait()

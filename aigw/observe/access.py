"""Access logs: one line per request, written where every request ends
(:meth:`aigw.pipeline.Pipeline.run`).

The line goes to the ``aigw.access`` logger at INFO. Nothing is built when that logger
is disabled (``aigw serve --log-level warning``), and the line itself is formatted
only by the handler that writes it (:class:`AccessLine` is lazy), so a filtered-out
record costs one dict. A line never holds a key (only the key's id) nor a body.
Strings a client chose (the model name; app and key names come from the operator but
are escaped all the same) have their control characters escaped, so no request can
forge a line of its own.

Two formats (``aigw serve --log-format``, or ``[server] log_format``):

* ``text``: ``key=value`` pairs (logfmt), values quoted when they contain a space,
  a quote or ``=``;
* ``json``: one JSON object per line, for log shippers. In this format every log
  record of the server is a JSON object (:class:`JsonFormatter`), not only the
  access lines.

``aigw serve`` (:func:`configure`) writes access lines in batches (:class:`Sink`): at
most 64 lines or 50 ms late, and always before any other log record, so the order
holds; one write and one flush per batch instead of a log record, a handler lock and
a flush per request. Elsewhere (tests, embedding) they are ordinary log records.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import orjson

from aigw.config.server import LOG_FORMATS
from aigw.pricing import format_usd

if TYPE_CHECKING:
    from aigw.pipeline.context import Context

log = logging.getLogger("aigw.access")

__all__ = [
    "LOG_FORMATS",
    "NAMES",
    "AccessLine",
    "JsonFormatter",
    "Sink",
    "TextFormatter",
    "configure",
    "neutral",
    "record",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NEEDS_QUOTES = re.compile(r'[\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029]')


def _escape_char(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def neutral(value: str) -> str:
    """``value`` with every control character escaped (``\\n`` -> ``\\x0a``): one line."""
    return _CONTROL.sub(_escape_char, value)


def _quoted(s: str) -> str:
    return '"' + neutral(s.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _text(x: str | None) -> str:
    """A string field's logfmt value: ``-`` for none, quoted when it must be."""
    if x is None:
        return "-"
    if not x or _NEEDS_QUOTES.search(x):
        return _quoted(x)
    return x


# The same few names come back on every line (endpoints, teams, key ids, apps, models,
# providers), so their logfmt form is remembered rather than searched for again. Some
# are a client's choice (the model name): only short ones are kept, and the memo starts
# over when full, so what clients send cannot grow it past REMEMBER * REMEMBER_CHARS
# characters.
REMEMBER = 512
REMEMBER_CHARS = 64
_shown: dict[str, str] = {}


def _name(x: str | None) -> str:
    """:func:`_text` for a value that repeats from line to line, remembered."""
    if x is None:
        return "-"
    shown = _shown.get(x)
    if shown is None:
        shown = _text(x)
        if len(x) <= REMEMBER_CHARS:
            if len(_shown) >= REMEMBER:
                _shown.clear()
            _shown[x] = shown
    return shown


NAMES = (
    "time",
    "request_id",
    "endpoint",
    "team",
    "key_id",
    "app",
    "model",
    "provider",
    "upstream_model",
    "status",
    "stream",
    "latency_ms",
    "ttft_ms",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "attempts",
    "cache",
)


class AccessLine:
    """One request's values, in :data:`NAMES` order, as the request left them: the
    time and the cost are formatted, and the line rendered (logfmt, by ``str()``),
    only by the handler that writes it."""

    __slots__ = ("values",)

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    @property
    def fields(self) -> dict[str, Any]:
        return dict(zip(NAMES, self._shown(), strict=True))

    def __str__(self) -> str:
        # One f-string over the fields in NAMES order: this runs for every request, so
        # no loop and no call per field but for the strings that need checking.
        v = self.values
        ttft, cost = v[12], v[15]
        return (
            f"time={_iso(v[0])} request_id={_text(v[1])} endpoint={_name(v[2])} "
            f"team={_name(v[3])} key_id={_name(v[4])} app={_name(v[5])} "
            f"model={_name(v[6])} provider={_name(v[7])} upstream_model={_name(v[8])} "
            f"status={'-' if v[9] is None else v[9]} stream={'true' if v[10] else 'false'} "
            f"latency_ms={v[11]} ttft_ms={'-' if ttft is None else ttft} "
            f"tokens_in={v[13]} tokens_out={v[14]} "
            f"cost_usd={'-' if cost is None else format_usd(cost, 9)} "
            f"attempts={v[16]} cache={_name(v[17])}"
        )

    def _shown(self) -> tuple[Any, ...]:
        values = self.values
        cost = values[15]
        return (
            _iso(values[0]),
            *values[1:15],
            None if cost is None else format_usd(cost, 9),
            *values[16:],
        )


_second: list[Any] = [None, ""]  # the last second formatted, and its text
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))  # a line's tail, looked up


def _iso(ts: float) -> str:
    """``ts`` as ISO 8601 UTC with milliseconds (the second's text reused: lines come
    many to a second)."""
    whole = int(ts)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}{_MILLIS[int(ts % 1 * 1000)]}"


def record(ctx: Context) -> None:
    """Log ``ctx``'s access line, if anyone listens (who, what, where, how it went,
    what it cost)."""
    if not log.isEnabledFor(logging.INFO):
        return
    key, target, usage, first = ctx.key, ctx.target, ctx.usage, ctx.first_byte
    line = AccessLine(
        (
            ctx.ts,
            ctx.request_id,
            ctx.endpoint,
            key.team if key else None,
            key.id if key else None,
            key.app if key else None,
            ctx.model,
            target.provider.name if target else None,
            target.upstream_model if target else None,
            ctx.status,
            ctx.stream,
            ctx.latency_ms(),
            int((first - ctx.started) * 1000) if first is not None else None,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            ctx.cost_nusd,  # nano-USD; formatted by `fields`
            ctx.tries,
            ctx.cache,
        )
    )
    if _sink is not None:
        _sink.access(line)
        return
    # makeRecord rather than log.info: no walk up the stack for a caller's file and
    # line (what findCaller costs, on every request, for a line that never shows it).
    log.handle(log.makeRecord(log.name, logging.INFO, "", 0, "%s", (line,), None))


def _access_line(record: logging.LogRecord) -> AccessLine | None:
    args = record.args
    if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], AccessLine):
        return args[0]
    return None


class TextFormatter(logging.Formatter):
    """The usual ``time level logger: message``; an access line as its bare logfmt
    (it carries its own time)."""

    def format(self, record: logging.LogRecord) -> str:
        line = _access_line(record)
        return str(line) if line is not None else super().format(record)


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object; an access line's fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        line = _access_line(record)
        if line is not None:
            return json_line(line)
        out = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        # orjson escapes every control character: one record, one line.
        return orjson.dumps(out, default=str).decode()


def json_line(line: AccessLine) -> str:
    """An access line as one JSON object (control characters escaped by orjson)."""
    return orjson.dumps({"logger": log.name, **line.fields}, default=str).decode()


class Sink(logging.StreamHandler):  # type: ignore[type-arg]
    """The server's log handler: every record as it comes, access lines in batches
    (see the module docstring). A batch is written when 64 lines wait, 50 ms after its
    first line, before any other record, and at exit (``logging.shutdown`` flushes)."""

    BATCH = 64
    DELAY = 0.05

    def __init__(self, json: bool) -> None:
        super().__init__()
        self.render = json_line if json else str
        self.pending: list[AccessLine] = []
        self.timer: asyncio.TimerHandle | None = None

    def access(self, line: AccessLine) -> None:
        pending = self.pending
        pending.append(line)
        if len(pending) >= self.BATCH:
            self.write_access()
        elif self.timer is None:
            try:
                self.timer = asyncio.get_running_loop().call_later(self.DELAY, self.write_access)
            except RuntimeError:  # no loop (a line logged outside the server): now
                self.write_access()

    def write_access(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        lines, self.pending = self.pending, []
        if not lines:
            return
        render = self.render
        text = "".join([render(line) + "\n" for line in lines])
        self.acquire()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # as logging does: a log must not crash the server
            self.handleError(logging.makeLogRecord({"msg": "access lines"}))
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        if self.pending:
            self.write_access()  # the order of lines holds
        super().emit(record)

    def flush(self) -> None:
        self.write_access()
        super().flush()


_sink: Sink | None = None  # set by configure(): access lines go there, in batches


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, fmt: str) -> None:
    """Send the server's log records (access lines included) to stderr in ``fmt``."""
    # The logging HOWTO's "Optimization": no thread or process names looked up for every
    # record (none of the formats shows them), a cost each access line would pay.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _sink
    _sink = Sink(json=fmt == "json")
    _sink.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[_sink], force=True)

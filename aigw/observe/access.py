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
"""

from __future__ import annotations

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
        # _text_value inlined: this runs once per request, a call per field is its cost.
        parts = []
        for k, x in zip(NAMES, self._shown(), strict=True):
            kind = type(x)
            if kind is str:
                if not x or _NEEDS_QUOTES.search(x):
                    x = _quoted(x)
            elif x is None:
                x = "-"
            elif kind is bool:
                x = "true" if x else "false"
            parts.append(f"{k}={x}")
        return " ".join(parts)

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


def _iso(ts: float) -> str:
    """``ts`` as ISO 8601 UTC with milliseconds (the second's text reused: lines come
    many to a second)."""
    whole = int(ts)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int(ts % 1 * 1000):03d}Z"


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
            out: dict[str, Any] = {"logger": record.name, **line.fields}
        else:
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


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, fmt: str) -> None:
    """Send the server's log records (access lines included) to stderr in ``fmt``."""
    # The logging HOWTO's "Optimization": no thread or process names looked up for every
    # record (none of the formats shows them), a cost each access line would pay.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)

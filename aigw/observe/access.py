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

__all__ = ["LOG_FORMATS", "AccessLine", "JsonFormatter", "configure", "neutral", "record"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NEEDS_QUOTES = re.compile(r'[\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029]')


def _escape_char(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def neutral(value: str) -> str:
    """``value`` with every control character escaped (``\\n`` -> ``\\x0a``): one line."""
    return _CONTROL.sub(_escape_char, value)


def _text_value(value: object) -> str:
    if value is None:
        return "-"
    if value is True or value is False:
        return "true" if value else "false"
    s = str(value)
    if not s or _NEEDS_QUOTES.search(s):
        return '"' + neutral(s.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return s


class AccessLine:
    """One request's fields; rendered as logfmt by ``str()`` (lazily, by the handler)."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(f"{k}={_text_value(v)}" for k, v in self.fields.items())


def fields(ctx: Context) -> dict[str, Any]:
    """What the line says about ``ctx``: who, what, where, how it went, what it cost."""
    key, target, usage = ctx.key, ctx.target, ctx.usage
    first = ctx.first_byte
    return {
        "time": _iso(ctx.ts),
        "request_id": ctx.request_id,
        "endpoint": ctx.endpoint,
        "team": key.team if key else None,
        "key_id": key.id if key else None,
        "app": key.app if key else None,
        "model": ctx.model,
        "provider": target.provider.name if target else None,
        "upstream_model": target.upstream_model if target else None,
        "status": ctx.status,
        "stream": ctx.stream,
        "latency_ms": ctx.latency_ms(),
        "ttft_ms": int((first - ctx.started) * 1000) if first is not None else None,
        "tokens_in": usage.prompt_tokens if usage else 0,
        "tokens_out": usage.completion_tokens if usage else 0,
        "cost_usd": format_usd(ctx.cost_nusd, 9) if ctx.cost_nusd is not None else None,
        "attempts": ctx.tries,
        "cache": ctx.cache,
    }


def _iso(ts: float) -> str:
    t = time.gmtime(ts)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', t)}.{int(ts % 1 * 1000):03d}Z"


def record(ctx: Context) -> None:
    """Log ``ctx``'s access line, if anyone listens."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s", AccessLine(fields(ctx)))


class JsonFormatter(logging.Formatter):
    """Each record as one JSON object; an access line's fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], AccessLine):
            out: dict[str, Any] = {"logger": record.name, **args[0].fields}
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
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)

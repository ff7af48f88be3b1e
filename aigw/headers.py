"""Response header values built from client or upstream text, safe by construction.

aiohttp refuses a header value with CR, LF or NUL by raising while the response is
being sent -- after the provider was called and billed -- and drops the connection.
Every header value aigw derives from text it did not write goes through
:func:`header_value`, which cannot return such a value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_HEADER_VALUE = 1024

# Printable ASCII only: controls, DEL and non-ASCII become visible escapes (\x00, \xe9).
_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _escape(m: re.Match[str]) -> str:
    return m.group().encode("unicode_escape").decode("ascii")


def header_value(text: str, limit: int = MAX_HEADER_VALUE) -> str:
    """``text`` as a header value: printable ASCII, at most ``limit`` characters."""
    if len(text) <= limit and text.isascii() and text.isprintable() and text == text.strip():
        return text  # the common case, without a regex
    if _UNSAFE.search(text):
        text = _UNSAFE.sub(_escape, text)
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Every value of ``headers`` made safe with :func:`header_value`."""
    return {name: header_value(value) for name, value in headers.items()}

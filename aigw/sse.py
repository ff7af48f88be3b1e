"""Incremental server-sent-events parsing and encoding.

Providers frame events with ``\\n\\n`` (OpenAI, Anthropic) or ``\\r\\n\\r\\n``
(Google). The parser normalises line endings, keeps each event's raw block so a
pass-through can forward it byte for byte, and never buffers more than the event
in progress.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(slots=True)
class Event:
    raw: bytes  # the whole event block, "\n" line endings, no trailing blank line
    event: str | None
    data: bytes

    def encode(self) -> bytes:
        return self.raw + b"\n\n"


class SSEParser:
    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[Event]:
        if b"\r" in chunk or self._buf.endswith(b"\r"):
            buf = (self._buf + chunk).replace(b"\r\n", b"\n")
            # A lone "\r" at the very end may be the first half of "\r\n": keep it.
            tail = b"\r" if buf.endswith(b"\r") else b""
            buf = buf[: len(buf) - len(tail)].replace(b"\r", b"\n") + tail
        else:
            buf = self._buf + chunk
        events: list[Event] = []
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            block = buf[start:end]
            start = end + 2
            ev = _parse_block(block)
            if ev is not None:
                events.append(ev)
        self._buf = buf[start:]
        return events

    def flush(self) -> list[Event]:
        """At end of input: the last event if the stream ended without a blank line."""
        block, self._buf = self._buf.rstrip(b"\r\n"), b""
        ev = _parse_block(block) if block else None
        return [ev] if ev is not None else []


def _parse_block(block: bytes) -> Event | None:
    # Fast paths for the shapes providers send: "data: X" and "event: E\ndata: X".
    if b"\n" not in block:
        if block.startswith(b"data: "):
            return Event(block, None, block[6:])
    elif block.startswith(b"event: "):
        nl = block.index(b"\n")
        if block.startswith(b"data: ", nl + 1) and block.find(b"\n", nl + 1) < 0:
            return Event(block, block[7:nl].decode("utf-8", "replace").strip(), block[nl + 7 :])
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
        # Comments (":...") and other fields (id, retry) carry nothing we use.
    if event is None and not data:
        return None
    return Event(block.lstrip(b"\n"), event, b"\n".join(data))


def encode(data: object, event: str | None = None) -> bytes:
    """One SSE event with a JSON payload."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


DONE = b"data: [DONE]\n\n"

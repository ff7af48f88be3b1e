"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, Azure-style base URLs)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import orjson

from aigw.config import ProviderConfig
from aigw.errors import GatewayError, Wire
from aigw.providers.base import JSON, StreamState, UpstreamRequest
from aigw.sse import DONE, Event
from aigw.usage import Usage, usage_from_openai

# Key-shaped strings an upstream error message may echo back (OpenAI's 401 does).
_KEYISH = re.compile(r"\b(sk|gw|key|AIza)[-_A-Za-z0-9*.]{8,}")


def redact(message: str, api_key: str | None) -> str:
    """Remove the provider key, and anything shaped like a key, from upstream text."""
    if api_key:
        message = message.replace(api_key, "[redacted]")
    return _KEYISH.sub("[redacted]", message)


def upstream_error(
    status: int,
    message: str,
    provider: str,
    *,
    type: str | None = None,
    code: str | None = None,
    param: str | None = None,
    retry_after: str | None = None,
) -> GatewayError:
    """An upstream error as the client should see it.

    401/403 from the provider mean aigw's own credentials are wrong: the client can
    do nothing about that, so it becomes a 502 instead of passing as "your key is bad".
    """
    headers = {"Retry-After": retry_after} if retry_after else {}
    text = f"Upstream provider '{provider}' returned {status}: {message}"
    if status in (401, 403):
        return GatewayError(
            502,
            f"Upstream provider '{provider}' rejected the gateway's credentials "
            f"({status}): {message}",
            type="upstream_error",
            code="upstream_auth_failed",
        )
    return GatewayError(
        status,
        text,
        type=type or ("server_error" if status >= 500 else "invalid_request_error"),
        code=code,
        param=param,
        headers=headers,
    )


class OpenAIStream:
    """Pass an OpenAI chat stream through, taking out usage for the ledger.

    The gateway always asks for ``stream_options.include_usage``; when the client did
    not, the extra usage chunk is dropped here. ``[DONE]`` and the usage chunk are
    held back until the ledger row is committed.
    """

    __slots__ = ("_held", "state", "wants_usage")

    def __init__(self, wants_usage: bool) -> None:
        self.state = StreamState()
        self.wants_usage = wants_usage
        self._held: list[bytes] = []

    def feed(self, event: Event) -> bytes:
        data = event.data
        if data.startswith(b"[DONE]"):
            self.state.done = True
            return b""
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return event.encode()
        if not isinstance(chunk, dict):
            return event.encode()
        if "error" in chunk:
            err = chunk["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            self.state.error = GatewayError(
                502, f"Upstream stream error: {msg}", type="upstream_error"
            )
            return b""
        usage = chunk.get("usage")
        choices = chunk.get("choices")
        if usage:
            self.state.usage = usage_from_openai(usage)
            if not choices:
                if self.wants_usage:
                    self._held.append(event.encode())
                return b""
        if choices:
            for choice in choices:
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if content:
                    self.state.chars += len(content)
                for call in delta.get("tool_calls") or ():
                    self.state.chars += len((call.get("function") or {}).get("arguments") or "")
                if choice.get("finish_reason"):
                    self.state.finished = True
        return event.encode()

    def tail(self) -> bytes:
        return b"".join(self._held) + DONE


class OpenAIAdapter:
    wire = Wire.OPENAI

    def _request(
        self, pc: ProviderConfig, api_key: str | None, path: str, body: JSON
    ) -> UpstreamRequest:
        url = pc.base_url + path
        if pc.query:
            url += "?" + urlencode(pc.query)
        headers = {"Content-Type": "application/json", "User-Agent": "aigw", **pc.headers}
        if api_key:
            if pc.auth_header:
                headers[pc.auth_header] = api_key
            else:
                headers["Authorization"] = "Bearer " + api_key
        return UpstreamRequest("POST", url, headers, orjson.dumps(body))

    def chat_request(
        self,
        pc: ProviderConfig,
        api_key: str | None,
        body: JSON,
        *,
        upstream_model: str,
        stream: bool,
    ) -> UpstreamRequest:
        out = dict(body)
        out["model"] = upstream_model
        if stream:
            opts = out.get("stream_options")
            out["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
        return self._request(pc, api_key, "/chat/completions", out)

    def response_usage(self, payload: JSON) -> Usage | None:
        return usage_from_openai(payload.get("usage"))

    def native_stream(self, *, client_wants_usage: bool) -> OpenAIStream:
        return OpenAIStream(client_wants_usage)

    def error(
        self, status: int, body: bytes, provider: str, api_key: str | None, retry_after: str | None
    ) -> GatewayError:
        message, type_, code, param = _parse_error(body)
        return upstream_error(
            status,
            redact(message, api_key),
            provider,
            type=type_,
            code=code,
            param=param,
            retry_after=retry_after,
        )


def _parse_error(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or "no error body"), None, None, None
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):

        def s(v: object) -> str | None:
            return v if isinstance(v, str) else None

        return (
            s(err.get("message")) or "no message",
            s(err.get("type")),
            s(err.get("code")),
            s(err.get("param")),
        )
    if isinstance(err, str):
        return err, None, None, None
    return orjson.dumps(payload).decode()[:500], None, None, None


ADAPTER = OpenAIAdapter()

"""Error types and the three wire envelopes.

Core code raises :class:`GatewayError` (to a client) or :class:`ConfigError` (to the
operator). The HTTP layer renders a GatewayError in the envelope of the API the
client speaks, so each official SDK raises its own proper exception type.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson


class AigwError(Exception):
    """Base of every error aigw raises on purpose."""


class ConfigError(AigwError):
    """The configuration is invalid; the message names file, key and problem."""


class StoreError(AigwError):
    """The state database cannot be opened or is from a newer aigw."""


class SecretError(AigwError):
    """A provider key cannot be stored or read."""


class Wire(Enum):
    """The API family a client speaks; decides the error envelope."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GOOGLE = "google"


# Error messages may quote client input (a role, a content type): a 50 KB value must
# not come back 50 KB long, nor fill the ledger's error column.
MAX_MESSAGE = 1024


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut in the middle to at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    head = (limit - 1) * 2 // 3
    return text[:head] + "\u2026" + text[len(text) - (limit - 1 - head) :]


class GatewayError(AigwError):
    """An error returned to the client, in the envelope of the client's API.

    ``type`` and ``code`` follow OpenAI's vocabulary; the Anthropic and Google
    envelopes derive their own names from ``status``. The message is shortened to
    :data:`MAX_MESSAGE` characters.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        message = shorten(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def anthropic_error_type(status: int) -> str:
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def google_error_status(status: int) -> str:
    if status in _GOOGLE_STATUS:
        return _GOOGLE_STATUS[status]
    return "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"


# An Anthropic or Gemini error, translated into OpenAI's vocabulary (type, code) so an
# OpenAI client sees what OpenAI itself would send; the SDKs pick the exception class
# by status, but callers branch on ``type``/``code`` (e.g. retry on rate_limit_exceeded):
#   400, 413, 422         invalid_request_error   (code null)
#   401 / 403             authentication_error / permission_error (rarely seen: aigw
#                         turns the provider rejecting its key into a 502)
#   404                   invalid_request_error   code not_found
#   429                   "tokens" if the message speaks of tokens, else "requests",
#                         code rate_limit_exceeded (as OpenAI's rate-limit errors;
#                         Gemini's per-minute "exceeded your current quota" is a
#                         rate limit too, so not mapped to insufficient_quota)
#   529, 503, overloaded  server_error            code overloaded
#   504, deadline         server_error            code timeout
#   other 5xx             server_error            (code null)
# Upstream names covered: Anthropic error.type (rate_limit_error, overloaded_error, ...)
# and Google error.status (RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED, ...).
_OPENAI_BY_STATUS = {
    401: ("authentication_error", None),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    503: ("server_error", "overloaded"),
    504: ("server_error", "timeout"),
    529: ("server_error", "overloaded"),
}


def openai_error_kind(
    status: int, upstream_type: str | None, message: str
) -> tuple[str, str | None]:
    """OpenAI's (type, code) for a non-OpenAI upstream error; see the table above."""
    name = (upstream_type or "").lower()
    text = message.lower()
    if status == 429 or name in ("rate_limit_error", "resource_exhausted"):
        return ("tokens" if "token" in text else "requests"), "rate_limit_exceeded"
    if name in ("overloaded_error", "unavailable"):
        return "server_error", "overloaded"
    if name in ("timeout_error", "deadline_exceeded"):
        return "server_error", "timeout"
    if status in _OPENAI_BY_STATUS:
        return _OPENAI_BY_STATUS[status]
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


def error_payload(err: GatewayError, wire: Wire) -> dict[str, Any]:
    """The error body a client of ``wire`` expects."""
    if wire is Wire.ANTHROPIC:
        return {
            "type": "error",
            "error": {"type": anthropic_error_type(err.status), "message": err.message},
        }
    if wire is Wire.GOOGLE:
        return {
            "error": {
                "code": err.status,
                "message": err.message,
                "status": google_error_status(err.status),
            }
        }
    return {
        "error": {
            "message": err.message,
            "type": err.type,
            "param": err.param,
            "code": err.code,
        }
    }


def error_body(err: GatewayError, wire: Wire) -> bytes:
    return orjson.dumps(error_payload(err, wire))

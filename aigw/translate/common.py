"""Shared pieces of the translators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aigw.usage import Usage

JSON = dict[str, Any]


class TranslationError(ValueError):
    """The request cannot be expressed for the target without changing its meaning.

    The pipeline turns it into a 400 in the client's envelope, naming ``param``.
    """

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class Translated:
    """A translated request body and the parameters dropped on the way.

    Each warning is a short human sentence; the gateway returns them to the client
    in ``x-aigw-warning`` headers.
    """

    body: JSON
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TranslateOptions:
    """Knobs shared by all request translators.

    ``strict``: when True, a parameter whose loss would change the meaning of the
    request (``n > 1``, ``logprobs``, an unsupported response schema...) raises
    :class:`TranslationError`; when False it is dropped with a warning instead.
    Parameters whose loss does not change the meaning (``seed``, ``user``...) are
    always dropped with a warning. ``refuse_unknown``: a field newer than this gateway
    raises :class:`TranslationError` instead of being dropped with a warning.
    """

    upstream_model: str
    strict: bool = True
    default_max_tokens: int = 4096
    refuse_unknown: bool = False


def content_text(content: object) -> str:
    """The text of a hub message's ``content``: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def copy_limits(req: JSON, hub: JSON, max_key: str) -> None:
    """A client's output limit (``max_key``) as the hub's ``max_tokens``, and its
    temperature and top_p, checked: a wrong type is the client's 400."""
    limit = req.get(max_key)
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise TranslationError(f"{max_key} must be a positive integer", param=max_key)
        hub["max_tokens"] = limit
    for key in ("temperature", "top_p"):
        value = req.get(key)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TranslationError(f"{key} must be a number", param=key)
            hub[key] = value


def tool_call_slot(call: JSON, known: int) -> int:
    """Which streamed tool call a hub delta continues (its ``index``), given how many
    calls the stream has seen. Some OpenAI-compatible servers omit the index: then a
    delta with an id starts a new call and one without continues the last."""
    key = call.get("index")
    if isinstance(key, int):
        return key
    return known if call.get("id") or not known else known - 1


def clamp_max_tokens(hub: JSON, limit: int) -> tuple[JSON, str | None]:
    """``hub`` with its output limit lowered to ``limit`` (the model's own), and the
    warning saying so; unchanged when within it. A client of another API family asks
    for what its usual model writes (Claude Code: 32,000), which the target's model
    would refuse outright."""
    for name in ("max_completion_tokens", "max_tokens"):
        asked = hub.get(name)
        if isinstance(asked, int) and not isinstance(asked, bool) and asked > limit:
            warning = f"{name} {asked} is above the model's output limit; {limit} was sent"
            return {**hub, name: limit}, warning
    return hub, None


def effort_for_budget(budget: int) -> str:
    """A thinking budget in tokens -> the OpenAI ``reasoning_effort`` level nearest it."""
    if budget <= 0:
        return "none"
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def openai_usage(u: Usage) -> JSON:
    """An OpenAI ``usage`` object, as the hub's answers and final stream chunks carry it.

    Cache writes (Anthropic's cache creation) go where OpenAI reports its own:
    ``prompt_tokens_details.cache_write_tokens`` (openai-python ``PromptTokensDetails``),
    only when there were any, as OpenAI omits it for models without billed writes.
    Like ``cached_tokens`` they are part of ``prompt_tokens``.
    """
    details: JSON = {"cached_tokens": u.cached_tokens}
    if u.cache_write_tokens:
        details["cache_write_tokens"] = u.cache_write_tokens
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def usage_chunk(chunk_id: str, created: int, model: str, usage: Usage) -> JSON:
    """The trailing chunk of ``stream_options.include_usage``: no choices, exact usage."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": openai_usage(usage),
    }

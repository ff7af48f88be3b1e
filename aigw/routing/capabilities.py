"""Can a model serve this request? Requirements of a call against a model's capabilities.

:func:`requirements` reads what a request asks for (prompt size, output size, tools,
images, a JSON schema, reasoning) from the client's body in any of the client formats;
:func:`unfit` says why a model cannot serve it, or None. :class:`CapabilityBook` finds a
model's capabilities: the shipped table (``aigw/data/capabilities.toml`` and the limits
of ``prices.toml``) under the route's overrides (``[models.NAME] tools = false``).

Pure but for the table read at start; the router skips a target that is unfit, a
single-target route answers 400 with the reason.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aigw.config.capabilities import FLAGS, NO_CAPABILITIES, Capabilities
from aigw.formats import Call
from aigw.pricing import PriceBook


@dataclass(frozen=True, slots=True)
class Requirements:
    """What one request asks of the model that serves it."""

    prompt_tokens: int = 0  # the gateway's estimate
    max_output_tokens: int | None = None  # the client's max_tokens, if it set one
    tools: bool = False
    images: bool = False
    json_schema: bool = False
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class Misfit:
    """Why a model cannot serve a request: ``kind`` is the capability it lacks."""

    kind: str  # context_window | tools | vision | json_schema | reasoning
    message: str


# Flags a request is refused for. Reasoning is not among them: a translated request
# loses what its target cannot honour with a warning, and the provider answers a
# native one itself; the flag informs the router's choice only.
REFUSING = ("tools", "vision", "json_schema")

_FEATURE_TEXT = {
    "tools": "tool calling",
    "vision": "image input",
    "json_schema": "structured output with a JSON schema",
    "reasoning": "reasoning",
}
_WANTS = {
    "tools": "tools",
    "vision": "images",
    "json_schema": "json_schema",
    "reasoning": "reasoning",
}


def unfit(caps: Capabilities, req: Requirements) -> Misfit | None:
    """Why a model with ``caps`` cannot serve ``req``, or None when it can (or may:
    an unknown capability never refuses)."""
    window = caps.context_window
    if window and req.prompt_tokens > window:
        return Misfit(
            "context_window",
            f"the prompt (about {req.prompt_tokens:,} tokens) is larger than the model's "
            f"context window of {window:,} tokens",
        )
    # A max_tokens above the model's output limit is no reason to skip it: translated
    # requests are clamped to the limit (aigw.pipeline.forward), and a native one is
    # the provider's to judge.
    for flag in REFUSING:
        if getattr(caps, flag) is False and getattr(req, _WANTS[flag]):
            return Misfit(flag, f"the request uses {_FEATURE_TEXT[flag]}, which the model lacks")
    return None


def surely_fits(caps: Capabilities, prompt_tokens: int) -> bool:
    """Whether a model with ``caps`` serves any request with a prompt this size: it lacks
    none of the :data:`REFUSING` features (unknown counts as able) and its window holds
    the prompt. The router's shortcut past :func:`requirements_for` and :func:`unfit`."""
    window = caps.context_window
    return (
        (not window or prompt_tokens <= window)
        and caps.tools is not False
        and caps.vision is not False
        and caps.json_schema is not False
    )


# -- reading a request's requirements (every client format) --------------------------


def requirements(call: Call, *, images: bool = True) -> Requirements:
    """What ``call`` asks for. ``images=False`` skips the walk over the messages that
    finding images costs (when no candidate model lacks vision)."""
    body = call.body
    return Requirements(
        prompt_tokens=call.prompt_estimate,
        max_output_tokens=call.max_output,
        tools=bool(body.get("tools") or body.get("functions")),
        images=images and _has_images(body),
        json_schema=_wants_schema(body),
        reasoning=_wants_reasoning(body),
    )


def requirements_for(call: Call, caps: Capabilities) -> Requirements:
    """What ``call`` asks that ``caps`` could refuse: only the features the model is known
    to lack are looked for (the per-request fast path of a single target)."""
    body = call.body
    return Requirements(
        prompt_tokens=call.prompt_estimate,
        max_output_tokens=call.max_output,
        tools=caps.tools is False and bool(body.get("tools") or body.get("functions")),
        images=caps.vision is False and _has_images(body),
        json_schema=caps.json_schema is False and _wants_schema(body),
    )


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def _schema_type(fmt: Any) -> bool:
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def _wants_schema(body: Mapping[str, Any]) -> bool:
    gen = body.get("generationConfig") or body.get("generation_config")
    return (
        _schema_type(body.get("response_format"))  # OpenAI chat
        or _schema_type(_get(body, "text", "format"))  # OpenAI Responses
        or _schema_type(body.get("output_format"))  # Anthropic (beta)
        or _schema_type(_get(body, "output_config", "format"))  # Anthropic
        or any(  # Gemini, camelCase or snake_case
            isinstance(gen, dict) and gen.get(k) is not None
            for k in (
                "responseSchema",
                "responseJsonSchema",
                "response_schema",
                "response_json_schema",
            )
        )
    )


def _wants_reasoning(body: Mapping[str, Any]) -> bool:
    effort = body.get("reasoning_effort") or _get(body, "reasoning", "effort")
    if isinstance(effort, str) and effort not in ("none", "minimal"):
        return True
    if _get(body, "thinking", "type") == "enabled":  # Anthropic
        return True
    gen = body.get("generationConfig") or body.get("generation_config")
    thinking = _get(gen, "thinkingConfig") or _get(gen, "thinking_config")
    if isinstance(thinking, dict):
        budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
        return isinstance(budget, int) and not isinstance(budget, bool) and budget != 0
    return False


_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


def _has_images(body: Mapping[str, Any]) -> bool:
    for key in ("messages", "input", "contents", "system"):
        items = body.get(key)
        if isinstance(items, list) and _parts_have_images(items):
            return True
    return False


def _parts_have_images(items: Iterable[Any]) -> bool:
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") in _IMAGE_PARTS:
            return True
        for key in ("inlineData", "inline_data", "fileData", "file_data"):  # Gemini parts
            data = item.get(key)
            if isinstance(data, dict):
                mime = data.get("mimeType", data.get("mime_type"))
                if isinstance(mime, str) and mime.startswith("image/"):
                    return True
        for key in ("content", "parts"):  # a message's parts (OpenAI, Anthropic, Gemini)
            parts = item.get(key)
            if isinstance(parts, list) and _parts_have_images(parts):
                return True
    return False


# -- the table -----------------------------------------------------------------------


def load_flags() -> dict[str, Capabilities]:
    """The shipped feature flags, by model name (as ``prices.toml`` names models)."""
    text = resources.files("aigw").joinpath("data/capabilities.toml").read_text("utf-8")
    out: dict[str, Capabilities] = {}
    for model, entry in tomllib.loads(text).get("models", {}).items():
        out[model] = Capabilities(**{f: entry.get(f) for f in FLAGS})
    return out


class CapabilityBook:
    """A model's capabilities: shipped limits and flags, under a route's overrides."""

    def __init__(self, prices: PriceBook, flags: dict[str, Capabilities] | None = None) -> None:
        self.prices = prices
        self.flags = load_flags() if flags is None else flags

    def lookup(
        self, provider: str, model: str, overrides: Capabilities = NO_CAPABILITIES
    ) -> Capabilities:
        """What ``model`` on ``provider`` can do (all unknown when neither table knows it)."""
        price = self.prices.lookup(provider, model)
        base = NO_CAPABILITIES
        if price is not None:
            flags = self.flags.get(price.model) or self.flags.get(model) or NO_CAPABILITIES
            base = Capabilities(price.context_window, price.max_output_tokens).over(flags)
        return overrides.over(base) if not overrides.is_empty() else base

"""What a model can serve: context window, output limit, feature flags.

One dataclass for the shipped table (``aigw/data/capabilities.toml`` with the limits of
``prices.toml``), for ``[models.NAME]`` overrides and for each entry of a route's
``targets`` (the routing core embeds it). ``None`` means "not known": a model is
assumed able to do what it is not known to lack.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from aigw.config.base import Reader

FLAGS = ("tools", "vision", "json_schema", "reasoning")
LIMITS = ("context_window", "max_output_tokens")


@dataclass(frozen=True, slots=True)
class Capabilities:
    context_window: int | None = None  # prompt plus output, tokens
    max_output_tokens: int | None = None
    tools: bool | None = None  # function / tool calling
    vision: bool | None = None  # images in the prompt
    json_schema: bool | None = None  # structured output against a JSON schema
    reasoning: bool | None = None  # thinking / reasoning effort

    def over(self, base: Capabilities) -> Capabilities:
        """``base`` with every field this one sets replacing its value."""
        changes = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(base, **{k: v for k, v in changes.items() if v is not None})

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


NO_CAPABILITIES = Capabilities()


def read_capabilities(r: Reader) -> Capabilities:
    """The capability keys of a table (``[models.X]`` or a ``targets`` entry)."""
    values: dict[str, Any] = {}
    for name in LIMITS:
        value = r.get(name, int, None)
        if value is not None and value < 0:
            r.fail(name, f"must be a whole number >= 0 (got {value})")
        values[name] = value
    for name in FLAGS:
        values[name] = r.get(name, bool, None)
    return Capabilities(**values)


def write_capabilities(c: Capabilities) -> dict[str, Any]:
    """The keys a config table needs to say ``c`` (the ones set)."""
    return {f.name: getattr(c, f.name) for f in fields(c) if getattr(c, f.name) is not None}

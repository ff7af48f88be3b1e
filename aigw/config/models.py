"""``[models.NAME]``: public model aliases, each sent to one provider's model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Parsed, Reader, named
from aigw.config.capabilities import (
    NO_CAPABILITIES,
    Capabilities,
    read_capabilities,
    write_capabilities,
)
from aigw.config.providers import PROVIDERS
from aigw.formats.validate import model_problem


@dataclass(slots=True)
class ModelConfig:
    """``[models.NAME]``: a public model name mapped to a provider and upstream model."""

    name: str
    provider: str
    model: str
    # Overrides of the shipped capability table (context_window, tools = false...).
    capabilities: Capabilities = NO_CAPABILITIES


def _name_problem(name: str) -> str | None:
    if "/" in name:
        return "a model alias may not contain '/' (reserved for PROVIDER/MODEL)"
    problem = model_problem(name)  # clients could never ask for it
    return None if problem is None else f"not a valid model name: {problem}"


def _read(r: Reader, name: str, parsed: Parsed) -> ModelConfig:
    providers = parsed[PROVIDERS]
    provider = r.get("provider", str, None)
    model = r.get("model", str, None)
    if provider is None:
        r.fail("provider", "is required")
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none configured"
        r.fail("provider", f"names no configured provider (got {provider!r}; known: {known})")
    if not model:
        r.fail("model", "is required (the provider's model name)")
    return ModelConfig(name=name, provider=provider, model=model, capabilities=read_capabilities(r))


def _write(m: ModelConfig) -> dict[str, Any]:
    return {"provider": m.provider, "model": m.model, **write_capabilities(m.capabilities)}


MODELS = named(
    '# Model aliases: [models.NAME] provider = "P", model = "M" sends model NAME\n'
    "# to provider P as upstream model M. Optional overrides of the shipped capability\n"
    "# table: context_window, max_output_tokens, tools, vision, json_schema, reasoning.",
    _read,
    _write,
    check_name=_name_problem,
)

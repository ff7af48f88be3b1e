"""``[models.NAME]``: public model names (routes), each served by one or more targets.

One target keeps the short form ``provider = "P"``, ``model = "M"``. Several go in
``targets = [{provider, model, weight}]`` with a ``strategy`` that orders them per
call (:mod:`aigw.routing.strategy`): failover (in order), weighted (random by weight),
latency (lowest recent time to first byte) or cost (cheapest first).
"""

from __future__ import annotations

import math
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
from aigw.config.routing import MAX_ATTEMPTS
from aigw.formats.validate import model_problem

STRATEGIES = ("failover", "weighted", "latency", "cost")
MAX_TARGETS = 16  # a route is a short list someone wrote by hand


@dataclass(frozen=True, slots=True)
class TargetConfig:
    """One provider and upstream model that can serve a route."""

    provider: str
    model: str
    weight: float = 1.0  # for strategy = "weighted"
    # This target's overrides of the shipped capability table (over the model's).
    capabilities: Capabilities = NO_CAPABILITIES


@dataclass(slots=True)
class ModelConfig:
    """``[models.NAME]``: a public model name and the targets that serve it.

    ``provider`` and ``model`` are the first target (the whole route when it has one).
    """

    name: str
    provider: str
    model: str
    strategy: str = "failover"
    allow_pricier_fallback: bool = False
    # Every target, the first being (provider, model); empty means just that one.
    targets: tuple[TargetConfig, ...] = ()
    max_attempts: int | None = None  # None: [routing] max_attempts
    # Overrides of the shipped capability table (context_window, tools = false...) for
    # every target; a targets entry's own keys win over these.
    capabilities: Capabilities = NO_CAPABILITIES

    def __post_init__(self) -> None:
        if not self.targets:
            self.targets = (TargetConfig(self.provider, self.model),)

    @property
    def multi(self) -> bool:
        return len(self.targets) > 1


def _name_problem(name: str) -> str | None:
    if "/" in name:
        return "a model alias may not contain '/' (reserved for PROVIDER/MODEL)"
    problem = model_problem(name)  # clients could never ask for it
    return None if problem is None else f"not a valid model name: {problem}"


def _target(r: Reader, where: str, providers: dict[str, Any], raw: Any) -> TargetConfig:
    if not isinstance(raw, dict):
        r.fail(where, f"must be a table {{provider = .., model = ..}} (got {raw!r})")
    # The entry's own reader: its errors name models.X.targets[i].KEY, it refuses
    # unknown keys, and the capability keys read as on the model.
    t = Reader(r.where, raw, f"{r.dotted}.{where}" if r.dotted else where)
    provider = t.get("provider", str, None)
    model = t.get("model", str, None)
    weight = raw.get("weight", 1)  # checked below, with its own message
    t.seen.add("weight")
    caps = read_capabilities(t)
    t.done()
    if provider is None:
        t.fail("provider", "is required (a configured provider's name)")
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none configured"
        t.fail("provider", f"names no configured provider (got {provider!r}; known: {known})")
    if not model:
        t.fail("model", "is required (the provider's model name)")
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not math.isfinite(weight)
        or weight <= 0
    ):
        t.fail("weight", f"must be a number > 0 (got {weight!r})")
    return TargetConfig(provider, model, float(weight), caps)


def _read(r: Reader, name: str, parsed: Parsed) -> ModelConfig:
    providers = parsed[PROVIDERS]
    strategy = r.get("strategy", str, "failover")
    if strategy not in STRATEGIES:
        r.fail("strategy", f"must be one of {', '.join(STRATEGIES)} (got {strategy!r})")
    pricier = r.get("allow_pricier_fallback", bool, False)
    attempts = r.get("max_attempts", int, None)
    if attempts is not None and not 1 <= attempts <= MAX_ATTEMPTS:
        r.fail("max_attempts", f"must be an integer from 1 to {MAX_ATTEMPTS} (got {attempts!r})")
    caps = read_capabilities(r)
    raw_targets = r.get("targets", list, None)
    if raw_targets is not None:
        if "provider" in r.table or "model" in r.table:
            r.fail("targets", "set either targets or provider and model, not both")
        r.seen.update(("provider", "model"))
        if not raw_targets:
            r.fail("targets", "must list at least one target")
        if len(raw_targets) > MAX_TARGETS:
            r.fail("targets", f"may list at most {MAX_TARGETS} targets")
        targets = tuple(
            _target(r, f"targets[{i}]", providers, t) for i, t in enumerate(raw_targets)
        )
        if len({(t.provider, t.model) for t in targets}) != len(targets):
            r.fail("targets", "lists the same provider and model twice")
        first = targets[0]
        return ModelConfig(
            name, first.provider, first.model, strategy, pricier, targets, attempts, caps
        )
    provider = r.get("provider", str, None)
    model = r.get("model", str, None)
    if provider is None:
        r.fail("provider", "is required (or targets = [{provider = .., model = ..}, ..])")
    if provider not in providers:
        known = ", ".join(sorted(providers)) or "none configured"
        r.fail("provider", f"names no configured provider (got {provider!r}; known: {known})")
    if not model:
        r.fail("model", "is required (the provider's model name)")
    return ModelConfig(
        name, provider, model, strategy, pricier, max_attempts=attempts, capabilities=caps
    )


def _write(m: ModelConfig) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if m.strategy != "failover":
        entry["strategy"] = m.strategy
    if m.allow_pricier_fallback:
        entry["allow_pricier_fallback"] = True
    if m.max_attempts is not None:
        entry["max_attempts"] = m.max_attempts
    entry.update(write_capabilities(m.capabilities))
    if not m.multi:
        return {"provider": m.provider, "model": m.model, **entry}
    targets: list[dict[str, Any]] = []
    for t in m.targets:
        item: dict[str, Any] = {"provider": t.provider, "model": t.model}
        if t.weight != 1.0:
            item["weight"] = int(t.weight) if t.weight.is_integer() else t.weight
        item.update(write_capabilities(t.capabilities))
        targets.append(item)
    return {**entry, "targets": targets}


MODELS = named(
    '# Model aliases: [models.NAME] provider = "P", model = "M" sends model NAME\n'
    "# to provider P as upstream model M. Several targets, tried in the order the\n"
    '# strategy gives: strategy = "failover" | "weighted" | "latency" | "cost" and\n'
    '# targets = [{ provider = "P", model = "M", weight = 1 }, ...]. Failover never\n'
    "# moves to a pricier target unless allow_pricier_fallback = true. Optional overrides\n"
    "# of the shipped capability table, on the model or on one target: context_window,\n"
    "# max_output_tokens, tools, vision, json_schema, reasoning.",
    _read,
    _write,
    check_name=_name_problem,
)

__all__ = ["MODELS", "STRATEGIES", "ModelConfig", "TargetConfig"]

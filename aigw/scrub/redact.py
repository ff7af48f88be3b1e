"""Per-request redaction: placeholders for what the detectors find, per the policy.

A policy maps each detector to an action: ``redact`` (the value is replaced by a
placeholder such as ``[EMAIL_1]``; the same value gets the same placeholder throughout
the request, so the model can still tell two addresses apart), ``block`` (the request
is refused, naming the detectors, never the values), ``log`` (counted only) or ``off``
(not even looked for). The config sets the actions; a team's overrides apply on top,
then the key's (the narrowest scope wins per detector).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aigw.errors import GatewayError
from aigw.scrub.detectors import Scanner

# A team's or key's overrides: (detector, action) pairs.
Overrides = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Policy:
    actions: Mapping[str, str]
    enabled: frozenset[str]  # the detectors whose action is not "off"


def make_policy(base: Mapping[str, str], *overrides: Overrides | None) -> Policy:
    """``base`` with each set of overrides applied in turn (widest scope first)."""
    actions = dict(base)
    for pairs in overrides:
        for name, action in pairs or ():
            if name in actions:  # a detector since removed from the config: ignored
                actions[name] = action
    return Policy(actions, frozenset(n for n, a in actions.items() if a != "off"))


def content_blocked(detectors: Sequence[str]) -> GatewayError:
    names = ", ".join(sorted(detectors))
    return GatewayError(
        400,
        f"content_blocked: the request contains data this gateway's scrub policy blocks "
        f"({names}); remove it and try again.",
        code="content_blocked",
    )


class Redactor:
    """Scrubs the texts of one request; remembers the placeholders it handed out."""

    __slots__ = ("_next", "actions", "blocked", "counts", "enabled", "originals", "scanner", "seen")

    def __init__(self, scanner: Scanner, policy: Policy) -> None:
        self.scanner = scanner
        self.actions = policy.actions
        self.enabled = policy.enabled
        self.counts: dict[str, int] = {}
        self.blocked: set[str] = set()
        self.originals: dict[str, str] = {}  # placeholder -> value
        self.seen: dict[tuple[str, str], str] = {}  # (detector, value) -> placeholder
        self._next: dict[str, int] = {}

    def text(self, text: str) -> str:
        """``text`` with the values to redact replaced by their placeholders."""
        findings = self.scanner.scan(text, self.enabled)
        if not findings:
            return text
        out: list[str] = []
        pos = 0
        counts = self.counts
        for f in findings:
            name = f.detector
            counts[name] = counts.get(name, 0) + 1
            action = self.actions[name]
            if action == "block":
                self.blocked.add(name)
            elif action == "redact":
                out.append(text[pos : f.start])
                out.append(self.placeholder(name, text[f.start : f.end]))
                pos = f.end
        if not out:
            return text
        out.append(text[pos:])
        return "".join(out)

    def placeholder(self, detector: str, value: str) -> str:
        key = (detector, value)
        found = self.seen.get(key)
        if found is not None:
            return found
        n = self._next.get(detector, 0) + 1
        self._next[detector] = n
        holder = f"[{detector.upper()}_{n}]"
        self.seen[key] = holder
        self.originals[holder] = value
        return holder

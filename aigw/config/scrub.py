"""``[scrub]``: personal data and secrets found in what the provider would see.

Each detector has an action: ``redact`` (replaced by a placeholder such as
``[EMAIL_1]``, put back in the answer when ``restore`` is on), ``block`` (the request
is refused with a 400 ``content_blocked``), ``log`` (only counted) or ``off``.
Defaults: redact ``secret`` and ``card``, log the rest. Teams and keys may override
actions per detector (``aigw teams update NAME --scrub email=block``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aigw.config.base import Reader, table
from aigw.model import SCRUB_ACTIONS as ACTIONS

DETECTORS = ("email", "phone", "card", "ssn", "iban", "ip", "secret")
DEFAULT_ACTIONS: dict[str, str] = {
    "email": "log",
    "phone": "log",
    "card": "redact",
    "ssn": "log",
    "iban": "log",
    "ip": "log",
    "secret": "redact",
}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_REGION = re.compile(r"[A-Z]{2}")


@dataclass(slots=True)
class CustomDetector:
    """A ``[scrub.custom.NAME]`` detector: a regex and its action."""

    pattern: str
    action: str = "redact"


@dataclass(slots=True)
class ScrubConfig:
    # Put the original values back into answers in place of the placeholders.
    restore: bool = True
    # How a phone number without a country code is read (ISO 3166-1 alpha-2).
    phone_region: str = "US"
    actions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    custom: dict[str, CustomDetector] = field(default_factory=dict)


def custom_name_problem(name: str) -> str | None:
    if not _NAME.fullmatch(name):
        return "a detector name is 1-32 lower-case letters, digits or '_', starting with a letter"
    if name in DETECTORS:
        return f"'{name}' is a built-in detector; set its action in [scrub.actions]"
    return None


def _action(r: Reader, key: str, default: str) -> str:
    value: str = r.get(key, str, default)
    if value not in ACTIONS:
        r.fail(key, f"must be one of {', '.join(ACTIONS)} (got {value!r})")
    return value


def _read(r: Reader) -> ScrubConfig:
    restore = r.get("restore", bool, True)
    region = r.get("phone_region", str, "US")
    if not _REGION.fullmatch(region):
        r.fail("phone_region", f"must be a two-letter country code, e.g. US or DE (got {region!r})")
    acts = Reader(r.where, r.get("actions", dict, {}), "scrub.actions")
    actions = {name: _action(acts, name, DEFAULT_ACTIONS[name]) for name in DETECTORS}
    acts.done()
    custom: dict[str, CustomDetector] = {}
    table_ = r.get("custom", dict, {})
    for name, raw in table_.items():
        problem = custom_name_problem(name)
        if problem is not None:
            r.fail(f"custom.{name}", problem)
        c = Reader(r.where, raw, f"scrub.custom.{name}")
        pattern = c.get("pattern", str, None)
        if pattern is None:
            c.fail("pattern", "missing: the regex to detect")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            compiled = None
            c.fail("pattern", f"not a valid regex: {exc}")
        if compiled is not None and compiled.fullmatch(""):
            c.fail("pattern", "must not match an empty text")
        custom[name] = CustomDetector(pattern, _action(c, "action", "redact"))
        c.done()
    return ScrubConfig(restore=restore, phone_region=region, actions=actions, custom=custom)


def _write(cfg: ScrubConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "restore": cfg.restore,
        "phone_region": cfg.phone_region,
        "actions": dict(cfg.actions),
    }
    if cfg.custom:
        out["custom"] = {
            name: {"pattern": c.pattern, "action": c.action} for name, c in cfg.custom.items()
        }
    return out


SCRUB = table(
    "# Personal data and secrets in what the provider would see. Actions per detector\n"
    "# (email, phone, card, ssn, iban, ip, secret): redact (a placeholder such as\n"
    "# [EMAIL_1]; restore = true puts the value back in the answer), block (a 400\n"
    "# content_blocked naming the detectors), log (counted only) or off. Teams and keys\n"
    "# override per detector (`aigw teams update NAME --scrub email=block`). Custom\n"
    '# detectors: [scrub.custom.NAME] pattern = "EMP-[0-9]{6}", action = "redact".\n'
    "# Images and files are passed as they are.",
    ScrubConfig,
    _read,
    _write,
)

"""Detectors of personal data and secrets in text, each validated to keep false
positives low.

Built in: ``email``, ``phone`` (validated per country by phonenumbers), ``card``
(Luhn, a card network's first digit, 13-19 digits), ``ssn`` (US, written
``ddd-dd-dddd`` or ``ddd dd dddd``, never-issued areas, groups and serials refused),
``iban`` (country length and mod-97), ``ip`` (v4 and v6; a dotted quad after
"version", "v" and the like is a version, not an address) and ``secret`` (API keys and
tokens of well-known shapes, PEM private key blocks, aigw's own ``gw-`` keys). Custom
detectors are regexes from ``[scrub.custom.NAME]``.

Speed matters: the step runs on every request. Each detector has a cheap gate (a
substring test, or a digit regex the C engine scans quickly) before its regex, and the
expensive validators (phonenumbers, ipaddress) run only on candidates. Texts repeat
from one turn of a conversation to the next, so phone validation is memoised.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# In the order overlaps are settled: when two findings overlap, the one that starts
# first wins, and at the same start the one earlier here.
BUILTIN = ("secret", "email", "card", "iban", "ssn", "ip", "phone")
# How the detectors are listed to people (config, CLI, docs).
DETECTORS = ("email", "phone", "card", "ssn", "iban", "ip", "secret")


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    detector: str


# -- secrets -------------------------------------------------------------------------

# Substrings at least one of which a secret contains: most texts have none, and the
# regex below then never runs.
_SECRET_HINTS = (
    "sk-",
    "sk_live_",
    "rk_live_",
    "AIza",
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "eyJ",
    "-----BEGIN",
    "gw-",
)
_SECRET = re.compile(
    r"""
    (?<![A-Za-z0-9_-])
    (?:
        sk-ant-[A-Za-z0-9_-]{20,}                              # Anthropic
      | sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}        # OpenAI
      | AIza[0-9A-Za-z_-]{35}                                  # Google API key
      | (?:AKIA|ASIA)[0-9A-Z]{16}                              # AWS access key id
      | gh[pousr]_[A-Za-z0-9]{36,}                             # GitHub tokens
      | github_pat_[A-Za-z0-9_]{22,}                           # GitHub fine-grained
      | xox[abposr]-[A-Za-z0-9-]{10,}                          # Slack
      | [sr]k_live_[A-Za-z0-9]{20,}                            # Stripe
      | eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}  # JWT
      | gw-[A-Za-z0-9_-]{40}                                   # aigw's own keys
    )
    (?![A-Za-z0-9_-])
    | -----BEGIN\ [A-Z0-9 ]*PRIVATE\ KEY-----[\s\S]{0,16384}?-----END\ [A-Z0-9 ]*PRIVATE\ KEY-----
    """,
    re.VERBOSE,
)
_HAS_DIGIT = re.compile(r"\d")


def _jwt_header(token: str) -> bool:
    """Whether a JWT's first segment decodes to a JSON header naming an algorithm."""
    head = token.split(".", 1)[0]
    try:
        raw = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(b"{") and b'"alg"' in raw


def _secret_ok(token: str) -> bool:
    if token.startswith("-----"):
        return True
    if token.startswith("eyJ"):
        return _jwt_header(token)
    # Random keys mix digits in; a long hyphenated phrase after "sk-" does not.
    return _HAS_DIGIT.search(token) is not None


def _secrets(text: str) -> Iterable[Finding]:
    if not any(hint in text for hint in _SECRET_HINTS):
        return
    for m in _SECRET.finditer(text):
        if _secret_ok(m.group()):
            yield Finding(m.start(), m.end(), "secret")


# -- email ---------------------------------------------------------------------------

_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + ".!#$%&'*+/=?^_`{|}~-")
_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)


def _emails(text: str) -> Iterable[Finding]:
    at = text.find("@")
    while at >= 0:
        start = at
        floor = max(0, at - 64)
        while start > floor and text[start - 1] in _LOCAL_CHARS:
            start -= 1
        while start < at and text[start] in ".'`{|}":  # not how a local part starts
            start += 1
        m = _DOMAIN.match(text, at + 1)
        if m is not None and start < at and text[at - 1] != ".":
            yield Finding(start, m.end(), "email")
            at = text.find("@", m.end())
        else:
            at = text.find("@", at + 1)


# -- numbers: cards, SSNs, phones, IPv4 ------------------------------------------------

# A run of digits and the separators numbers are written with. Every pattern that the
# scanner runs on every text starts with a character class and has no lookbehind, so
# the regex engine skips ahead in C to the next candidate instead of trying each
# position; the context checks a lookbehind would make are done on the few matches.
_NUM = re.compile(r"\d[\d \-.()]{5,}\d")
_GROUPS = re.compile(r"[^ ]+")
_CARD = re.compile(r"\d(?:[ -]?\d){12,18}")
_SSN = re.compile(r"(\d{3})([- ])(\d{2})\2(\d{4})")
_IPV4 = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}")
_NOT_DIGITS = re.compile(r"\D")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_DECIMAL = re.compile(r"\d+\.\d+")
# Words after which a dotted quad is a version number, not an address.
_VERSION_WORDS = re.compile(
    r"(?:\bv|\bver\.?|\bversion|\brelease|\bbuild|\bfirmware|\bupdate|\bto|@|==|>=|<=|~=)\s*$",
    re.IGNORECASE,
)


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_ok(number: str) -> bool:
    """13-19 digits, a card network's first digit (2-6), one kind of separator, Luhn."""
    digits = _NOT_DIGITS.sub("", number)
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    if digits == digits[0] * len(digits):
        return False
    if "-" in number and " " in number:
        return False
    return luhn(digits)


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """Never-issued areas (000, 666, 900-999), group 00 and serial 0000 are refused,
    and so are the numbers published as examples (078-05-1120, 219-09-9999)."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return f"{area}{group}{serial}" not in ("078051120", "219099999")


def _ipv4_ok(text: str, start: int, quad: str) -> bool:
    octets = quad.split(".")
    if any((len(o) > 1 and o[0] == "0") or int(o) > 255 for o in octets):
        return False
    return _VERSION_WORDS.search(text, max(0, start - 12), start) is None


@functools.lru_cache(maxsize=4096)
def _phone_ok(candidate: str, region: str) -> bool:
    import phonenumbers  # deferred: a large import that only a candidate needs

    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def _classify(text: str, start: int, cand: str, want: frozenset[str], region: str) -> str | None:
    """Which detector a whole candidate is, if any."""
    if _IPV4.fullmatch(cand):
        return "ip" if "ip" in want and _ipv4_ok(text, start, cand) else None
    m = _SSN.fullmatch(cand)
    if m is not None and "ssn" in want and ssn_ok(m.group(1), m.group(3), m.group(4)):
        return "ssn"
    if _CARD.fullmatch(cand) and "card" in want and card_ok(cand):
        return "card"
    if "phone" in want and _phone_like(cand) and _phone_ok(cand, region):
        return "phone"
    return None


def _phone_like(cand: str) -> bool:
    digits = sum(ch.isdigit() for ch in cand)
    if not 7 <= digits <= 17:
        return False
    # Bare digit runs are ids, timestamps, amounts: a phone is written as one.
    if cand.isdigit():
        return False
    if _DATE.fullmatch(cand) or _DECIMAL.fullmatch(cand):
        return False
    # Groups of one digit ("1 2 3 4 5 6 7") are a list, not a phone; a country code
    # such as "+1" may stand first.
    groups = re.split(r"[ \-.()]+", cand.lstrip("+("))
    return not any(len(g) == 1 for g in groups[1:])


def _numbers(text: str, want: frozenset[str], region: str, found: list[Finding]) -> list[int]:
    """Append the numbers found to ``found``; return where the long digit runs start."""
    size = len(text)
    runs: list[int] = []
    for m in _NUM.finditer(text):
        start, end = m.span()
        runs.append(start)
        before = text[start - 1] if start else " "
        if before.isalnum() or before in "_.-":
            continue  # inside an identifier, a version or a longer number
        if end < size and (text[end].isalnum() or text[end] == "_"):
            continue
        if before == "+" or before == "(":
            start -= 1
            if before == "(" and start and text[start - 1] == "+":
                start -= 1
        cand = text[start:end]
        kind = _classify(text, start, cand, want, region) if _balanced(cand) else None
        if kind is not None:
            found.append(Finding(start, end, kind))
        elif " " in cand:
            _within(text, start, cand, want, region, found)
    return runs


def _balanced(cand: str) -> bool:
    return cand.count("(") == cand.count(")")


# A run that is not one number as a whole ("call 415 555 2671 12 times", two cards one
# after the other) is tried as windows of at most this many space-separated groups.
_MAX_GROUPS = 6


def _within(
    text: str, start: int, cand: str, want: frozenset[str], region: str, found: list[Finding]
) -> None:
    """The numbers inside a run, longest window of groups first, left to right."""
    spans = [(start + g.start(), start + g.end()) for g in _GROUPS.finditer(cand)]
    i = 0
    while i < len(spans):
        hit = 0
        for j in range(min(len(spans), i + _MAX_GROUPS), i, -1):
            sub_start, sub_end = spans[i][0], spans[j - 1][1]
            sub = text[sub_start:sub_end].rstrip(" -.")
            if sum(ch.isdigit() for ch in sub) < 7:
                break  # shorter windows have fewer digits still
            if not (sub[-1].isdigit() and _balanced(sub)):
                continue
            kind = _classify(text, sub_start, sub, want, region)
            if kind is not None:
                found.append(Finding(sub_start, sub_start + len(sub), kind))
                hit = j
                break
        i = hit or i + 1


# -- IBAN ----------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
# Length of the IBAN in each country that issues them (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_ok(iban: str) -> bool:
    """Country length and the mod-97 check of ISO 13616 (spaces ignored)."""
    iban = iban.replace(" ", "")
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _ibans(text: str, runs: list[int]) -> Iterable[Finding]:
    """IBANs around the digit runs at ``runs`` (every IBAN has one of seven digits or
    more): the regex runs on a window around each, never over the whole text."""
    done = 0
    for run in runs:
        if run < done:
            continue
        m = _IBAN.search(text, max(done, run - 36), run + 48)
        if m is None or m.start() > run:
            continue
        done = m.end()
        cand = m.group()
        # The run may have taken in a word after the IBAN: drop groups from the end.
        while len(cand) >= 15:
            if iban_ok(cand):
                yield Finding(m.start(), m.start() + len(cand), "iban")
                break
            cut = cand.rfind(" ")
            if cut < 0:
                break
            cand = cand[:cut]


# -- IPv6 ----------------------------------------------------------------------------

_V6_CHARS = frozenset("0123456789abcdefABCDEF:.")


# A colon followed by a hex digit or a colon: where an address may be (a literal
# first character, so the engine finds the few candidates in C).
_V6_SEED = re.compile(r":[0-9A-Fa-f:]")


def _ipv6(text: str) -> Iterable[Finding]:
    # An address written without "::" has all eight groups, so seven colons.
    if "::" not in text and text.count(":") < 7:
        return
    size = len(text)
    done = 0
    for m in _V6_SEED.finditer(text):
        i = m.start()
        if i < done:
            continue
        start, end = i, i
        while start > 0 and text[start - 1] in _V6_CHARS:
            start -= 1
        while end < size and text[end] in _V6_CHARS:
            end += 1
        done = end
        cand = text[start:end].rstrip(".")
        end = start + len(cand)
        before = text[start - 1] if start else " "
        after = text[end] if end < size else " "
        if (
            not (before.isalnum() or before == "_" or after.isalnum() or after == "_")
            and cand.count(":") >= 2
            and _HAS_DIGIT.search(cand) is not None  # "a::b" in C++ is not an address
        ):
            try:
                ipaddress.IPv6Address(cand)
            except ValueError:
                continue
            yield Finding(start, end, "ip")


# -- the scanner ---------------------------------------------------------------------


class Scanner:
    """Finds what the enabled detectors detect in a text.

    ``custom``: name -> compiled pattern of the ``[scrub.custom.NAME]`` detectors.
    ``region``: how numbers without a country code are read (ISO 3166 code).
    """

    def __init__(self, custom: Mapping[str, re.Pattern[str]] | None = None, region: str = "US"):
        self.custom = dict(custom or {})
        self.region = region
        # Secrets first, then the operator's own detectors, then the other built-ins.
        order = ["secret", *self.custom, *(d for d in BUILTIN if d != "secret")]
        self._rank = {name: i for i, name in enumerate(order)}

    def scan(self, text: str, enabled: frozenset[str]) -> list[Finding]:
        """Non-overlapping findings in text order."""
        found: list[Finding] = []
        if "secret" in enabled:
            found.extend(_secrets(text))
        if "email" in enabled and "@" in text:
            found.extend(_emails(text))
        if enabled & _NUMERIC:
            runs = _numbers(text, enabled, self.region, found)
            if "iban" in enabled and runs:
                found.extend(_ibans(text, runs))
        if "ip" in enabled:
            found.extend(_ipv6(text))
        for name, pattern in self.custom.items():
            if name in enabled:
                found.extend(
                    Finding(m.start(), m.end(), name)
                    for m in pattern.finditer(text)
                    if m.end() > m.start()
                )
        if len(found) < 2:
            return found
        rank = self._rank
        found.sort(key=lambda f: (f.start, rank[f.detector], -f.end))
        kept = [found[0]]
        for f in found[1:]:
            if f.start >= kept[-1].end:
                kept.append(f)
        return kept


_NUMERIC = frozenset({"card", "ssn", "ip", "phone", "iban"})

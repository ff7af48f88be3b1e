"""``[translation]``: how requests are translated between API families."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aigw.config.base import Reader, table


@dataclass(slots=True)
class TranslationConfig:
    """How requests are translated between API families."""

    # A parameter the target cannot honour and whose loss would change the meaning
    # (n > 1, logprobs...): True rejects the request with a 400, False drops it with
    # an x-aigw-warning header. Harmless ones (seed, user...) are always dropped.
    strict: bool = True
    # Anthropic requires max_tokens; used when an OpenAI or Gemini client sends none.
    default_max_tokens: int = 4096
    # A request field newer than this gateway, on a translated path: "warn" drops it
    # with an x-aigw-warning header (a field the real API accepts never fails here);
    # "refuse" rejects the request with a 400. Native paths pass it through either way.
    unknown_fields: str = "warn"


UNKNOWN_FIELDS = ("warn", "refuse")


def _read(r: Reader) -> TranslationConfig:
    d = TranslationConfig()
    cfg = TranslationConfig(
        strict=r.get("strict", bool, d.strict),
        default_max_tokens=r.get("default_max_tokens", int, d.default_max_tokens),
        unknown_fields=r.get("unknown_fields", str, d.unknown_fields),
    )
    if cfg.unknown_fields not in UNKNOWN_FIELDS:
        r.fail(
            "unknown_fields",
            f"must be one of {', '.join(UNKNOWN_FIELDS)} (got {cfg.unknown_fields!r})",
        )
    if cfg.default_max_tokens < 1:
        r.fail("default_max_tokens", f"must be at least 1 (got {cfg.default_max_tokens})")
    return cfg


def _write(t: TranslationConfig) -> dict[str, Any]:
    return {
        "strict": t.strict,
        "default_max_tokens": t.default_max_tokens,
        "unknown_fields": t.unknown_fields,
    }


TRANSLATION = table(
    "# Across API families (e.g. an OpenAI client, an Anthropic provider): strict = true\n"
    "# rejects a request with a parameter the target cannot honour when dropping it\n"
    "# would change the answer (n > 1, logprobs); false drops it with an x-aigw-warning\n"
    "# header. default_max_tokens is sent to Anthropic when a client sets no limit.\n"
    '# unknown_fields: a request field newer than aigw, on a translated path: "warn"\n'
    '# drops it with a warning, "refuse" answers 400 (native paths pass it through).',
    TranslationConfig,
    _read,
    _write,
)

"""Token usage, normalised across providers.

Providers count differently: OpenAI's ``prompt_tokens`` includes cached tokens,
Anthropic's ``input_tokens`` excludes cache reads and writes, Gemini reports thinking
tokens apart from output. Every adapter converts to this one shape so cost and the
ledger never need to know which provider answered.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Usage:
    """Tokens of one call. ``prompt_tokens`` counts *all* input tokens, including
    ``cached_tokens`` (cache reads) and ``cache_write_tokens`` (cache creation), of
    which ``cache_write_1h_tokens`` went to Anthropic's 1-hour cache (billed at its own
    rate); ``completion_tokens`` counts all output, including ``reasoning_tokens``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_from_openai(u: object) -> Usage | None:
    """Read an OpenAI ``usage`` object (chat completions, embeddings or responses)."""
    if not isinstance(u, dict):
        return None
    # Chat completions say prompt/completion; the Responses API says input/output.
    prompt = _int(u.get("prompt_tokens", u.get("input_tokens")))
    completion = _int(u.get("completion_tokens", u.get("output_tokens")))
    pdet = u.get("prompt_tokens_details") or u.get("input_tokens_details")
    cdet = u.get("completion_tokens_details") or u.get("output_tokens_details")
    cached = _int(pdet.get("cached_tokens")) if isinstance(pdet, dict) else 0
    # GPT-5.6/GPT-6 prompt caching bills writes (openai-python's PromptTokensDetails /
    # InputTokensDetails.cache_write_tokens); like cached_tokens, part of the prompt.
    writes = _int(pdet.get("cache_write_tokens")) if isinstance(pdet, dict) else 0
    reasoning = _int(cdet.get("reasoning_tokens")) if isinstance(cdet, dict) else 0
    return Usage(prompt, completion, cached, writes, reasoning)

"""Token estimates for when no tokenizer answer is available.

Two numbers per prompt (:func:`prompt`):

* ``tokens``, a typical estimate: about four characters a token for text, a flat
  1,000 for an image or an inline file. Used for tokens-per-minute limits and
  provider quotas (settled to the real count when the call ends), count_tokens for
  non-Anthropic targets, and the ledger when a provider reports no usage (flagged
  as estimated there).
* ``bound``, an upper bound for any input, used to reserve a call's worst case
  against a hard budget. No tokenizer yields more than one token per byte of UTF-8
  text (byte-level BPE and byte-fallback SentencePiece alike), so every string, key
  and number counts its bytes, plus a few for the JSON around it (which stands in
  for the provider's per-message template), plus what a provider adds for tools.
  Only a part the client's format declares an image (OpenAI ``image_url`` and
  ``input_image``, Anthropic ``image``, Gemini ``inlineData``/``fileData`` with an
  ``image/*`` type) counts a flat :data:`IMAGE_BOUND`: providers bill an image by
  its (capped) dimensions, not its bytes. A long string anywhere else is text, and
  billed as such, whatever it looks like.

Both walks are iterative, so a deeply nested request cannot exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

IMAGE_TOKENS = 1000
# The most tokens one image is billed at by the mainstream models: Anthropic resizes
# to ~1.15 megapixels (~1,600 tokens); OpenAI's tile models top out at 1,445 and its
# patch models at 1,536 patches x their multiplier (<= 2.46). gpt-4o-mini counts
# images 33x larger at a price 33x lower; Gemini tiles very large images further.
IMAGE_BOUND = 4000
PER_MESSAGE = 4
# A provider's tool-use system prompt (Anthropic: ~350 tokens) and the largest
# built-in tool definitions (Anthropic computer use: ~735 per tool).
TOOLS_BASE = 500
PER_TOOL = 800
_BLOB = 2000  # inside a declared file part, a string this long without a space is data
# What a prompt may cost when the request does not carry all of it: stored context
# (previous_response_id, cachedContent...) or server-side tools whose results are
# billed as input (web search, fetch, MCP). Admission caps it at the context window.
UNBOUNDED = 1 << 40

# Top-level request parameters that never reach the prompt (left out of the bound, so
# it does not depend on the model's name or on streaming).
_PARAMS = frozenset(
    [
        "model",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_k",
        "n",
        "seed",
        "user",
        "metadata",
        "service_tier",
        "store",
        "parallel_tool_calls",
        "logprobs",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
    ]
)
# Requests that pull in context the gateway cannot see.
_STORED = ("previous_response_id", "conversation", "prompt", "cachedContent", "cached_content")
_STORED_OR_MCP = frozenset((*_STORED, "mcp_servers"))
_SERVER_TOOL_TYPES = (
    "web_search",
    "web_fetch",
    "code_execution",
    "code_interpreter",
    "file_search",
    "mcp",
    "image_generation",
    "tool_search",
)
_SERVER_TOOL_KEYS = frozenset(
    [
        "googleSearch",
        "google_search",
        "googleSearchRetrieval",
        "google_search_retrieval",
        "codeExecution",
        "code_execution",
        "urlContext",
        "url_context",
        "fileSearch",
        "file_search",
    ]
)

Kind = Literal["chat", "responses", "messages", "gemini"]

# The fields whose text the typical estimate counts, per client format.
_FIELDS: dict[Kind, tuple[str, ...]] = {
    "chat": ("messages", "tools"),
    "responses": ("input", "instructions", "tools"),
    "messages": ("system", "messages", "tools"),
    "gemini": ("contents", "systemInstruction", "system_instruction", "tools"),
}


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int  # typical
    bound: int  # never less than what any provider bills for the prompt


def chars_to_tokens(chars: int) -> int:
    return (chars + 3) // 4


def text_tokens(text: str) -> int:
    return chars_to_tokens(len(text))


def _utf8(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


# A media map: id() of a part dict -> True for an image, False for another file.
Media = Mapping[int, bool]


def _walk(value: Any, media: Media) -> tuple[int, int]:
    """(typical tokens, byte bound) of every string inside ``value``; keys count only
    in the bound."""
    typical = bound = 0
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        v, in_file = stack.pop()
        if isinstance(v, str):
            bound += _utf8(v) + 2
            if in_file and len(v) > _BLOB and " " not in v[:_BLOB]:
                typical += IMAGE_TOKENS  # base64 data of a declared file part
            else:
                typical += chars_to_tokens(len(v))
        elif isinstance(v, dict):
            kind = media.get(id(v)) if media else None
            if kind is True:
                typical += IMAGE_TOKENS
                bound += IMAGE_BOUND
                continue
            bound += 2
            inner = in_file or kind is False
            for k, x in v.items():
                bound += _utf8(k) + 4 if isinstance(k, str) else 8
                stack.append((x, inner))
        elif isinstance(v, list):
            bound += 2
            for x in v:
                if isinstance(x, dict):
                    typical += PER_MESSAGE
                bound += 1
                stack.append((x, in_file))
        elif isinstance(v, bool) or v is None:
            bound += 5
        elif isinstance(v, int):
            bound += v.bit_length() // 3 + 2  # >= its decimal digits and sign
        else:
            bound += 32  # a float's shortest repr is at most 24 characters
    return typical, bound


def estimate(value: Any) -> int:
    """Typical tokens of every string inside ``value`` (a JSON-like tree)."""
    return _walk(value, {})[0]


def bound(value: Any) -> int:
    """Upper bound on the tokens of ``value`` with no part taken for an image."""
    return _walk(value, {})[1]


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _mark_openai_part(part: dict[str, Any], media: dict[int, bool]) -> None:
    t = part.get("type")
    if t in ("image_url", "input_image"):
        media[id(part)] = True
    elif t in ("file", "input_file", "input_audio"):
        media[id(part)] = False


def _mark_anthropic_block(block: dict[str, Any], media: dict[int, bool]) -> None:
    t = block.get("type")
    if t == "image":
        media[id(block)] = True
    elif t == "document":
        media[id(block)] = False
    elif t == "tool_result":
        for inner in _dicts(block.get("content")):
            _mark_anthropic_block(inner, media)


def _mark_gemini_part(part: dict[str, Any], media: dict[int, bool]) -> None:
    for key, mime_key in (
        ("inlineData", "mimeType"),
        ("inline_data", "mime_type"),
        ("fileData", "mimeType"),
        ("file_data", "mime_type"),
    ):
        blob = part.get(key)
        if isinstance(blob, dict):
            mime = blob.get(mime_key, blob.get("mimeType", blob.get("mime_type")))
            media[id(part)] = isinstance(mime, str) and mime.startswith("image/")
            return


def media_parts(body: Mapping[str, Any], kind: Kind) -> dict[int, bool]:
    """The parts of ``body`` its format declares an image (True) or a file (False),
    found only where the format puts them (a look-alike inside a tool call's
    arguments is text to the provider, and counted as text)."""
    media: dict[int, bool] = {}
    if kind == "chat":
        for m in _dicts(body.get("messages")):
            for part in _dicts(m.get("content")):
                _mark_openai_part(part, media)
    elif kind == "responses":
        for item in _dicts(body.get("input")):
            for part in _dicts(item.get("content")) + _dicts(item.get("output")):
                _mark_openai_part(part, media)
    elif kind == "messages":
        for m in _dicts(body.get("messages")):
            for block in _dicts(m.get("content")):
                _mark_anthropic_block(block, media)
    else:
        for c in _dicts(body.get("contents")):
            for part in _dicts(c.get("parts")):
                _mark_gemini_part(part, media)
    return media


def _server_tool(tool: dict[str, Any]) -> bool:
    t = tool.get("type")
    return (isinstance(t, str) and t.startswith(_SERVER_TOOL_TYPES)) or any(
        k in _SERVER_TOOL_KEYS for k in tool
    )


def prompt(body: Mapping[str, Any], kind: Kind) -> Estimate:
    """Typical estimate and upper bound of the prompt of a request in format ``kind``.

    The bound walks every field but plain parameters (response schemas and tool
    arguments reach the prompt too), not just the fields the estimate reads.
    """
    media = media_parts(body, kind)
    fields = _FIELDS[kind]
    typical, upper = 3, 16
    for k, v in body.items():  # one walk serves both numbers
        if k not in _PARAMS:
            t, b = _walk(v, media)
            upper += b + _utf8(k) + 4
            if k in fields:
                typical += t
    tools = _dicts(body.get("tools"))
    if tools:
        upper += TOOLS_BASE + PER_TOOL * len(tools)
    stored = not _STORED_OR_MCP.isdisjoint(body) and any(
        body.get(k) is not None for k in _STORED_OR_MCP
    )
    if stored or (tools and any(_server_tool(t) for t in tools)):
        upper = max(upper, UNBOUNDED)
    return Estimate(typical, upper)


def chat_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Estimate the prompt tokens of an OpenAI chat request."""
    return prompt(body, "chat").tokens

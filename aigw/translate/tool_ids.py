"""Tool-call ids across providers: minted where a provider gives none, and made safe
for Anthropic, reversibly.

* **Minting.** Gemini answers carry no call id (Gemini 3 may carry ``functionCall.id``,
  which is used when present). Numbering the calls of each answer from zero
  (``call_0``...) repeats ids in the next round, and Anthropic rejects a history whose
  ``tool_use`` ids repeat. :func:`mint` derives the id from a digest of the
  conversation the answer replies to (:func:`conversation_seed`), the call's position
  in the answer and its name: unique within a conversation (every round's history is
  longer than the last) and the same when the same history is replayed, so a retried
  request and a prompt-cached prefix see the same ids.
* **Anthropic's id pattern.** Anthropic requires ``^[a-zA-Z0-9_-]+$``; other servers
  mint ids such as ``functions.get_weather:0`` (Kimi and other OpenAI-compatible
  servers). :func:`to_anthropic` passes a conforming id through unchanged and encodes
  any other one as :data:`PREFIX` + unpadded base64url of its UTF-8 (an alphabet inside
  the pattern); :func:`from_anthropic` reverses it, so a client sees its own ids.
  A conforming id that happens to start with the prefix is encoded too, which keeps
  the mapping one-to-one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

import orjson

from aigw.translate.common import JSON

PREFIX = "aigwid_"
_ANTHROPIC_ID = re.compile(r"[a-zA-Z0-9_-]+")


def conversation_seed(request: JSON | None) -> str:
    """A digest of a hub request's messages: the conversation an answer replies to."""
    messages = request.get("messages") if isinstance(request, dict) else None
    if messages is None:
        return ""
    try:
        data = orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON (never from a parsed request); no seed
        return ""
    return hashlib.sha256(data).hexdigest()


def mint(seed: str, index: int, name: str) -> str:
    """The id of the ``index``-th call (named ``name``) of an answer to ``seed``."""
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{name}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def to_anthropic(call_id: str) -> str:
    """``call_id`` as Anthropic accepts it; :func:`from_anthropic` gives it back."""
    if _ANTHROPIC_ID.fullmatch(call_id) and not call_id.startswith(PREFIX):
        return call_id
    encoded = base64.urlsafe_b64encode(call_id.encode()).decode().rstrip("=")
    return PREFIX + encoded


def from_anthropic(call_id: str) -> str:
    """Undo :func:`to_anthropic`; any id it did not make is returned as it is."""
    if not call_id.startswith(PREFIX):
        return call_id
    body = call_id[len(PREFIX) :]
    try:
        original = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
    except (binascii.Error, ValueError):
        return call_id
    # Only an id this module made decodes to one that encodes back to it.
    return original if to_anthropic(original) == call_id else call_id

"""OpenAI chat completions / embeddings (the hub) <-> Google Gemini API (``v1beta``).

Covers ``generateContent``, ``streamGenerateContent?alt=sse`` and
``batchEmbedContents`` in both directions. Everything here is pure: dicts in, dicts out.
One module per direction, each holding the plain translator and, for answers, its
stream translator (they share the finish-reason, usage, logprob and tool-call mappings):

* :mod:`~aigw.translate.gemini.upstream_request`: hub request -> Gemini request.
* :mod:`~aigw.translate.gemini.upstream_response`: Gemini answer, stream objects and
  error body -> hub.
* :mod:`~aigw.translate.gemini.client_request`: a Gemini client's request -> hub.
* :mod:`~aigw.translate.gemini.client_response`: hub completion and chunks -> Gemini
  answer and stream objects.
* :mod:`~aigw.translate.gemini.embeddings`: embeddings, both ways.
* :mod:`~aigw.translate.gemini.shared`: helpers used by several.

Each module's docstring explains the design choices made there. Two span directions:

* **Thought signatures.** Gemini 3 rejects a replayed ``functionCall`` without its
  ``thoughtSignature``. Responses carry it to OpenAI clients the way Google's own
  OpenAI endpoint does, in ``tool_calls[].extra_content.google.thought_signature``;
  requests put it back. When a Gemini 3+ history has none (the client dropped it, or
  the calls came from another model), the documented ``skip_thought_signature_validator``
  sentinel is sent instead.
* **Tool call ids.** Gemini pairs calls and responses by position and name; the
  ``generateContent`` request schema rejects ``id`` on ``functionCall`` and
  ``functionResponse``, so ids are never sent. A ``functionCall.id`` in a response is
  reused as the OpenAI id, otherwise an id is minted from a digest of the conversation
  (:mod:`aigw.translate.tool_ids`: unique across rounds, stable on replay); a tool
  message's name is taken from the closest preceding assistant tool call with that id.
"""

from aigw.translate.gemini.client_request import gemini_to_chat_request
from aigw.translate.gemini.client_response import (
    ChatToGeminiStream,
    chat_to_gemini_response,
    sse_event,
)
from aigw.translate.gemini.embeddings import (
    embeddings_to_gemini_request,
    gemini_to_embeddings_response,
)
from aigw.translate.gemini.upstream_request import SKIP_SIGNATURE, chat_to_gemini_request
from aigw.translate.gemini.upstream_response import (
    GeminiToChatStream,
    gemini_to_chat_response,
    parse_gemini_error,
    usage_from_gemini,
)

__all__ = [
    "SKIP_SIGNATURE",
    "ChatToGeminiStream",
    "GeminiToChatStream",
    "chat_to_gemini_request",
    "chat_to_gemini_response",
    "embeddings_to_gemini_request",
    "gemini_to_chat_request",
    "gemini_to_chat_response",
    "gemini_to_embeddings_response",
    "parse_gemini_error",
    "sse_event",
    "usage_from_gemini",
]

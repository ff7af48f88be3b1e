"""Translation between OpenAI chat completions (the hub) and the Anthropic Messages API.

Pure code: request/response functions and two small stateful stream translators, no I/O.
One module per direction, each holding the plain translator and, for answers, its
stream translator (they share the finish-reason, usage and tool-call mappings):

* :mod:`~aigw.translate.anthropic.upstream_request`: hub request -> Anthropic request.
* :mod:`~aigw.translate.anthropic.upstream_response`: Anthropic message, SSE events and
  error body -> hub.
* :mod:`~aigw.translate.anthropic.client_request`: an Anthropic client's request -> hub.
* :mod:`~aigw.translate.anthropic.client_response`: hub completion and chunks ->
  Anthropic message and SSE events.
* :mod:`~aigw.translate.anthropic.shared`: constants and helpers used by several.

Each module's docstring explains the design choices made there. One spans directions:

* **JSON mode.** The stable Messages API has no ``response_format``. It is emulated with
  a forced call of a synthetic tool, :data:`JSON_TOOL_NAME`, whose ``input_schema`` is
  the requested schema (``{"type": "object"}`` for ``json_object``). The response
  translators turn that tool call back into message *content* (the JSON text) with
  finish_reason ``stop``, in both the plain and the streamed direction. When the
  client also offers tools with tool_choice ``auto``, the synthetic tool is added next
  to them with tool_choice ``any``: the model either calls a client tool or answers
  through the synthetic one. With ``required`` or a named tool the answer is a tool call
  anyway, so no synthetic tool is added. The name is namespaced so a client tool
  cannot be mistaken for it.
"""

from aigw.translate.anthropic.client_request import messages_to_chat_request
from aigw.translate.anthropic.client_response import (
    ChatToMessagesStream,
    chat_to_messages_response,
)
from aigw.translate.anthropic.shared import DEFAULT_VERSION, JSON_TOOL_NAME
from aigw.translate.anthropic.upstream_request import THINKING_BUDGETS, chat_to_messages_request
from aigw.translate.anthropic.upstream_response import (
    AnthropicStreamError,
    MessagesToChatStream,
    messages_to_chat_response,
    parse_anthropic_error,
    usage_from_anthropic,
)

__all__ = [
    "DEFAULT_VERSION",
    "JSON_TOOL_NAME",
    "THINKING_BUDGETS",
    "AnthropicStreamError",
    "ChatToMessagesStream",
    "MessagesToChatStream",
    "chat_to_messages_request",
    "chat_to_messages_response",
    "messages_to_chat_request",
    "messages_to_chat_response",
    "parse_anthropic_error",
    "usage_from_anthropic",
]

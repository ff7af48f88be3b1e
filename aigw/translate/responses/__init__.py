"""Translation between OpenAI chat completions (the hub) and the OpenAI Responses API.

For clients that speak the Responses API (openai-agents, Codex CLI, ``client.responses``)
when the target provider does not serve it. Pure code, one module per direction:

* :mod:`~aigw.translate.responses.client_request`: a Responses request -> hub request.
* :mod:`~aigw.translate.responses.client_response`: hub completion and chunks ->
  Responses ``response`` object and stream events.
"""

from aigw.translate.responses.client_request import BUILTIN_TOOLS, responses_to_chat_request
from aigw.translate.responses.client_response import (
    ChatToResponsesStream,
    chat_to_response,
    responses_usage,
)

__all__ = [
    "BUILTIN_TOOLS",
    "ChatToResponsesStream",
    "chat_to_response",
    "responses_to_chat_request",
    "responses_usage",
]

"""Client-facing wire formats: validating requests, encoding answers.

Each format knows its own wire (for the error envelope), how to validate a request
into a :class:`Call`, and how to convert to and from the hub format (OpenAI chat
completions) when the target speaks another API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aigw.errors import GatewayError, Wire

if TYPE_CHECKING:  # the CLI validates names through this package: keep it light
    from aigw.translate.common import Translated, TranslateOptions

JSON = dict[str, Any]


@dataclass(slots=True)
class Call:
    """A validated request, in the client's own format."""

    model: str
    stream: bool
    body: JSON
    wants_usage: bool = False  # OpenAI: the client asked for stream_options.include_usage
    prompt_estimate: int = 0
    max_output: int | None = None
    array: bool = False  # Gemini streamGenerateContent without alt=sse: answer a JSON array
    # Upper bound on the prompt's tokens for any tokenizer (aigw.tokens); None: the
    # handler bounds the whole body, taking no part for an image.
    prompt_bound: int | None = None


class ClientStream(Protocol):
    """Encodes hub chunks as the client's stream events."""

    def feed(self, chunk: JSON) -> bytes: ...

    def finish(self, usage_chunk: JSON) -> bytes:
        """The end of the stream, given the final usage chunk."""
        ...


class ClientFormat(Protocol):
    wire: Wire

    def to_hub(self, call: Call, opts: TranslateOptions) -> Translated:
        """The request in the hub format, with the warnings of what was dropped.

        ``opts.strict``: refuse (TranslationError) a loss that changes the answer."""
        ...

    def from_hub(self, hub: JSON, model: str) -> JSON: ...

    def stream(self, call: Call, model: str) -> ClientStream: ...

    def stream_error(self, err: GatewayError) -> bytes: ...

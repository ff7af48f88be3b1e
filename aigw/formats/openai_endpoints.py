"""OpenAI's embeddings and Responses API requests, as clients send them."""

from __future__ import annotations

from typing import Any

from aigw.errors import bad_request
from aigw.formats import Call
from aigw.formats.validate import check, describe, required_model, shown
from aigw.tokens import bound, estimate, prompt


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(
            f"The request body must be a JSON object, got {describe(body)}.", code="invalid_body"
        )
    return body


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _valid_input(data: object) -> bool:
    """A string, or a non-empty array of strings, token ids or token-id arrays."""
    if isinstance(data, str):
        return True
    if not isinstance(data, list) or not data:
        return False
    return all(
        isinstance(x, str) or _is_int(x) or (isinstance(x, list) and all(map(_is_int, x)))
        for x in data
    )


def _input_tokens(data: Any) -> int:
    """Strings are estimated; token ids count one each."""
    if isinstance(data, str):
        return estimate(data)
    return sum(len(x) if isinstance(x, list) else 1 if _is_int(x) else estimate(x) for x in data)


def parse_embeddings(body: Any) -> Call:
    body = _object(body)
    model = required_model(body)
    data = body.get("input")
    if not _valid_input(data):
        raise bad_request(
            "Invalid 'input': expected a string, an array of strings, or "
            f"token arrays, got {describe(data)}.",
            param="input",
            code="invalid_type",
        )
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad_request(
            f"Invalid 'encoding_format': {shown(fmt)}; expected 'float' or 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    check(body, "dimensions", int, minimum=1)
    # A token id is one token; text is bounded by its bytes.
    return Call(model, False, body, False, _input_tokens(data), 0, prompt_bound=bound(data))


def parse_responses(body: Any) -> Call:
    body = _object(body)
    model = required_model(body)
    data = body.get("input")
    if data is not None and not isinstance(data, (str, list)):
        raise bad_request(
            f"Invalid type for 'input': expected a string or an array, got {describe(data)}.",
            param="input",
            code="invalid_type",
        )
    stream = bool(check(body, "stream", bool))
    limit = check(body, "max_output_tokens", int, minimum=1)
    check(body, "temperature", float, minimum=0, maximum=2)
    est = prompt(body, "responses")
    return Call(model, stream, body, False, est.tokens, limit, prompt_bound=est.bound)

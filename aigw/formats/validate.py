"""Small type checks that turn bad fields into clear 400s naming the field."""

from __future__ import annotations

import re
from typing import Any

from aigw.errors import bad_request, shorten

_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "an object",
}


def describe(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def shown(value: object, limit: int = 80) -> str:
    """A client value quoted in an error message: its repr, cut to ``limit`` characters."""
    return shorten(repr(value), limit)


def check(
    body: dict[str, Any],
    name: str,
    kind: type,
    *,
    nullable: bool = True,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """Return ``body[name]`` if absent/None or of ``kind`` (and in range); else raise 400."""
    value = body.get(name)
    if value is None:
        return None
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        want = _TYPE_NAMES.get(kind, kind.__name__)
        raise bad_request(
            f"Invalid type for '{name}': expected {want}, got {describe(value)}.",
            param=name,
            code="invalid_type",
        )
    if minimum is not None and value < minimum:
        raise bad_request(
            f"Invalid value for '{name}': {value} is below the minimum {minimum:g}.",
            param=name,
            code="invalid_value",
        )
    if maximum is not None and value > maximum:
        raise bad_request(
            f"Invalid value for '{name}': {value} is above the maximum {maximum:g}.",
            param=name,
            code="invalid_value",
        )
    return value


def required_string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise bad_request(
            f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
        )
    if not isinstance(value, str) or not value:
        raise bad_request(
            f"Invalid type for '{name}': expected a non-empty string, got {describe(value)}.",
            param=name,
            code="invalid_type",
        )
    return value


# Model names reach upstream URLs (Gemini puts them in the path), response headers,
# logs and the ledger, so they are held to a character set every real name fits:
# gpt-4o, ft:gpt-4o-mini:org:custom:abc, meta-llama/Llama-3-70b,
# claude-sonnet-4-5@20250929, models/gemini-2.0-flash, llama3:8b.
MAX_MODEL_NAME = 256
_MODEL_NAME = re.compile(rf"[A-Za-z0-9._:/@+-]{{1,{MAX_MODEL_NAME}}}")
# All of model_problem's rules in one match, for the common case of a valid name.
_VALID_MODEL_NAME = re.compile(
    r"(?!/)(?!.*//)(?!.*\.\.)(?!(?:.*/)?\.(?:/|$))"
    rf"[A-Za-z0-9._:/@+-]{{1,{MAX_MODEL_NAME}}}(?<!/)"
)


def model_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable model name; None when it is."""
    if not _MODEL_NAME.fullmatch(name):
        if not name or len(name) > MAX_MODEL_NAME:
            return f"it must be 1 to {MAX_MODEL_NAME} characters long"
        return "it may contain only letters, digits and . _ : / @ + -"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it may not start or end with '/' or contain '//'"
    if ".." in name or any(seg == "." for seg in name.split("/")):
        return "it may not contain '..' or a '.' path segment"
    return None


def model_name(value: object, *, param: str = "model") -> str:
    """``value`` as a model name, or a 400 ``invalid_model`` naming ``param``."""
    if value is None:
        raise bad_request(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    if not isinstance(value, str) or not value:
        raise bad_request(
            f"Invalid type for '{param}': expected a non-empty string, got {describe(value)}.",
            param=param,
            code="invalid_type",
        )
    if _VALID_MODEL_NAME.fullmatch(value):
        return value
    problem = model_problem(value)
    if problem is not None:
        # The name itself is not quoted back: it is what failed validation.
        raise bad_request(f"Invalid model name: {problem}.", param=param, code="invalid_model")
    return value


def required_model(body: dict[str, Any], name: str = "model") -> str:
    """The body's model field, validated with :func:`model_name`."""
    return model_name(body.get(name), param=name)

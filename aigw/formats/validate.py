"""Small type checks that turn bad fields into clear 400s naming the field."""

from __future__ import annotations

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

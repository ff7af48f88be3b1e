"""Editing an existing ``config.toml`` in place, keeping the operator's comments.

``aigw init`` writes a fresh, commented file (:func:`aigw.config.render`). Every later
command that changes the configuration (``aigw providers add``/``remove``...) goes
through :func:`update`: it parses the file as it is on disk with tomlkit (which keeps
comments, blank lines and key order), compares what the file meant before with what
the command wants now, and touches only the keys that differ. A new section gets the
same explanatory comment ``render`` writes; a deleted named table (a removed provider)
is removed with its body; a changed value is replaced where it stands, keeping a
comment trailing it.
"""

from __future__ import annotations

from typing import Any

import tomli_w
import tomlkit
from tomlkit.container import Container
from tomlkit.items import InlineTable, Item, Table

_MISSING = object()


def update(text: str, old: dict[str, Any], new: dict[str, Any], comments: dict[str, str]) -> str:
    """``text`` (which parses to ``old``) edited to mean ``new``.

    ``comments`` maps a top-level table name to the comment block written above it
    when the table is not in the file yet."""
    doc = tomlkit.parse(text)
    added: dict[str, Any] = {}
    _apply(doc, old, new, added)
    # A removed table leaves the blank line that preceded it: end with one newline.
    out = doc.as_string().rstrip("\n") + "\n"
    for key, value in added.items():  # new sections go at the end, as `render` writes them
        body = tomli_w.dumps({key: value}).strip() if value else f"[{key}]"
        out = out.rstrip("\n") + "\n\n" + comments.get(key, "") + body + "\n"
    return out.lstrip("\n")


def _apply(
    container: Container | Table | Any,
    old: dict[str, Any],
    new: dict[str, Any],
    added: dict[str, Any] | None = None,
) -> None:
    for key in old:
        if key not in new and key in container:
            del container[key]
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before == value:
            continue
        if isinstance(value, dict) and isinstance(before, dict) and key in container:
            _apply(container[key], before, value)
        elif key in container:
            _replace(container, key, value)
        elif added is not None:  # a top-level section the file lacks
            added[key] = value
        else:
            container[key] = _new(container, value)


def _replace(container: Any, key: str, value: Any) -> None:
    """Set ``container[key]`` keeping a comment that trails the old value."""
    old = container[key]
    item: Item = _new(container, value)
    if isinstance(old, Item) and not isinstance(value, dict) and old.trivia.comment:
        item.trivia.comment_ws = old.trivia.comment_ws
        item.trivia.comment = old.trivia.comment
    container[key] = item


def _new(container: Any, value: Any) -> Item:
    """``value`` as an item for ``container``: a dict in an inline table stays inline."""
    if not isinstance(value, dict):
        item: Item = tomlkit.item(value)
        return item
    return _inline(value) if isinstance(container, InlineTable) else _table(value)


def _inline(value: dict[str, Any]) -> InlineTable:
    table = tomlkit.inline_table()
    for k, v in value.items():
        table.append(k, _inline(v) if isinstance(v, dict) else v)
    return table


def _table(value: dict[str, Any]) -> Table:
    """A standard (not inline) table; one holding only tables is a super table, so
    ``[providers.openai]`` is written without an empty ``[providers]`` header."""
    only_tables = bool(value) and all(isinstance(v, dict) for v in value.values())
    table = tomlkit.table(is_super_table=only_tables)
    for k, v in value.items():
        table.add(k, _table(v) if isinstance(v, dict) else v)
    return table

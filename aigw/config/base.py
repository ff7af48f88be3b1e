"""What every config section is made of: the checked table reader and the Section record.

A section module declares its dataclass, a reader (TOML table -> dataclass, with every
check), a writer (dataclass -> TOML table) and the comment written above it, and
bundles them into one :class:`Section`. ``Config`` in ``aigw/config/__init__.py`` lists
the sections, one field each; reading, writing and ordering follow from that list.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aigw.errors import ConfigError

T = TypeVar("T")
E = TypeVar("E")

# The key under which a Config field's metadata holds its Section.
SECTION_KEY = "aigw.section"


class Reader:
    """Reads one table, checking types and rejecting unknown keys."""

    def __init__(self, where: str, table: object, dotted: str) -> None:
        self.where = where
        self.dotted = dotted
        if not isinstance(table, dict):
            self.fail("", "must be a table")
        self.table: dict[str, Any] = table  # type: ignore[assignment]
        self.seen: set[str] = set()

    def fail(self, key: str, problem: str) -> None:
        name = f"{self.dotted}.{key}" if key and self.dotted else (key or self.dotted)
        raise ConfigError(f"{self.where}: {name}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.seen.add(key)
        if key not in self.table:
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__.replace("str", "string") for k in kinds)
            self.fail(key, f"must be a {names} (got {value!r})")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value: float = self.get(key, float, default)
        if not math.isfinite(value) or value < minimum:
            self.fail(key, f"must be a number >= {minimum:g} (got {value!r})")
        return value

    def strings(self, key: str) -> dict[str, str]:
        value = self.get(key, dict, {})
        for k, v in value.items():
            if not isinstance(v, str):
                self.fail(f"{key}.{k}", f"must be a string (got {v!r})")
        return dict(value)

    def done(self) -> None:
        for key in self.table:
            if key not in self.seen:
                self.fail(key, "unknown setting")


class Parsed:
    """The sections read so far, for a section that refers to an earlier one
    (a model names a provider): ``parsed[PROVIDERS]``."""

    def __init__(self) -> None:
        self._values: dict[Section[Any], Any] = {}

    def __getitem__(self, section: Section[T]) -> T:
        value: T = self._values[section]
        return value

    def __setitem__(self, section: Section[T], value: T) -> None:
        self._values[section] = value


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Section(Generic[T]):
    """One ``[table]`` of config.toml. Its name is its field's name in ``Config``.

    ``read`` gets a reader over the table (checked to be one) and must read every key it
    accepts; unread keys are then reported as unknown. ``write`` returns the table with
    its defaults spelled out, so a user sees them in the written file.
    """

    comment: str  # written above the table, each line starting with "# "
    default: Callable[[], T]
    read: Callable[[Reader, Parsed], T]
    write: Callable[[T], dict[str, Any]]

    def field(self) -> T:
        """This section as a field of ``Config``: its default, and itself in the metadata."""
        return dataclasses.field(default_factory=self.default, metadata={SECTION_KEY: self})


def table(
    comment: str,
    default: Callable[[], T],
    read: Callable[[Reader], T],
    write: Callable[[T], dict[str, Any]],
) -> Section[T]:
    """A section that is one table of settings, e.g. ``[server]``."""
    return Section(comment, default, lambda r, _parsed: read(r), write)


def named(
    comment: str,
    read: Callable[[Reader, str, Parsed], E],
    write: Callable[[E], dict[str, Any]],
    *,
    check_name: Callable[[str], str | None] | None = None,
) -> Section[dict[str, E]]:
    """A section of named entries, e.g. ``[providers.NAME]``: ``read`` and ``write`` do one.

    ``check_name`` returns why a name is refused, checked before the entry is read.
    """

    def read_all(r: Reader, parsed: Parsed) -> dict[str, E]:
        entries: dict[str, E] = {}
        for name, raw in r.table.items():
            r.seen.add(name)
            problem = check_name(name) if check_name is not None else None
            if problem is not None:  # spelled out: r.fail(name, ...) drops an empty name
                raise ConfigError(f"{r.where}: {r.dotted}.{name}: {problem}")
            entry = Reader(r.where, raw, f"{r.dotted}.{name}")
            entries[name] = read(entry, name, parsed)
            entry.done()
        return entries

    def write_all(entries: dict[str, E]) -> dict[str, Any]:
        return {name: write(entry) for name, entry in entries.items()}

    return Section(comment, dict, read_all, write_all)

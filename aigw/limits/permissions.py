"""Model permissions: which models a key may use (``--models`` globs on keys and teams)."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from functools import partial

from aigw.config import ModelConfig
from aigw.memo import Memo
from aigw.model import KeyRecord, TeamRecord


class ModelPermissions:
    """Answers :meth:`allows`, remembering each (globs, model) answer."""

    def __init__(self, aliases: Mapping[str, ModelConfig]) -> None:
        self.aliases = aliases  # [models."ALIAS"] of the config
        self._memos: dict[tuple[str, ...], Memo[str, bool]] = {}

    def allows(self, key: KeyRecord, team: TeamRecord | None, model: str) -> bool:
        """Whether ``key`` may use ``model``: it must match one of the key's ``--models``
        globs and one of its team's (no globs = any model). An alias also matches by
        the PROVIDER/MODEL of any of its targets."""
        for globs in (key.limits.models, team.limits.models if team else None):
            if globs is not None and not self._matches(globs, model):
                return False
        return True

    def _matches(self, globs: tuple[str, ...], model: str) -> bool:
        memo = self._memos.get(globs)
        if memo is None:
            # Keyed by client-chosen model names: bounded in size (aigw.memo).
            memo = self._memos[globs] = Memo(partial(self._match, globs), len)
        return memo(model)

    def _match(self, globs: tuple[str, ...], model: str) -> bool:
        names = [model]
        alias = self.aliases.get(model)
        if alias is not None:
            names.extend(f"{t.provider}/{t.model}" for t in alias.targets)
        return any(fnmatch.fnmatchcase(n, g) for n in names for g in globs)

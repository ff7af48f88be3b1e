"""Step 5, scrub: personal data and secrets in what the provider would see.

Every text of the request (:mod:`aigw.scrub.visit`) goes through the detectors; what
they find is redacted (a placeholder per value), blocked (400 ``content_blocked``) or
only counted, per the config's actions with the caller's team's and then key's
overrides on top. The counts per detector go to ``ctx.scrub_counts``. When something
was redacted and ``[scrub] restore`` is on, ``ctx.restorer`` puts the values back in
the answer: the forward step's JSON answers and its stream relay consult it, whatever
produced the answer.
"""

from __future__ import annotations

import re

from aigw.config.scrub import ScrubConfig
from aigw.model import KeyRecord, TeamRecord
from aigw.pipeline.context import Context
from aigw.scrub.detectors import Scanner
from aigw.scrub.redact import Overrides, Policy, Redactor, content_blocked, make_policy
from aigw.scrub.restore import STREAM_KINDS, Restorer
from aigw.scrub.visit import VISITORS

# Policies of the (team, key) override pairs seen, so a request only looks one up.
_MAX_POLICIES = 4096


class Scrub:
    """The scrub step, built once with the config and a way to find a key's team."""

    def __init__(self, config: ScrubConfig) -> None:
        self.restore = config.restore
        self.scanner = Scanner(
            {name: re.compile(c.pattern) for name, c in config.custom.items()},
            config.phone_region,
        )
        self.actions = {
            **config.actions,
            **{name: c.action for name, c in config.custom.items()},
        }
        self.base = make_policy(self.actions)
        self._policies: dict[tuple[Overrides | None, Overrides | None], Policy] = {}

    def policy(self, key: KeyRecord, team: TeamRecord | None) -> Policy:
        team_scrub = team.limits.scrub if team is not None else None
        key_scrub = key.limits.scrub
        if team_scrub is None and key_scrub is None:
            return self.base
        pair = (team_scrub, key_scrub)
        policy = self._policies.get(pair)
        if policy is None:
            if len(self._policies) >= _MAX_POLICIES:
                self._policies.clear()
            policy = self._policies[pair] = make_policy(self.actions, team_scrub, key_scrub)
        return policy

    async def __call__(self, ctx: Context) -> None:
        if ctx.plan is not None:
            return  # scrubbed as the identical call it repeats (aigw.cache.plans)
        assert ctx.key is not None and ctx.call is not None
        policy = self.policy(ctx.key, ctx.team)
        visitor = VISITORS.get(ctx.endpoint)
        if not policy.enabled or visitor is None:
            return
        redactor = Redactor(self.scanner, policy)
        visitor(ctx.call.body, redactor.text)
        if redactor.counts:
            ctx.scrub_counts.update(redactor.counts)
        if redactor.blocked:
            raise content_blocked(sorted(redactor.blocked))
        if self.restore and redactor.originals:
            ctx.restorer = Restorer(redactor.originals, STREAM_KINDS.get(ctx.endpoint))

"""The model listings: every routable model the caller's key may use, in the format
of the client's API (OpenAI, Anthropic or Gemini), as a list or one model.

What a provider serves comes from its own models endpoint, refreshed in the
background (:mod:`aigw.providers.catalog`); a listing never waits for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from aigw.errors import GatewayError, Wire
from aigw.formats import model_list as fmt
from aigw.formats.model_list import Listed
from aigw.model import KeyRecord
from aigw.pipeline.context import Context
from aigw.providers.base import ModelInfo
from aigw.routing.targets import Permission, Router

_LISTS: dict[Wire, Callable[[Sequence[Listed], Mapping[str, str]], dict[str, Any]]] = {
    Wire.OPENAI: lambda models, query: fmt.openai_list(models),
    Wire.ANTHROPIC: fmt.anthropic_list,
    Wire.GOOGLE: fmt.gemini_list,
}
_ONE: dict[Wire, Callable[[Listed], dict[str, Any]]] = {
    Wire.OPENAI: fmt.openai_model,
    Wire.ANTHROPIC: fmt.anthropic_model,
    Wire.GOOGLE: fmt.gemini_model,
}


class ListModels:
    """The step that answers a listing (``ctx.model`` unset) or names one model."""

    def __init__(self, router: Router, allows_model: Permission) -> None:
        self.router = router
        self.allows_model = allows_model

    def info(self, owner: str, upstream: str) -> ModelInfo:
        provider = self.router.providers.get(owner)
        found = provider.infos.get(upstream) if provider is not None else None
        return found or ModelInfo(upstream)

    def listed(self, key: KeyRecord) -> list[Listed]:
        aliases = self.router.config.models
        out = []
        for model_id, owner in self.router.model_ids():
            if self.allows_model(key, model_id):
                alias = aliases.get(model_id)
                upstream = alias.model if alias is not None else model_id.partition("/")[2]
                out.append(Listed(model_id, owner, self.info(owner, upstream)))
        return out

    def find(self, key: KeyRecord, name: str) -> Listed:
        """One model by its listed id, or by any name that routes to a model its
        provider lists (``gemini-2.5-flash`` for ``gemini/gemini-2.5-flash``)."""
        for m in self.listed(key):
            if m.id == name:
                return m
        try:
            target = self.router.route(name).first
        except GatewayError:
            target = None
        if target is not None and self.allows_model(key, name):
            info = target.provider.infos.get(target.upstream_model)
            if info is not None:
                return Listed(name, target.provider.name, info)
        raise GatewayError(
            404,
            f"The model '{name}' is not found on this gateway (or this key may not use "
            "it); list the models to see which it may.",
            code="model_not_found",
            param="model",
        )

    async def __call__(self, ctx: Context) -> None:
        key, request = ctx.key, ctx.request
        assert key is not None and request is not None
        if ctx.model is None:
            body = _LISTS[ctx.wire](self.listed(key), request.rel_url.query)
        else:
            body = _ONE[ctx.wire](self.find(key, ctx.model))
        ctx.response = web.Response(
            body=orjson.dumps(body),
            content_type="application/json",
            headers={"x-request-id": ctx.request_id},
        )

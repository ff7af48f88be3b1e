"""GET /v1/models: the models the caller's key may use."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from aigw.pipeline.context import Context
from aigw.routing.targets import Permission, Router


class ListModels:
    """The step that answers a listing: every routable model the key may use."""

    def __init__(self, router: Router, allows_model: Permission) -> None:
        self.router = router
        self.allows_model = allows_model

    async def __call__(self, ctx: Context) -> None:
        key = ctx.key
        assert key is not None
        created = int(time.time())
        data = [
            {"id": model_id, "object": "model", "created": created, "owned_by": owner}
            for model_id, owner in self.router.model_ids()
            if self.allows_model(key, model_id)
        ]
        ctx.response = web.Response(
            body=orjson.dumps({"object": "list", "data": data}),
            content_type="application/json",
            headers={"x-request-id": ctx.request_id},
        )

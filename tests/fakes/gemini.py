"""A fake Gemini API (``v1beta``): generateContent, streamGenerateContent, embeddings,
countTokens, and the model list (models.list, paged; models.get).

The provider base URL is ``fake.base_url``; clients append ``/v1beta/models/...``.
Streams are framed as Google frames them: ``data: {json}\\r\\n\\r\\n`` per event, no
terminator; without ``?alt=sse`` the stream endpoint answers one JSON array.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import DieMidStream, Fail, FakeUpstream, Hang, Inject, Reply

# HTTP status -> google.rpc status string, as in Google's error envelope.
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _usage(r: Reply, completion: int | None = None) -> dict[str, Any]:
    """Reply.usage in Gemini's terms: candidates exclude thoughts, prompt includes cache."""
    u = r.usage
    done = u.completion_tokens if completion is None else completion
    meta: dict[str, Any] = {
        "promptTokenCount": u.prompt_tokens,
        "candidatesTokenCount": max(done - u.reasoning_tokens, 0),
        "totalTokenCount": u.prompt_tokens + done,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": u.prompt_tokens}],
    }
    if u.cached_tokens:
        meta["cachedContentTokenCount"] = u.cached_tokens
    if u.reasoning_tokens:
        meta["thoughtsTokenCount"] = u.reasoning_tokens
    return meta


def _call_parts(r: Reply) -> list[dict[str, Any]]:
    return [{"functionCall": {"name": name, "args": args}} for name, args in r.tool_calls]


# Entries of a real GET https://generativelanguage.googleapis.com/v1beta/models answer
# (a curl transcript kept in a public repository, December 2025), trimmed to five:
# chat, embedding, and an image model the gateway cannot serve (predict).
GEMINI_MODELS: list[dict[str, Any]] = [
    {
        "name": "models/gemini-2.5-flash",
        "version": "001",
        "displayName": "Gemini 2.5 Flash",
        "description": "Stable version of Gemini 2.5 Flash, our mid-size multimodal model "
        "that supports up to 1 million tokens, released in June of 2025.",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": [
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    },
    {
        "name": "models/gemini-2.5-pro",
        "version": "2.5",
        "displayName": "Gemini 2.5 Pro",
        "description": "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": [
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    },
    {
        "name": "models/gemini-flash-latest",
        "version": "Gemini Flash Latest",
        "displayName": "Gemini Flash Latest",
        "description": "Latest release of Gemini Flash",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": [
            "generateContent",
            "countTokens",
            "createCachedContent",
            "batchGenerateContent",
        ],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    },
    {
        "name": "models/imagen-4.0-generate-001",
        "version": "001",
        "displayName": "Imagen 4",
        "description": "Vertex served Imagen 4.0 model",
        "inputTokenLimit": 480,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["predict"],
    },
    {
        "name": "models/gemini-embedding-001",
        "version": "001",
        "displayName": "Gemini Embedding 001",
        "description": "Obtain a distributed representation of a text.",
        "inputTokenLimit": 2048,
        "outputTokenLimit": 1,
        "supportedGenerationMethods": [
            "embedContent",
            "countTextTokens",
            "countTokens",
            "asyncBatchEmbedContent",
        ],
    },
]


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(obj),
        headers={"Content-Type": "application/json; charset=UTF-8", **(headers or {})},
    )


class FakeGemini(FakeUpstream):
    """Speaks https://generativelanguage.googleapis.com. Use ``base_url`` as the provider URL.

    ``api_key``: when set, any other key gets Google's 400 ``API_KEY_INVALID``; a
    request with no key at all gets 403 ``PERMISSION_DENIED`` either way.
    """

    def __init__(
        self, api_key: str | None = None, model_list: list[dict[str, Any]] | None = None
    ) -> None:
        self.api_key = api_key
        self.model_list = GEMINI_MODELS if model_list is None else model_list
        super().__init__()

    def add_routes(self, app: web.Application) -> None:
        # aiohttp cannot route on "model:method" directly; take the whole segment.
        # Google serves the same methods under v1 (the google-genai SDK's default) too.
        for version in ("v1beta", "v1", "v1alpha"):
            app.router.add_get(f"/{version}/models", self.list_models)
            app.router.add_get(f"/{version}/models/{{target}}", self.get_model)
            app.router.add_post(f"/{version}/models/{{target}}", self.dispatch)

    @staticmethod
    def error(
        status: int,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        err: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _STATUS.get(status, "UNKNOWN"),
        }
        if details:
            err["details"] = details
        return _json({"error": err}, status, headers)

    def fail(self, b: Fail) -> web.Response:
        if b.body is not None:
            return web.Response(
                status=b.status,
                body=b.body,
                headers={"Content-Type": "application/json; charset=UTF-8", **b.headers},
            )
        return self.error(b.status, b.message, headers=b.headers)

    def auth_error(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return self.error(
                403,
                "Method doesn't allow unregistered callers (callers without established identity)."
                " Please use API Key or other form of API consumer identity to call this API.",
            )
        if self.api_key is not None and key != self.api_key:
            return self.error(
                400,
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )
        return None

    # -- models.list, models.get ------------------------------------------------------
    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """Paged as Google pages: ``pageSize`` (default 50, at most 1000) and an
        opaque ``nextPageToken``, absent on the last page."""
        rec, fail = await self.record_listing(request)
        if fail is not None:
            return self.fail(fail)
        denied = self.auth_error(request)
        if denied is not None:
            return denied
        try:
            size = min(int(rec.query.get("pageSize", "50")), 1000)
            start = int(base64.b64decode(rec.query.get("pageToken", "MA==")).decode())
        except ValueError:
            return self.error(400, "Invalid page token or page size.")
        page = self.model_list[start : start + max(size, 1)]
        body: dict[str, Any] = {"models": page} if page else {}
        end = start + len(page)
        if end < len(self.model_list):
            body["nextPageToken"] = base64.b64encode(str(end).encode()).decode()
        return _json(body)

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        await self.record_listing(request)
        denied = self.auth_error(request)
        if denied is not None:
            return denied
        name = "models/" + request.match_info["target"]
        for m in self.model_list:
            if m["name"] == name:
                return _json(m)
        return self.error(404, f"{name} is not found for API version v1beta.")

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)
        denied = self.auth_error(request)
        if denied is not None:
            return denied
        model, _, method = request.match_info["target"].rpartition(":")
        if not model or method not in {
            "generateContent",
            "streamGenerateContent",
            "batchEmbedContents",
            "embedContent",
            "countTokens",
        }:
            return self.error(404, f"Method not found: {request.match_info['target']}.")
        if not isinstance(rec.body, dict):
            return self.error(400, "Invalid JSON payload received.")
        if method == "countTokens":
            return _json(self.count_tokens(rec.body))
        b = self.next_behavior(rec.body)
        if isinstance(b, Fail):
            return self.fail(b)
        if isinstance(b, Hang):
            await self.hang(b)
            return self.error(504, "Deadline expired before operation could complete.")
        reply = b if isinstance(b, Reply) else Reply()
        if reply.first_delay:
            await asyncio.sleep(reply.first_delay)
        if reply.gate is not None:
            await reply.gate.wait()
        if method == "batchEmbedContents":
            return self.batch_embed(rec.body)
        if method == "embedContent":
            dims = rec.body.get("outputDimensionality")
            if isinstance(dims, int) and dims > 3072:  # the real API's limit
                return self.error(400, f"* outputDimensionality: {dims} is above 3072\n")
            return _json({"embedding": {"values": self.vector(0, rec.body)}})
        if method == "generateContent":
            return _json(self.response(model, reply))
        return await self.stream(request, model, reply, b, rec.query.get("alt") == "sse")

    # -- generateContent ----------------------------------------------------------------
    def _rid(self) -> str:
        return hashlib.sha1(str(len(self.requests)).encode()).hexdigest()[:23]

    def response(self, model: str, reply: Reply) -> dict[str, Any]:
        parts: list[dict[str, Any]] = (
            _call_parts(reply) if reply.tool_calls else [{"text": reply.text}]
        )
        if reply.thought:
            parts.insert(0, {"text": reply.thought, "thought": True})
        return {
            "candidates": [
                {"content": {"parts": parts, "role": "model"}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": _usage(reply),
            "modelVersion": model,
            "responseId": self._rid(),
        }

    def events(self, model: str, reply: Reply) -> list[dict[str, Any]]:
        """The stream as Google sends it: running usage on every chunk, whole calls."""
        rid = self._rid()

        def event(parts: list[dict[str, Any]], done: int, finish: bool) -> dict[str, Any]:
            cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish:
                cand["finishReason"] = "STOP"
            return {
                "candidates": [cand],
                "usageMetadata": _usage(reply, done),
                "modelVersion": model,
                "responseId": rid,
            }

        total = reply.usage.completion_tokens
        # Google sends the thought summary whole, in an event of its own, first.
        head = (
            [event([{"text": reply.thought, "thought": True}], reply.usage.reasoning_tokens, False)]
            if reply.thought
            else []
        )
        if reply.tool_calls:
            return [*head, event(_call_parts(reply), total, True)]
        pieces = self.words(reply.text, 8)
        return [
            *head,
            *(
                event(
                    [{"text": p}],
                    min(total, reply.usage.reasoning_tokens + i + 1),
                    i == len(pieces) - 1,
                )
                for i, p in enumerate(pieces[:-1])
            ),
            event([{"text": pieces[-1]}], total, True),
        ]

    async def stream(
        self, request: web.Request, model: str, reply: Reply, b: object, sse: bool
    ) -> web.StreamResponse:
        events = self.events(model, reply)
        if not sse:
            # Without alt=sse Google streams one JSON array, element by element.
            return _json(events)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i, ev in enumerate(events):
            if isinstance(b, DieMidStream) and i == b.after:
                self.die(request)
                return resp
            if isinstance(b, Inject) and i == b.after:
                return await self.inject(resp, b)
            await resp.write(b"data: " + orjson.dumps(ev) + b"\r\n\r\n")
            if reply.chunk_delay and i + 1 >= reply.delay_from:
                await asyncio.sleep(reply.chunk_delay)
        if isinstance(b, DieMidStream):
            self.die(request)
            return resp
        await resp.write_eof()
        return resp

    # -- embeddings, tokens ---------------------------------------------------------------
    @staticmethod
    def vector(i: int, req: dict[str, Any]) -> list[float]:
        dims = req.get("outputDimensionality")
        vec = [0.1 * (i + 1), 0.2, 0.3]
        if isinstance(dims, int) and dims > 0:
            vec = (vec + [0.0] * dims)[:dims]
        return vec

    def batch_embed(self, body: dict[str, Any]) -> web.Response:
        reqs = body.get("requests")
        if not isinstance(reqs, list) or not reqs:
            return self.error(
                400, "* BatchEmbedContentsRequest.requests: contents is not specified\n"
            )
        if len(reqs) > 100:
            return self.error(
                400,
                "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n",
            )
        for r in reqs:
            dims = r.get("outputDimensionality") if isinstance(r, dict) else None
            if isinstance(dims, int) and dims > 3072:  # the real API's limit
                return self.error(400, f"* outputDimensionality: {dims} is above 3072\n")
        return _json(
            {
                "embeddings": [
                    {"values": self.vector(i, r if isinstance(r, dict) else {})}
                    for i, r in enumerate(reqs)
                ]
            }
        )

    @staticmethod
    def count_tokens(body: dict[str, Any]) -> dict[str, Any]:
        inner = body.get("generateContentRequest")
        contents = (inner if isinstance(inner, dict) else body).get("contents") or []
        chars = sum(
            len(p["text"])
            for c in (contents if isinstance(contents, list) else [])
            if isinstance(c, dict)
            for p in c.get("parts") or []
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
        n = max(1, chars // 4)  # about four characters a token, Google's rule of thumb
        return {"totalTokens": n, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]}

"""The reference: a bare aiohttp pass-through proxy, the least a Python gateway can do.

It receives the request, forwards the body bytes unchanged to the upstream over one
shared ``aiohttp.ClientSession``, and relays the answer: JSON bytes, or an SSE stream
chunk by chunk through a ``StreamResponse``. No auth, no parsing, no ledger.

Run: ``python -m benchmarks.bare_proxy --port 9002 --upstream http://127.0.0.1:9001``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from benchmarks.common import healthz, pin, run_loop, serve_forever

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
# What the proxy sends upstream: the body's type and a provider key, as a gateway would.
UP_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}


async def chat(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    body = await request.read()
    url = request.app[UPSTREAM] + "/v1/chat/completions"
    async with session.post(url, data=body, headers=UP_HEADERS) as resp:
        ctype = resp.headers.get("Content-Type", "application/json")
        if not ctype.startswith("text/event-stream"):
            return web.Response(
                status=resp.status, body=await resp.read(), headers={"Content-Type": ctype}
            )
        out = web.StreamResponse(
            status=resp.status,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        await out.prepare(request)
        async for data in resp.content.iter_any():
            await out.write(data)
        await out.write_eof()
        return out


def create_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[UPSTREAM] = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        # Same pool settings as aigw's session: unlimited, keep-alive.
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=10),
            skip_auto_headers=("User-Agent",),
        ) as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(session_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9001")
    ap.add_argument("--cpus", help="pin to these CPUs, e.g. 0 or 0,1")
    args = ap.parse_args()
    pin(args.cpus)
    run_loop(serve_forever(create_app(args.upstream), args.host, args.port))


if __name__ == "__main__":
    main()

"""The floor: the proxy one writes first, Starlette + one shared httpx.AsyncClient, streams passed through.

python bench/naive_proxy.py --port 8002 --upstream http://127.0.0.1:8001/v1
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route


def create_app(upstream: str) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
        # Keep-alive for every connection the bench opens, so the floor measures Starlette and
        # httpx rather than connection churn (httpx keeps only 20 idle connections by default).
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(base_url=upstream, limits=limits, timeout=60) as client:
            yield {"client": client}

    async def chat(request: Request) -> Response:
        return await forward(request, "chat/completions")

    async def messages(request: Request) -> Response:
        return await forward(request, "messages")

    async def forward(request: Request, path: str) -> Response:
        client: httpx.AsyncClient = request.state.client
        headers = {
            "content-type": "application/json",
            "authorization": request.headers.get("authorization", ""),
        }
        outgoing = client.build_request("POST", path, content=await request.body(), headers=headers)
        incoming = await client.send(outgoing, stream=True)
        return StreamingResponse(
            incoming.aiter_raw(),
            status_code=incoming.status_code,
            media_type=incoming.headers.get("content-type"),
            background=BackgroundTask(incoming.aclose),
        )

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/health", health),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8001/v1")
    args = parser.parse_args()
    app = create_app(args.upstream.rstrip("/") + "/")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()

"""Requests that arrive while the gateway drains (after SIGTERM) are refused in their dialect
(in-process: over sockets, uvicorn closes idle connections at once, so only a request racing the
signal gets here, which a test cannot time)."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import httpx

from iflow2api.app import Gateway
from iflow2api.settings import load

PROMPT = [{"role": "user", "content": "hi"}]


class Lifespan:
    """Drives the gateway's ASGI lifespan, as a server would."""

    def __init__(self, app: Gateway) -> None:
        self.app = app
        self.inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()

    async def _receive(self) -> MutableMapping[str, Any]:
        return await self.inbox.get()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        await self.outbox.put(message)

    async def start(self) -> None:
        self.task = asyncio.ensure_future(self.app({"type": "lifespan"}, self._receive, self._send))
        await self.inbox.put({"type": "lifespan.startup"})
        assert (await self.outbox.get())["type"] == "lifespan.startup.complete"

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert (await self.outbox.get())["type"] == "lifespan.shutdown.complete"
        await self.task


async def refused_while_draining(tmp_path: Path) -> list[httpx.Response]:
    settings = load(
        env={"IFLOW2API_DATA_DIR": str(tmp_path / "data"), "IFLOW_HOME": str(tmp_path / "iflow")},
        flags={},
        config_path=None,
    )
    app = Gateway(settings)
    lifespan = Lifespan(app)
    await lifespan.start()
    app.stop_soon()
    await asyncio.sleep(0)  # the signal handler's callback runs on the loop
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        answers = [
            await client.get("/health"),
            await client.post("/v1/chat/completions", json={"model": "glm-4.7", "messages": PROMPT}),
            await client.post(
                "/v1/messages", json={"model": "glm-4.7", "max_tokens": 10, "messages": PROMPT}
            ),
        ]
    await lifespan.stop()
    return answers


def test_requests_arriving_during_the_drain_get_a_503_in_their_dialect(tmp_path: Path) -> None:
    health, chat, messages = asyncio.run(refused_while_draining(tmp_path))
    for answer in (health, chat, messages):
        assert answer.headers["connection"] == "close"
    assert health.status_code == chat.status_code == 503
    assert messages.status_code == 500  # Anthropic's API has no 503; its SDKs retry a 500
    assert health.json()["error"]["code"] == "gateway_shutting_down"
    assert chat.json()["error"]["code"] == "gateway_shutting_down"
    assert messages.json()["type"] == "error"
    assert "shutting down" in messages.json()["error"]["message"]

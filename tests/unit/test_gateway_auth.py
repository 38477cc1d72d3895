"""Who may use a gateway that listens beyond loopback, as its keys come and go (in-process)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from iflow2api import clientkeys
from iflow2api.app import Gateway
from iflow2api.settings import load

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def gateway(tmp_path: Path, host: str) -> Gateway:
    settings = load(
        env={"IFLOW2API_DATA_DIR": str(tmp_path / "data"), "IFLOW_HOME": str(tmp_path / "iflow")},
        flags={"host": host},
        config_path=None,
    )
    return Gateway(settings)


async def exercise(app: Gateway) -> dict[str, int]:
    key = clientkeys.new_key()
    await app.store.put_client_key(clientkeys.new_record("only", key, admin=True))
    await app.access.reload()
    admin = {"authorization": f"Bearer {key}"}
    statuses: dict[str, int] = {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        statuses["anonymous chat"] = (await client.post("/v1/chat/completions", json=CHAT)).status_code
        record_id = app.access.keys.records[0].id
        revoke = await client.post("/api/keys/revoke", json={"id": record_id}, headers=admin)
        statuses["revoke the last key"] = revoke.status_code
        await app.store.delete_client_key(record_id)  # as `iflow2api keys revoke` would, from outside
        await app.access.reload()
        statuses["anonymous chat, no keys left"] = (
            await client.post("/v1/chat/completions", json=CHAT)
        ).status_code
        spoofed = {"host": "127.0.0.1"}
        statuses["anonymous key minting"] = (
            await client.post("/api/keys", json={"name": "mine", "admin": True}, headers=spoofed)
        ).status_code
    await app.store.close()
    return statuses


def test_beyond_loopback_the_gateway_never_opens_up(tmp_path: Path) -> None:
    statuses = asyncio.run(exercise(gateway(tmp_path, "0.0.0.0")))
    assert statuses == {
        "anonymous chat": 401,
        "revoke the last key": 400,
        "anonymous chat, no keys left": 401,
        "anonymous key minting": 401,
    }


def test_on_loopback_the_last_key_may_go(tmp_path: Path) -> None:
    statuses = asyncio.run(exercise(gateway(tmp_path, "127.0.0.1")))
    assert statuses["revoke the last key"] == 200
    # With no keys left, loopback is open again (no upstream account here: a 401 saying how to log in).
    assert statuses["anonymous key minting"] == 201

"""The first admin password, set from the page: only by a connection from this machine, by its
socket's address (never a header a client writes), and only while none exists (in-process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from iflow2api import admin, clientkeys
from iflow2api.app import Gateway
from iflow2api.settings import load

PASSWORD = "a long enough secret"
#: Headers that claim loopback; only the socket's peer address may decide.
CLAIMS_LOOPBACK = {"x-forwarded-for": "127.0.0.1", "x-real-ip": "127.0.0.1", "forwarded": "for=127.0.0.1"}


def gateway(tmp_path: Path) -> Gateway:
    settings = load(
        env={"IFLOW2API_DATA_DIR": str(tmp_path / "data"), "IFLOW_HOME": str(tmp_path / "iflow")},
        flags={"host": "127.0.0.1"},
        config_path=None,
    )
    return Gateway(settings)


async def with_a_key(app: Gateway) -> None:
    await app.store.put_client_key(clientkeys.new_record("only", clientkeys.new_key()))
    await app.access.reload()


def client(app: Gateway, address: str, host: str = "127.0.0.1:8000") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{host}")


async def offered(http: httpx.AsyncClient) -> Any:
    return (await http.get("/api/status")).json()["admin"]["first_password"]


def test_a_remote_socket_cannot_set_it_whatever_its_headers_say(tmp_path: Path) -> None:
    async def run() -> tuple[Any, httpx.Response, str | None]:
        app = gateway(tmp_path)
        await with_a_key(app)
        async with client(app, "203.0.113.9") as remote:
            remote.headers.update(CLAIMS_LOOPBACK)
            shown = await offered(remote)
            answer = await remote.post("/api/admin-password", json={"password": PASSWORD})
        stored = await app.store.get_setting(admin.ADMIN_PASSWORD_SETTING)
        await app.store.close()
        return shown, answer, stored

    shown, answer, stored = asyncio.run(run())
    assert shown is False
    assert answer.status_code == 403
    assert "only from this machine" in answer.json()["error"]["message"]
    assert "set-cookie" not in answer.headers
    assert stored is None


def test_a_rebound_host_name_cannot_set_it_from_loopback(tmp_path: Path) -> None:
    """A page elsewhere whose host name resolves to 127.0.0.1 reaches the gateway from this machine's
    browser; its requests name its own host."""

    async def run() -> tuple[Any, int, str | None]:
        app = gateway(tmp_path)
        await with_a_key(app)
        async with client(app, "127.0.0.1", host="rebound.example:8000") as rebound:
            shown = await offered(rebound)
            status = (await rebound.post("/api/admin-password", json={"password": PASSWORD})).status_code
        stored = await app.store.get_setting(admin.ADMIN_PASSWORD_SETTING)
        await app.store.close()
        return shown, status, stored

    assert asyncio.run(run()) == (False, 403, None)


def test_loopback_sets_it_once_and_is_signed_in(tmp_path: Path) -> None:
    async def run() -> dict[str, Any]:
        app = gateway(tmp_path)
        seen: dict[str, Any] = {}
        async with client(app, "127.0.0.1") as local:
            seen["offered without keys"] = await offered(local)
            await with_a_key(app)
            seen["offered"] = await offered(local)
            short = await local.post("/api/admin-password", json={"password": "short"})
            seen["too short"] = short.status_code
            answer = await local.post("/api/admin-password", json={"password": PASSWORD})
            seen["set"] = answer.status_code
            seen["signed in"] = (await local.get("/api/keys")).status_code
            seen["status signed in"] = (await local.get("/api/status")).json()["admin"]["signed_in"]
            local.cookies.clear()
            seen["offered after"] = await offered(local)
            again = await local.post("/api/admin-password", json={"password": "another password"})
            seen["again"] = (again.status_code, again.json()["error"]["message"])
            seen["sign in"] = (await local.post("/api/session", json={"password": PASSWORD})).status_code
        stored = await app.store.get_setting(admin.ADMIN_PASSWORD_SETTING)
        seen["stored"] = stored is not None and admin.verify_password(PASSWORD, stored)
        await app.store.close()
        return seen

    seen = asyncio.run(run())
    assert seen == {
        "offered without keys": False,  # the page is open without keys: nothing to offer
        "offered": True,
        "too short": 400,
        "set": 200,
        "signed in": 200,
        "status signed in": True,
        "offered after": False,
        "again": (403, seen["again"][1]),
        "sign in": 200,
        "stored": True,
    }
    assert "already set" in seen["again"][1]

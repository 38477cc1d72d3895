"""One refresher per OAuth login among several gateway instances on one real Redis.

The fake OAuth host revokes a refresh token once it has been used (as iFlow's does), so a second
refresh of the same login would come back ``invalid_grant`` and ask a person to log in again: the
failure peers met when two hosts refreshed the same accounts (``shared/scale-out.md``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from iflow2api.auth import oauth
from iflow2api.pool.book import stored_oauth_record
from iflow2api.state import open_store
from tests.conftest import GatewayProcess
from tests.e2e.test_login import CHAT, creds, logged_in_home, oauth_env
from tests.fake_iflow import FakeIflow


def start_three(
    fake: FakeIflow, redis_url: str, place: Callable[[int], tuple[Path, Path]]
) -> list[GatewayProcess]:
    """Three instances on one Redis, started at once (each finds the login due as it starts);
    ``place(n)``: instance n's iFlow folder and data folder."""

    def start(n: int) -> GatewayProcess:
        env = oauth_env(
            fake,
            IFLOW2API_REFRESH_LEAD="3600",
            IFLOW2API_REDIS_URL=redis_url,
            IFLOW2API_INSTANCE_NAME=f"gw{n}",
        )
        return GatewayProcess(*place(n), env)

    with ThreadPoolExecutor(3) as starting:
        return list(starting.map(start, range(3)))


def test_a_token_near_expiry_is_refreshed_once_by_three_instances_and_all_use_the_new_key(
    fake: FakeIflow, tmp_path: Path, redis_url: str
) -> None:
    fake.oauth.token_lifetime = 600  # ten minutes left, an hour's lead: due at once, everywhere
    home = tmp_path / "iflow"
    login = logged_in_home(home, fake)
    fake.oauth.token_lifetime = 7 * 24 * 3600
    fake.oauth.token_delay = 1.0  # the three refreshes would overlap: each starts before one ends

    gateways = start_three(fake, redis_url, lambda n: (home, tmp_path / f"data-{n}"))
    try:
        deadline = time.monotonic() + 15
        # The rotated tokens are written first, the key fetched with them next: wait for both.
        while (
            login["refresh_token"] == creds(home)["refresh_token"]
            or login["api_key"] == creds(home)["apiKey"]
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        fresh = creds(home)
        assert fresh["refresh_token"] != login["refresh_token"], gateways[0].log()
        for gateway in gateways:
            gateway.wait_for_health()
        time.sleep(1.0)  # room for a second refresh, were any instance to make one
        logs = "\n".join(gateway.log() for gateway in gateways)
        asked = [r for r in fake.oauth.token_requests if r["grant_type"] == "refresh_token"]
        assert len(asked) == 1 and fake.oauth.refreshes == 1, logs
        assert "log in again" not in logs
        for gateway in gateways:
            answer = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=10)
            assert answer.status_code == 200, gateway.log()
            assert fake.received[-1].headers["authorization"] == f"Bearer {fresh['apiKey']}"
        health = [httpx.get(g.url + "/health", timeout=5).json() for g in gateways]
        assert all("needs" not in str(h.get("login", "")) for h in health), health
    finally:
        for gateway in gateways:
            gateway.stop()


def store_login(data_dir: Path, fake: FakeIflow) -> tuple[str, str]:
    """An extra iFlow OAuth account in the state store (as a login on the page leaves it): its id
    and refresh token."""
    login = fake.oauth.issue_login(email="extra@example.com")
    tokens = oauth.Tokens(login["access_token"], login["refresh_token"], login["expiry_date"] / 1000)
    user = oauth.UserInfo(api_key=login["api_key"], user_id=str(login["user_id"]), email=login["email"])
    record = stored_oauth_record(tokens, user, None)

    async def put() -> None:
        store = open_store(data_dir)
        try:
            await store.put_account(record)
        finally:
            await store.close()

    asyncio.run(put())
    return record.id, login["refresh_token"]


def stored_creds(data_dir: Path, account_id: str) -> dict[str, object]:
    async def get() -> dict[str, object]:
        store = open_store(data_dir)
        try:
            record = next(r for r in await store.accounts() if r.id == account_id)
            return dict(record.oauth or {})
        finally:
            await store.close()

    return asyncio.run(get())


def test_a_stored_account_near_expiry_is_refreshed_once_by_three_instances_on_one_store(
    fake: FakeIflow, tmp_path: Path, redis_url: str
) -> None:
    """Several instances (or workers) on one state store: the holder writes the store, the others
    re-read it and serve with the new key."""
    data = tmp_path / "data"
    fake.oauth.token_lifetime = 600
    account_id, old_refresh = store_login(data, fake)
    old_key = stored_creds(data, account_id)["apiKey"]
    fake.oauth.token_lifetime = 7 * 24 * 3600
    fake.oauth.token_delay = 1.0

    # No CLI login in their iFlow folders: the stored account is the only one.
    gateways = start_three(fake, redis_url, lambda n: (tmp_path / f"iflow-{n}", data))
    try:
        deadline = time.monotonic() + 15
        # The rotated tokens are written first, the key fetched with them next: wait for both.
        while (
            stored_creds(data, account_id)["refresh_token"] == old_refresh
            or stored_creds(data, account_id)["apiKey"] == old_key
        ) and time.monotonic() < deadline:
            time.sleep(0.1)
        fresh = stored_creds(data, account_id)
        assert fresh["refresh_token"] != old_refresh, gateways[0].log()
        time.sleep(1.5)  # room for a second refresh, and for every instance to take the new key
        logs = "\n".join(gateway.log() for gateway in gateways)
        asked = [r for r in fake.oauth.token_requests if r["grant_type"] == "refresh_token"]
        assert len(asked) == 1 and fake.oauth.refreshes == 1, logs
        for gateway in gateways:
            answer = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=10)
            assert answer.status_code == 200, gateway.log()
            assert fake.received[-1].headers["authorization"] == f"Bearer {fresh['apiKey']}"
    finally:
        for gateway in gateways:
            gateway.stop()

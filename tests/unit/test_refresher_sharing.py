"""A refresh shared by several callers finishes, and is saved, even when the caller that started it
goes away (a client hanging up mid-request)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from iflow2api.auth import oauth
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.auth.refresher import Refresher


class SlowOAuth:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.refreshes = 0

    async def refresh(self, refresh_token: str) -> oauth.Tokens:
        self.refreshes += 1
        await self.release.wait()
        return oauth.Tokens(
            access_token="new-access", refresh_token="new-refresh", expires_at=time.time() + 3600
        )

    async def user_info(self, access_token: str) -> oauth.UserInfo:
        return oauth.UserInfo(api_key="sk-new", email="a@example.com")


class MemoryLogin:
    def __init__(self) -> None:
        self.creds: dict[str, Any] = {
            "access_token": "old",
            "refresh_token": "old-refresh",
            "expiry_date": int((time.time() + 60) * 1000),
        }
        self.saved: list[tuple[str, str | None]] = []

    def read(self) -> dict[str, Any] | None:
        return self.creds

    async def save_refreshed(
        self, tokens: oauth.Tokens, api_key: str | None, *, previous_refresh_token: str
    ) -> bool:
        self.saved.append((tokens.refresh_token, api_key))
        return True

    async def record_rejection(self, refresh_token: str, reason: str) -> None:
        raise AssertionError("not rejected")


def test_a_shared_refresh_outlives_the_caller_that_started_it() -> None:
    async def scenario() -> tuple[bool, int, list[tuple[str, str | None]]]:
        client, login = SlowOAuth(), MemoryLogin()
        refresher = Refresher(login, cast(OAuthClient, client), lead=30)
        starter = asyncio.ensure_future(refresher.refresh_now())
        await asyncio.sleep(0)
        sharer = asyncio.ensure_future(refresher.refresh_now())
        await asyncio.sleep(0)
        starter.cancel()  # the request that started it is gone
        await asyncio.sleep(0)
        client.release.set()
        fresh = await sharer
        assert starter.cancelled()
        return fresh, client.refreshes, login.saved

    fresh, refreshes, saved = asyncio.run(scenario())
    assert fresh is True
    assert refreshes == 1  # one call to the OAuth host, shared
    # The rotated tokens at once, then the key fetched with them.
    assert saved == [("new-refresh", None), ("new-refresh", "sk-new")]

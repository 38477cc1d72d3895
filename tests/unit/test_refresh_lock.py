"""One refresher per login among several instances: the lock, the re-read, the adopted refresh."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any, cast

import pytest

from iflow2api.auth import iflow_files, oauth, oauth_client, refresher
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.auth.refresher import Refresher
from iflow2api.coordination import CoordinationDown, Coordinator
from iflow2api.errors import InvalidGrant, LoginUnavailable

NOW = 1_800_000_000.0


class Locks:
    """The lock part of ``Coordinator`` in memory (no expiry needed here)."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.down = False
        self.taken: list[str] = []

    async def lock(self, name: str, ttl: float) -> str | None:
        if self.down:
            raise CoordinationDown("refused")
        if name in self.held:
            return None
        self.held[name] = token = secrets.token_hex(4)
        self.taken.append(name)
        return token

    async def unlock(self, name: str, token: str) -> None:
        if self.held.get(name) == token:
            del self.held[name]


class Kept:
    """Where the login is kept (the state store), shared by the instances."""

    def __init__(self) -> None:
        self.creds: dict[str, Any] = {"refresh_token": "rt-0", "expiry_date": int((NOW + 60) * 1000)}


class KeptLogin:
    """One instance's view of the kept login: ``read`` from memory, ``reread`` from ``Kept``."""

    def __init__(self, kept: Kept) -> None:
        self.kept = kept
        self.view = dict(kept.creds)
        self.rejections: list[str] = []

    def read(self) -> dict[str, Any] | None:
        return self.view

    async def reread(self) -> dict[str, Any] | None:
        self.view = dict(self.kept.creds)
        return self.view

    async def save_refreshed(
        self, tokens: oauth.Tokens, api_key: str | None, *, previous_refresh_token: str
    ) -> bool:
        if self.kept.creds["refresh_token"] != previous_refresh_token:
            return False
        self.kept.creds = {
            "refresh_token": tokens.refresh_token,
            "expiry_date": int(tokens.expires_at * 1000),
        }
        self.view = dict(self.kept.creds)
        return True

    async def record_rejection(self, refresh_token: str, reason: str) -> None:
        self.rejections.append(refresh_token)


class OAuthHost:
    def __init__(self, kept: Kept) -> None:
        self.kept = kept
        self.refreshes = 0
        self.release = asyncio.Event()
        self.release.set()
        self.reject_with_rotation = False

    async def refresh(self, refresh_token: str) -> oauth.Tokens:
        if self.reject_with_rotation:
            # Another instance rotated the token just before ours arrived.
            self.kept.creds = {"refresh_token": "rt-other", "expiry_date": int((NOW + 86400) * 1000)}
            raise InvalidGrant("refresh token revoked")
        self.refreshes += 1
        await self.release.wait()
        body = b'{"access_token":"at","refresh_token":"rt-%d","expires_in":86400}' % self.refreshes
        return oauth.parse_tokens(200, body, now=NOW)

    async def user_info(self, access_token: str) -> oauth.UserInfo:
        return oauth.UserInfo(api_key="sk-new")


def instance(kept: Kept, host: OAuthHost, locks: Locks) -> tuple[Refresher, KeptLogin]:
    login = KeptLogin(kept)
    made = Refresher(
        login,
        cast(OAuthClient, host),
        lead=3600,
        clock=lambda: NOW,
        coordinator=cast(Coordinator, locks),
        account_id="acc-1",
    )
    return made, login


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refresher, "LOCK_POLL", 0.01)


def test_three_instances_refresh_once_and_all_take_the_new_login() -> None:
    kept, locks = Kept(), Locks()
    host = OAuthHost(kept)

    async def scenario() -> list[bool]:
        host.release.clear()
        made = [instance(kept, host, locks) for _ in range(3)]
        running = [asyncio.ensure_future(r.refresh_now(only_if_due=True)) for r, _ in made]
        await asyncio.sleep(0.05)  # all three are in: one refreshing, two waiting for the lock
        host.release.set()
        results = await asyncio.gather(*running)
        assert all(login.view == kept.creds for _, login in made)
        assert all(r.status().state == "ok" for r, _ in made)
        return results

    assert asyncio.run(scenario()) == [True, True, True]
    assert host.refreshes == 1
    assert kept.creds["refresh_token"] == "rt-1"
    assert locks.held == {} and locks.taken[0] == "refresh:acc-1"


def test_the_holder_does_not_refresh_a_login_another_instance_refreshed_meanwhile() -> None:
    kept, locks = Kept(), Locks()
    host = OAuthHost(kept)
    made, login = instance(kept, host, locks)
    # Refreshed elsewhere after this instance last looked; its view is the old login.
    kept.creds = {"refresh_token": "rt-elsewhere", "expiry_date": int((NOW + 86400) * 1000)}
    assert asyncio.run(made.refresh_now()) is True
    assert host.refreshes == 0
    assert login.view["refresh_token"] == "rt-elsewhere"


def test_invalid_grant_after_another_instance_rotated_the_token_is_no_reason_to_log_in_again() -> None:
    kept, locks = Kept(), Locks()
    host = OAuthHost(kept)
    host.reject_with_rotation = True
    made, login = instance(kept, host, locks)
    assert asyncio.run(made.refresh_now()) is True
    assert not made.needs_login and made.status().state == "ok"
    assert login.rejections == []
    assert login.view["refresh_token"] == "rt-other"


def test_invalid_grant_of_the_kept_token_still_asks_for_a_login() -> None:
    kept, locks = Kept(), Locks()

    class Refusing(OAuthHost):
        async def refresh(self, refresh_token: str) -> oauth.Tokens:
            raise InvalidGrant("refresh token revoked")

    made, login = instance(kept, Refusing(kept), locks)
    assert asyncio.run(made.refresh_now()) is False
    assert made.needs_login
    assert login.rejections == ["rt-0"]


def test_without_the_coordination_store_each_instance_refreshes_alone() -> None:
    kept, locks = Kept(), Locks()
    locks.down = True
    host = OAuthHost(kept)
    made, _ = instance(kept, host, locks)
    assert asyncio.run(made.refresh_now()) is True
    assert host.refreshes == 1


def test_a_holder_that_never_finishes_leaves_the_others_retrying_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(refresher, "LOCK_WAIT", 0.05)
    kept, locks = Kept(), Locks()
    locks.held["refresh:acc-1"] = "someone"
    host = OAuthHost(kept)
    made, _ = instance(kept, host, locks)
    assert asyncio.run(made.refresh_now()) is False
    assert host.refreshes == 0
    assert made.status().state == "retrying"


def test_the_rotated_tokens_are_kept_before_the_key_is_fetched() -> None:
    kept, locks = Kept(), Locks()
    seen_at_key_fetch: list[str] = []

    class CrashingKeyFetch(OAuthHost):
        async def user_info(self, access_token: str) -> oauth.UserInfo:
            seen_at_key_fetch.append(str(kept.creds["refresh_token"]))
            raise LoginUnavailable("the OAuth host went away")

    made, _ = instance(kept, CrashingKeyFetch(kept), locks)
    assert asyncio.run(made.refresh_now()) is True
    assert seen_at_key_fetch == ["rt-1"]  # the spent rt-0 was already replaced where it is kept
    assert kept.creds["refresh_token"] == "rt-1"


def test_the_refresh_lock_outlives_the_slowest_refresh_the_oauth_client_allows() -> None:
    # Each request: connect, head and read timeouts; the token call once, the key fetch with its
    # retries, and the pauses between those.
    per_request = 3 * oauth_client.TIMEOUT
    requests = 1 + 1 + len(oauth_client.RETRY_DELAYS)
    assert per_request * requests + sum(oauth_client.RETRY_DELAYS) < refresher.LOCK_TTL


def write_cli_login(home: Path, refresh_token: str) -> Path:
    home.mkdir(parents=True)
    creds = {"refresh_token": refresh_token, "access_token": "at", "expiry_date": int((NOW + 60) * 1000)}
    (home / iflow_files.OAUTH_CREDS_FILE).write_text(json.dumps(creds))
    return home


def test_the_cli_logins_lock_is_named_after_the_login(tmp_path: Path) -> None:
    homes = {
        "host-a": write_cli_login(tmp_path / "a", "rt-alice"),
        "host-b": write_cli_login(tmp_path / "b", "rt-bob"),
        "host-c": write_cli_login(tmp_path / "c", "rt-alice"),  # a copy of host a's login
    }
    names: dict[str, str] = {}
    for host, home in homes.items():
        locks = Locks()
        made = Refresher(
            home,
            cast(OAuthClient, OAuthHost(Kept())),
            lead=3600,
            clock=lambda: NOW,
            coordinator=cast(Coordinator, locks),
            account_id="cli",
        )
        asyncio.run(made.refresh_now())
        names[host] = locks.taken[0]
    assert names["host-a"] != names["host-b"]  # different logins do not wait for each other
    assert names["host-a"] == names["host-c"]  # copies of one login share one lock
    assert "rt-alice" not in names["host-a"] and names["host-a"] != "refresh:cli"

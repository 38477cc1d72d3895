"""When the refresher refreshes a login (issue 9, section 4), on an injected clock.

The iFlow CLI refreshes whenever less than a day is left, at once (protocol §4.6). A token the
gateway first sees already inside ``refresh_lead`` (a gateway started after a few days off) is
refreshed at once too. Only a token issued (per its answer's ``expires_in``) with a lifetime
shorter than twice the lead is refreshed halfway through its life instead.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from iflow2api.auth import oauth
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.auth.refresher import Refresher

NOW = 1_800_000_000.0
HOUR = 3600.0
DAY = 24 * HOUR
#: The most jitter can move a refresh earlier.
JITTER = 300.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


class OAuthHost:
    """Issues tokens that live ``lifetime`` seconds from the clock's now."""

    def __init__(self, clock: Clock, lifetime: float) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.refreshed = asyncio.Event()
        self.refreshes = 0

    async def refresh(self, refresh_token: str) -> oauth.Tokens:
        self.refreshes += 1
        self.refreshed.set()
        body = b'{"access_token":"at-%d","refresh_token":"rt-%d","expires_in":%d}' % (
            self.refreshes,
            self.refreshes,
            self.lifetime,
        )
        return oauth.parse_tokens(200, body, now=self.clock())

    async def user_info(self, access_token: str) -> oauth.UserInfo:
        return oauth.UserInfo(api_key="sk-new")


class MemoryLogin:
    def __init__(self, expires_at: float) -> None:
        self.creds: dict[str, Any] = {
            "access_token": "at-0",
            "refresh_token": "rt-0",
            "expiry_date": int(expires_at * 1000),
        }

    def read(self) -> dict[str, Any] | None:
        return self.creds

    async def save_refreshed(
        self, tokens: oauth.Tokens, api_key: str | None, *, previous_refresh_token: str
    ) -> bool:
        self.creds = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token or previous_refresh_token,
            "expiry_date": int(tokens.expires_at * 1000),
        }
        return True

    async def record_rejection(self, refresh_token: str, reason: str) -> None:
        raise AssertionError("not rejected")


def refresher(
    left: float, *, lead: float = DAY, lifetime: float = 7 * DAY
) -> tuple[Refresher, OAuthHost, Clock]:
    clock = Clock()
    host = OAuthHost(clock, lifetime)
    return Refresher(MemoryLogin(NOW + left), cast(OAuthClient, host), lead=lead, clock=clock), host, clock


def due_after_now(refresher: Refresher) -> float:
    due = refresher.due_at()
    assert due is not None
    return due - NOW


@pytest.mark.parametrize("left", [12 * HOUR, 2 * HOUR, 60.0, 0.0, -HOUR])
def test_a_token_first_seen_inside_the_lead_is_refreshed_at_once(left: float) -> None:
    assert due_after_now(refresher(left)[0]) <= 0


def test_a_token_first_seen_before_the_lead_waits_for_it() -> None:
    due = due_after_now(refresher(3 * DAY)[0])
    assert 2 * DAY - JITTER <= due <= 2 * DAY


def test_the_schedule_refreshes_at_once_a_token_inside_the_lead_when_it_starts() -> None:
    async def scenario() -> tuple[int, float | None]:
        schedule, host, _ = refresher(12 * HOUR, lifetime=3 * DAY)
        schedule.start()
        try:
            await asyncio.wait_for(host.refreshed.wait(), 20)
        finally:
            await schedule.stop()
        return host.refreshes, schedule.due_at()

    refreshes, due = asyncio.run(scenario())
    assert refreshes == 1
    assert due is not None and 2 * DAY - JITTER <= due - NOW <= 2 * DAY  # the new token: a day before


@pytest.mark.parametrize("lifetime", [HOUR, 12 * HOUR, 36 * HOUR])
def test_a_token_issued_for_less_than_twice_the_lead_is_refreshed_halfway(lifetime: float) -> None:
    async def scenario() -> float:
        schedule, _, _ = refresher(12 * HOUR, lifetime=lifetime)
        assert await schedule.refresh_now()
        return due_after_now(schedule)

    due = asyncio.run(scenario())
    assert lifetime / 2 - min(JITTER, lifetime / 20) <= due <= lifetime / 2


def test_a_token_issued_for_twice_the_lead_or_more_is_refreshed_a_lead_ahead() -> None:
    async def scenario() -> float:
        schedule, _, _ = refresher(12 * HOUR, lifetime=2 * DAY)
        assert await schedule.refresh_now()
        return due_after_now(schedule)

    assert DAY - JITTER <= asyncio.run(scenario()) <= DAY


def test_halfway_counts_from_the_issued_lifetime_not_from_when_the_gateway_looked() -> None:
    async def scenario() -> float:
        schedule, _, clock = refresher(12 * HOUR, lifetime=4 * HOUR)
        assert await schedule.refresh_now()
        clock.now += 3 * HOUR  # an hour left of four: past halfway
        return due_after_now(schedule)

    assert asyncio.run(scenario()) <= 2 * HOUR


def test_a_login_made_here_tells_the_refresher_its_lifetime() -> None:
    # Logged in a moment ago (on the page) for twelve hours: inside the lead, but known to be new.
    schedule, _, _ = refresher(12 * HOUR)
    schedule.issued(
        oauth.parse_tokens(200, b'{"access_token":"at-0","refresh_token":"rt-0","expires_in":43200}', now=NOW)
    )
    assert 6 * HOUR - JITTER <= due_after_now(schedule) <= 6 * HOUR  # halfway, not at once

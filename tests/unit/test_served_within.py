"""``routes.web.served_within``: the page's status waits a bounded time for the served models."""

from __future__ import annotations

import asyncio
from typing import Any

from iflow2api.errors import NotLoggedIn
from iflow2api.routes.web import served_within

MODELS = [{"id": "deepseek-chat", "object": "model", "created": 0, "owned_by": "upstream"}]


def test_the_list_as_it_comes() -> None:
    async def listing() -> list[dict[str, Any]]:
        return MODELS

    assert asyncio.run(served_within(listing, 1)) == MODELS


def test_no_account_serves_means_an_empty_list() -> None:
    async def listing() -> list[dict[str, Any]]:
        raise NotLoggedIn("no provider connected yet")

    assert asyncio.run(served_within(listing, 1)) == []


def test_a_slow_upstream_is_not_waited_for_but_keeps_going() -> None:
    finished: list[bool] = []

    async def listing() -> list[dict[str, Any]]:
        await asyncio.sleep(0.2)
        finished.append(True)
        return MODELS

    async def scenario() -> list[dict[str, Any]]:
        shown = await served_within(listing, 0.01)
        await asyncio.sleep(0.4)  # the look goes on, so that ModelDirectory caches its answer
        return shown

    assert asyncio.run(scenario()) == []
    assert finished == [True]

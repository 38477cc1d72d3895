"""A person's reset from the command line reaches the instances' shared health in Redis: a
quarantine kept there outlives the store's own, and only a reset ends it (the page's reset and a
passing check say so too)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from iflow2api.coordination.redis import RedisCoordinator
from iflow2api.state import AccountHealth
from tests.e2e.test_account_check import GOOD, add
from tests.e2e.test_accounts import cli
from tests.fake_iflow import FakeIflow

QUARANTINE = AccountHealth("quarantined", 0.0, 0, "blocked by the upstream", time.time())


def shared_state(redis_url: str, account_id: str, health: AccountHealth | None = None) -> str:
    """The state Redis holds for the account, after sharing ``health`` as another instance would."""

    async def visit() -> str:
        coordinator = RedisCoordinator(redis_url, instance="instance-a")
        try:
            if health is not None:
                await coordinator.share_health(account_id, health)
            record = (await coordinator.shared_health([account_id])).get(account_id)
            return record.health.state if record is not None else "none"
        finally:
            await coordinator.close()

    return asyncio.run(visit())


@pytest.mark.parametrize(("action", "after"), [("enable", "ok"), ("disable", "quarantined")])
def test_enable_from_the_cli_ends_a_shared_quarantine_and_disable_keeps_it(
    action: str, after: str, redis_url: str, tmp_path: Path
) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    assert shared_state(redis_url, "iflow-cli", QUARANTINE) == "quarantined"

    done = cli(home, data, "accounts", action, "iflow-cli", "--redis-url", redis_url)
    assert done.returncode == 0, done.stderr
    assert shared_state(redis_url, "iflow-cli") == after


def test_an_unreachable_redis_is_said_and_the_store_still_changes(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    done = cli(home, data, "accounts", "enable", "iflow-cli", "--redis-url", dead)
    assert done.returncode == 0, done.stderr
    assert "the running instances were not told at once" in done.stderr
    assert "Enabled iflow-cli." in done.stdout


def test_a_passing_check_from_the_cli_ends_a_shared_quarantine(redis_url: str, tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    with FakeIflow(mode="openai", api_keys=[GOOD], models=["fake-small"]) as host:
        added = add(home, data, "shared", host.base_url)
        assert added.returncode == 0, added.stderr
        [account_id] = re.findall(r"acc-[0-9a-f]+", cli(home, data, "accounts", "list").stdout)
        assert shared_state(redis_url, account_id, QUARANTINE) == "quarantined"

        tested = cli(home, data, "accounts", "test", "shared", "--redis-url", redis_url)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert shared_state(redis_url, account_id) == "ok"

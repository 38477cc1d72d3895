"""A gateway stopped while it refreshes a login gives the refresh lock back on its way out: the
refresher stops (and unlocks) before the coordinator's client closes. Left behind, the lock would
keep every other instance from refreshing that login until it expired."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from iflow2api.auth import refresher
from tests.conftest import GatewayProcess
from tests.e2e.test_login import logged_in_home, oauth_env
from tests.fake_iflow import FakeIflow


def refresh_locks(url: str) -> list[bytes]:
    with redis.Redis.from_url(url) as raw:
        return list(raw.keys("i2a:{l:refresh*"))


def test_a_refresh_in_flight_at_shutdown_unlocks_through_a_live_client(
    fake: FakeIflow, tmp_path: Path, redis_url: str
) -> None:
    fake.oauth.token_lifetime = 600  # ten minutes left, an hour's lead: due as the gateway starts
    home = tmp_path / "iflow"
    logged_in_home(home, fake)
    # The refresh is still waiting for its answer when the stop comes, and beyond its grace.
    fake.oauth.token_delay = refresher.STOP_GRACE + 3
    env = oauth_env(fake, IFLOW2API_REFRESH_LEAD="3600", IFLOW2API_REDIS_URL=redis_url)
    gateway = GatewayProcess(home, tmp_path / "data", env)
    try:
        deadline = time.monotonic() + 10
        while not refresh_locks(redis_url) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert refresh_locks(redis_url), gateway.log()  # the refresh holds its lock
    finally:
        gateway.stop()
    assert "SIGKILL" not in gateway.log()
    # The refresh never finished (its answer came too late), so only the stop can have unlocked it.
    assert refresh_locks(redis_url) == [], gateway.log()
    assert fake.oauth.refreshes == 0

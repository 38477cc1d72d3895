"""One refresher per OAuth login among several gateway instances on one real Redis.

The fake OAuth host revokes a refresh token once it has been used (as iFlow's does), so a second
refresh of the same login would come back ``invalid_grant`` and ask a person to log in again: the
failure peers met when two hosts refreshed the same accounts (``shared/scale-out.md``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import GatewayProcess
from tests.e2e.test_login import CHAT, creds, logged_in_home, oauth_env
from tests.fake_iflow import FakeIflow


def test_a_token_near_expiry_is_refreshed_once_by_three_instances_and_all_use_the_new_key(
    fake: FakeIflow, tmp_path: Path, redis_url: str
) -> None:
    fake.oauth.token_lifetime = 600  # ten minutes left, an hour's lead: due at once, everywhere
    home = tmp_path / "iflow"
    login = logged_in_home(home, fake)
    fake.oauth.token_lifetime = 7 * 24 * 3600
    fake.oauth.token_delay = 1.0  # the three refreshes would overlap: each starts before one ends

    def start(n: int) -> GatewayProcess:
        env = oauth_env(
            fake,
            IFLOW2API_REFRESH_LEAD="3600",
            IFLOW2API_REDIS_URL=redis_url,
            IFLOW2API_INSTANCE_NAME=f"gw{n}",
        )
        return GatewayProcess(home, tmp_path / f"data-{n}", env)

    with ThreadPoolExecutor(3) as starting:  # at once: each finds the login due as it starts
        gateways = list(starting.map(start, range(3)))
    try:
        deadline = time.monotonic() + 15
        while creds(home)["refresh_token"] == login["refresh_token"] and time.monotonic() < deadline:
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

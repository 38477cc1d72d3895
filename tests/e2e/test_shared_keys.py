"""Client keys' limits and revocations across several gateway instances on one real Redis.

Each instance gets its own COPY of one state store, so the keys are the same (same ids) but nothing
the instances share goes through SQLite: what one counts or revokes reaches the others only
through Redis.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iflow2api import keylimits
from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.e2e.test_keys import bearer, cli, create_key
from tests.fake_iflow import FakeIflow
from tests.redis_server import RedisServer

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


class Cluster:
    def __init__(self, tmp_path: Path, fake: FakeIflow) -> None:
        self.home, self.data = tmp_path / "home", tmp_path / "data"
        write_settings(self.home, iflow_settings(fake))
        self.tmp_path = tmp_path
        self.gateways: list[GatewayProcess] = []

    def start(self, count: int, redis_url: str, **extra: str) -> list[GatewayProcess]:
        for n in range(count):
            data = self.tmp_path / f"data-{n}"
            shutil.copytree(self.data, data)
            env = {"IFLOW2API_REDIS_URL": redis_url, "IFLOW2API_INSTANCE_NAME": f"gw{n}", **extra}
            gateway = GatewayProcess(self.home, data, env)
            self.gateways.append(gateway)
            gateway.wait_for_health()
        return self.gateways

    def stop(self) -> None:
        for gateway in self.gateways:
            gateway.stop()


@pytest.fixture
def cluster(tmp_path: Path, fake: FakeIflow) -> Iterator[Cluster]:
    made = Cluster(tmp_path, fake)
    yield made
    made.stop()


def chat(gateway: GatewayProcess, key: str) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=bearer(key), timeout=10)


def test_a_key_of_5_a_minute_is_refused_on_the_6th_whichever_instance_serves_it(
    cluster: Cluster, redis_url: str
) -> None:
    limited = create_key(cluster.data, "limited", "--rpm", "5")
    free = create_key(cluster.data, "free")
    gateways = cluster.start(3, redis_url)
    served = [chat(gateways[n % 3], limited).status_code for n in range(5)]
    assert served == [200] * 5
    for gateway in gateways:
        refused = chat(gateway, limited)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "key_rate_limit_exceeded"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    # Another key keeps its own count.
    assert [chat(gateway, free).status_code for gateway in gateways] == [200] * 3


def test_a_key_revoked_on_one_instance_is_refused_by_another_at_once(
    cluster: Cluster, redis_url: str
) -> None:
    doomed = create_key(cluster.data, "doomed")
    boss = create_key(cluster.data, "boss", "--admin")
    first, second = cluster.start(2, redis_url)
    assert chat(second, doomed).status_code == 200
    listed = httpx.get(first.url + "/api/keys", headers=bearer(boss), timeout=10).json()["keys"]
    key_id = next(key["id"] for key in listed if key["name"] == "doomed")
    revoked = httpx.post(
        first.url + "/api/keys/revoke", json={"id": key_id}, headers=bearer(boss), timeout=10
    )
    assert revoked.status_code == 200, revoked.text
    # The second instance's own store still holds the key: only Redis tells it.
    refused = chat(second, doomed)
    assert refused.status_code == 401, refused.text
    assert "revoked" in refused.json()["error"]["message"]
    assert chat(second, boss).status_code == 200


def test_the_cli_revokes_a_key_on_every_running_instance(cluster: Cluster, redis_url: str) -> None:
    doomed = create_key(cluster.data, "doomed")
    (gateway,) = cluster.start(1, redis_url)
    assert chat(gateway, doomed).status_code == 200
    # Revoked in the original store, which the running instance does not even read.
    result = cli(cluster.data, "keys", "revoke", "doomed", "--redis-url", redis_url)
    assert result.returncode == 0, result.stderr
    assert "every gateway instance refuses it now" in result.stdout
    assert chat(gateway, doomed).status_code == 401


def test_with_redis_down_keys_are_admitted_and_counted(
    cluster: Cluster, redis_server: RedisServer, redis_url: str
) -> None:
    once = create_key(cluster.data, "once", "--rpm", "1")
    boss = create_key(cluster.data, "boss", "--admin")
    # An account without a concurrency limit takes no lease: what is left to see is the key's policy
    # (account leases fail closed, tests/e2e/test_leases.py).
    (gateway,) = cluster.start(1, redis_url, IFLOW2API_CONCURRENCY="0")
    assert chat(gateway, once).status_code == 200
    assert chat(gateway, once).status_code == 429
    redis_server.stop()
    # Fail open for the cluster: while Redis is away this instance counts the key alone (its own
    # minute starts now), and each such request is counted.
    assert [chat(gateway, once).status_code for _ in range(3)] == [200, 429, 429]
    gateway.log_matching(r"key 'once' checked by this instance alone: the coordination store is down")
    metrics = httpx.get(gateway.url + "/metrics", headers=bearer(boss), timeout=10).text
    assert 'iflow2api_key_limits_failed_open_total{instance="gw0"} 3' in metrics
    redis_server.start()
    time.sleep(keylimits.RETRY_EVERY + 0.2)  # the breaker asks Redis again only after this
    assert chat(gateway, once).status_code == 200  # a new, empty Redis: counted again from here
    assert chat(gateway, once).status_code == 429

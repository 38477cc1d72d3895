"""Three gateway processes on one Redis and one iFlow account (one request at a time): the leases
keep it to one in flight whichever instance serves, and a rate limit one instance meets keeps the
others off the account; ``/metrics`` names each instance. Redis down: each request its own 503.
Redis restarted empty: no second request in flight (two pools in this process, on a real Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from iflow2api.coordination.redis import RedisCoordinator
from iflow2api.pool.cluster import Cluster
from iflow2api.pool.router import Pool
from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import FakeIflow, Hang, HttpError, Stream
from tests.redis_server import RedisServer
from tests.unit.test_pool_leases import Instance, settled
from tests.unit.test_pool_router import MODEL, member

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def chat(gateway: GatewayProcess) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=60)


def start_instances(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, redis_url: str, count: int = 3, **env: str
) -> list[GatewayProcess]:
    """``count`` gateways on the same iFlow login (one account) and the same Redis."""
    home = tmp_path / "iflow-home"
    write_settings(home, iflow_settings(fake))
    return [
        start_gateway(
            None,
            {
                "IFLOW_HOME": str(home),
                "IFLOW2API_REDIS_URL": redis_url,
                "IFLOW2API_INSTANCE_NAME": f"gw-{n}",
                **env,
            },
        )
        for n in range(count)
    ]


def account_state(gateway: GatewayProcess) -> str:
    (account,) = httpx.get(gateway.url + "/api/accounts", timeout=5).json()["accounts"]
    state: str = account["state"]
    return state


def test_three_instances_serve_twelve_requests_with_one_in_flight_at_a_time(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, redis_url: str
) -> None:
    gateways = start_instances(start_gateway, fake, tmp_path, redis_url)
    fake.enqueue(*(Hang(0.1) for _ in range(12)))
    with ThreadPoolExecutor(12) as threads:
        statuses = list(threads.map(lambda n: chat(gateways[n % 3]).status_code, range(12)))
    assert statuses == [200] * 12
    # The fake answers a second request in flight on one key with iFlow's 449: none came.
    assert len(fake.received) == 12
    assert [r.rejected for r in fake.received] == [None] * 12
    for n, gateway in enumerate(gateways):
        families = {
            f.name: f for f in text_string_to_metric_families(httpx.get(gateway.url + "/metrics").text)
        }
        requests = families["iflow2api_requests"].samples
        assert {s.labels["instance"] for s in requests} == {f"gw-{n}"}
        assert sum(s.value for s in requests) == 4
        assert "iflow2api_coordination_failures" in families


def test_a_rate_limit_met_by_one_instance_keeps_the_others_off_the_account(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, redis_url: str
) -> None:
    gateways = start_instances(start_gateway, fake, tmp_path, redis_url, IFLOW2API_MAX_COOLDOWN_WAIT="2")
    fake.enqueue(HttpError(429, headers={"Retry-After": "30"}))
    refused = chat(gateways[0])
    assert refused.status_code == 429
    for other in gateways[1:]:
        for _ in range(50):  # the rest reaches every instance within about a second
            if account_state(other) == "cooling":
                break
            time.sleep(0.1)
        assert account_state(other) == "cooling"
        kept_off = chat(other)
        assert kept_off.status_code == 429
        assert 25 <= int(kept_off.headers["retry-after"]) <= 30
    assert len(fake.received) == 1  # only the first instance's request reached the upstream


def test_a_client_that_goes_away_mid_stream_frees_the_account_for_the_other_instances(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, redis_url: str
) -> None:
    # Leases far outlive the test: only a release, not an expiry, can let the second request in.
    first, second = start_instances(
        start_gateway, fake, tmp_path, redis_url, count=2, IFLOW2API_LEASE_TTL="600"
    )
    fake.enqueue(Stream.of_text(["slow"] * 50, delay=0.2))
    with httpx.stream(
        "POST", first.url + "/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30
    ) as r:
        assert r.status_code == 200
        next(r.iter_bytes())  # the stream has begun upstream
    assert fake.wait_for_disconnects(1, timeout=30)  # the client left; the gateway hung up too
    assert chat(second).status_code == 200
    assert [r.rejected for r in fake.received] == [None, None]


def test_with_redis_down_requests_fail_closed_with_retry_after_and_resume_when_it_is_back(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, redis_url: str, redis_server: RedisServer
) -> None:
    (gateway,) = start_instances(
        start_gateway,
        fake,
        tmp_path,
        redis_url,
        count=1,
        IFLOW2API_QUEUE_TIMEOUT="1",
        IFLOW2API_LEASE_TTL="2",
    )
    assert chat(gateway).status_code == 200
    redis_server.stop()
    try:
        refused = chat(gateway)
    finally:
        redis_server.start()  # empty
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "coordination_unavailable"
    assert int(refused.headers["retry-after"]) > 0
    assert len(fake.received) == 1  # nothing went upstream without its lease
    # Redis came back without its data: no new lease for one lease_ttl (pool.leases), then served.
    deadline = time.monotonic() + 30
    while (answer := chat(gateway)).status_code != 200:
        assert answer.json()["error"]["code"] == "coordination_unavailable"
        assert time.monotonic() < deadline
    assert len(fake.received) == 2
    metrics = httpx.get(gateway.url + "/metrics", timeout=5).text
    assert 'iflow2api_coordination_failures_total{instance="gw-0",operation="lease"}' in metrics


def test_an_instance_started_while_redis_is_down_serves_once_it_is_up(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, redis_url: str, redis_server: RedisServer
) -> None:
    redis_server.stop()
    try:
        (gateway,) = start_instances(
            start_gateway, fake, tmp_path, redis_url, count=1, IFLOW2API_QUEUE_TIMEOUT="1"
        )
        assert chat(gateway).status_code == 503
    finally:
        redis_server.start()
    assert chat(gateway).status_code == 200
    assert len(fake.received) == 1
    gateway.log_matching("the coordination store .* does not answer")


def test_with_redis_down_concurrent_requests_each_get_their_503_from_their_own_arrival(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path, redis_url: str, redis_server: RedisServer
) -> None:
    wait = 2.0  # queue_timeout, below DOWN_WAIT: the 503's deadline
    (gateway,) = start_instances(
        start_gateway, fake, tmp_path, redis_url, count=1, IFLOW2API_QUEUE_TIMEOUT=str(wait)
    )
    redis_server.stop()

    def timed_chat(_: int) -> tuple[httpx.Response, float]:
        began = time.monotonic()
        response = chat(gateway)
        return response, time.monotonic() - began

    try:
        with ThreadPoolExecutor(5) as threads:
            answers = list(threads.map(timed_chat, range(5)))
    finally:
        redis_server.start()
    for response, _ in answers:
        assert response.status_code == 503, response.text  # never a 429 from the line instead
        assert response.json()["error"]["code"] == "coordination_unavailable"
        assert int(response.headers["retry-after"]) > 0
    # One behind another's retries, the last would wait five times as long.
    assert max(took for _, took in answers) < 2 * wait
    assert fake.received == []


@contextlib.asynccontextmanager
async def pool_on(url: str, name: str, ttl: float) -> AsyncIterator[tuple[Pool, Cluster]]:
    """A gateway's pool (one account "a", one request at a time) on the Redis at ``url``."""
    coordinator = RedisCoordinator(url, instance=name)
    await coordinator.start()
    gateway = Instance(coordinator, name, lambda: [member("a", limit=1)], queue_timeout=60.0, ttl=ttl)
    try:
        yield gateway.pool, gateway.cluster
    finally:
        await gateway.cluster.close()
        await coordinator.close()


def test_after_redis_restarts_empty_no_account_gets_a_second_request_in_flight(
    redis_server: RedisServer, redis_url: str
) -> None:
    ttl = 3.0

    async def main() -> None:
        async with (
            pool_on(redis_url, "A", ttl) as (a, a_cluster),
            pool_on(redis_url, "B", ttl) as (b, b_cluster),
        ):
            streaming = await a.acquire(MODEL)  # A streams on account "a"
            (lease,) = a_cluster.leases.held["a"]
            await settled(lambda: "a" in b_cluster.leases.epochs)
            with redis.Redis.from_url(redis_url, decode_responses=True) as raw:
                redis_server.restart()  # empty: no persistence
                restarted = time.monotonic()
                asking = asyncio.ensure_future(b.acquire(MODEL))  # B asks, again and again
                while raw.zscore("i2a:{a:a}:lease", lease) is None:
                    await asyncio.sleep(0.01)
                    assert not asking.done()
                assert time.monotonic() - restarted < ttl / 3  # A's lease is back
                # Through B's grace and well after: B is never granted while A holds "a".
                until = time.monotonic() + ttl * 1.5
                while time.monotonic() < until:
                    assert not asking.done()
                    assert raw.zrange("i2a:{a:a}:lease", 0, -1) == [lease]
                    await asyncio.sleep(0.05)
            a.release(streaming)
            got = await asyncio.wait_for(asking, 10)
            assert got.id == "a"
            b.release(got)

    asyncio.run(main())

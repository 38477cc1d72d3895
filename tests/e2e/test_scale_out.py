"""Several gateway instances on one PostgreSQL and one Redis (issue 13, item 8), all real processes.

Each test starts its own instances (``tests.e2e.cluster.Cluster``) on a fresh database and an
emptied Redis; the private servers themselves (``tests.pg_server``, ``tests.redis_server``) are
started once for the session. The one fake iFlow account allows one request in flight and answers
a second one with 449, which it records as rejected: a request that reached it without the
account's lease shows up there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import GatewayProcess, iflow_settings
from tests.e2e.cluster import Cluster
from tests.e2e.test_login import logged_in_home, oauth_env
from tests.fake_iflow import FakeIflow, Hang, HttpError, Stream
from tests.redis_server import RedisServer

CHAT_PATH = "/v1/chat/completions"
CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
#: The iFlow CLI's account: the same id on every instance that reads the same iFlow folder.
CLI_ACCOUNT = "iflow-cli"


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[Cluster]:
    """A fresh database and an emptied Redis of the session's private servers."""
    started = Cluster(tmp_path, postgres_url, redis_url)
    yield started
    started.stop()


def chat(gateway: GatewayProcess, key: str | None = None, **extra: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gateway.url + CHAT_PATH, json={**CHAT, **extra}, headers=headers, timeout=30)


def rejected(fake: FakeIflow) -> list[str]:
    """Why the fake refused each request it refused (449: a second request in flight)."""
    return [request.rejected for request in fake.received if request.rejected is not None]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def is_cooling(gateway: GatewayProcess) -> bool:
    """What the instance's page shows for the account."""
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    states = {account["id"]: account["state"] for account in listing["accounts"]}
    return bool(states[CLI_ACCOUNT] == "cooling")


def leases_held(redis_url: str) -> int:
    """The account's live leases, as any instance would count them."""
    from iflow2api.coordination.redis import RedisCoordinator

    async def count() -> int:
        coordinator = RedisCoordinator(redis_url, instance="test-probe")
        await coordinator.start()
        try:
            held = await coordinator.leases_held([CLI_ACCOUNT])
            return int(held.get(CLI_ACCOUNT, 0))
        finally:
            await coordinator.close()

    return asyncio.run(count())


def test_three_instances_answer_12_requests_with_one_in_flight_at_the_account(
    cluster: Cluster, fake: FakeIflow
) -> None:
    gateways = cluster.start(3, iflow_settings(fake))
    # Each answer takes a moment, so that requests of different instances overlap for sure.
    fake.enqueue(*[Hang(0.1)] * 12)
    with ThreadPoolExecutor(12) as clients:
        replies = list(clients.map(lambda n: chat(gateways[n % 3], stream=n % 2 == 1), range(12)))
    assert [reply.status_code for reply in replies] == [200] * 12, [r.text for r in replies]
    assert rejected(fake) == []  # never a 449: never two requests at once on the one account
    assert len(fake.received) == 12


def test_a_retry_after_seen_by_one_instance_keeps_the_others_off_the_account(
    cluster: Cluster, fake: FakeIflow
) -> None:
    # No waiting out the rest: a rested account answers at once, with the rest's Retry-After.
    first, *others = cluster.start(3, iflow_settings(fake), {"IFLOW2API_MAX_COOLDOWN_WAIT": "0"})
    fake.enqueue(HttpError(429, headers={"Retry-After": "30"}))
    assert chat(first).status_code == 429
    for other in others:
        # Rests reach every instance within a second (the page's list shows it; slack for a busy box).
        wait_until(partial(is_cooling, other), 3, "the rest reached " + other.url)
        refused = chat(other)
        assert refused.status_code == 429, refused.text
        assert 20 <= int(refused.headers["retry-after"]) <= 30
    assert len(fake.received) == 1  # only the first instance's request reached the account


def test_a_key_limited_to_5_a_minute_is_refused_on_the_6th_whichever_instance(
    cluster: Cluster, fake: FakeIflow
) -> None:
    key = cluster.create_key("five", "--rpm", "5")
    gateways = cluster.start(3, iflow_settings(fake))
    assert [chat(gateways[n % 3], key).status_code for n in range(5)] == [200] * 5
    for gateway in gateways:
        refused = chat(gateway, key)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "key_rate_limit_exceeded"
    assert len(fake.received) == 5


def test_a_token_near_expiry_is_refreshed_once_by_three_instances(cluster: Cluster, fake: FakeIflow) -> None:
    fake.oauth.token_lifetime = 600  # ten minutes left, an hour's lead: every instance wants to refresh
    login = logged_in_home(cluster.iflow_home, fake)  # the folder every instance reads
    fake.oauth.token_lifetime = 7 * 24 * 3600
    gateways = cluster.start(3, None, oauth_env(fake, IFLOW2API_REFRESH_LEAD="3600"))
    wait_until(lambda: cluster.creds()["refresh_token"] != login["refresh_token"], 15, "a refresh")
    new_key = cluster.creds()["apiKey"]
    assert new_key != login["api_key"]
    for gateway in gateways:
        reply = chat(gateway)
        assert reply.status_code == 200, reply.text + gateway.log()
        assert fake.received[-1].headers["authorization"] == f"Bearer {new_key}"
    refreshes = [r for r in fake.oauth.token_requests if r["grant_type"] == "refresh_token"]
    # One refresh, and no other instance even tried with the spent refresh token (which burns it).
    assert [r["answer"] for r in refreshes] == ["ok"], refreshes
    assert fake.oauth.refreshes == 1


def test_an_instance_killed_mid_stream_frees_the_lease_within_its_expiry(
    cluster: Cluster, fake: FakeIflow, redis_server: RedisServer
) -> None:
    # A short expiry; the survivor may wait longer than that for the account, but not for ever.
    env = {"IFLOW2API_LEASE_TTL": "3", "IFLOW2API_QUEUE_TIMEOUT": "10"}
    victim, survivor = cluster.start(2, iflow_settings(fake), env)
    fake.enqueue(Stream.of_text(["tick "] * 200, delay=0.05))
    body = {**CHAT, "stream": True}
    with httpx.stream("POST", victim.url + CHAT_PATH, json=body, timeout=10) as streaming:
        assert streaming.status_code == 200
        assert "tick" in next(streaming.iter_text())  # the stream runs: the victim holds the lease
        cluster.kill(victim)
    # Dead, it renews nothing and gives nothing back: the lease is still there...
    assert leases_held(redis_server.url) == 1
    # ...until it expires; then the survivor gets the account.
    reply = chat(survivor)
    assert reply.status_code == 200, reply.text
    assert rejected(fake) == []
    wait_until(lambda: leases_held(redis_server.url) == 0, 3, "the survivor gave its lease back")


def test_redis_stopped_and_started_again_loses_no_request_beyond_the_policy(
    cluster: Cluster, fake: FakeIflow, redis_server: RedisServer
) -> None:
    """Leases fail closed: while Redis is away a request waits, or gets a 503 with Retry-After,
    never a 449 (no request reaches the account without a lease) and never a hang; once Redis is
    back, the instances serve again by themselves."""
    gateways = cluster.start(2, iflow_settings(fake), {"IFLOW2API_LEASE_TTL": "2"})
    fake.enqueue(*[Hang(0.05)] * 1000)
    answers: list[tuple[int, str | None]] = []  # status, Retry-After
    failures: list[str] = []
    running = True

    def client(number: int) -> None:
        while running:
            try:
                reply = chat(gateways[number % 2])
            except httpx.HTTPError as error:  # a hang ends here, after the client's 30 s
                failures.append(repr(error))
                continue
            answers.append((reply.status_code, reply.headers.get("retry-after")))

    with ThreadPoolExecutor(3) as clients:
        for number in range(3):
            clients.submit(client, number)
        wait_until(lambda: len(answers) >= 6, 10, "requests served before the outage")
        redis_server.stop()
        try:
            time.sleep(2)
        finally:
            redis_server.start()
        served = len(answers)
        wait_until(lambda: any(status == 200 for status, _ in answers[served:]), 15, "service resumed")
        running = False
    assert failures == []
    assert {status for status, _ in answers} <= {200, 503}, answers
    assert all(after is not None for status, after in answers if status == 503), answers
    assert rejected(fake) == []
    for gateway in gateways:
        assert chat(gateway).status_code == 200


def test_with_redis_down_key_limits_fail_open(
    cluster: Cluster, fake: FakeIflow, redis_server: RedisServer
) -> None:
    """An account without a concurrency limit takes no lease, so only the key's limit asks Redis:
    that one lets requests through while Redis is away, each instance counting the key on its own
    (logged and counted)."""
    key = cluster.create_key("limited", "--rpm", "50")
    admin = cluster.create_key("ops", "--admin")
    gateways = cluster.start(2, iflow_settings(fake), {"IFLOW2API_CONCURRENCY": "0"})
    assert chat(gateways[0], key).status_code == 200
    redis_server.stop()
    try:
        assert [chat(gateway, key).status_code for gateway in gateways] == [200, 200]
    finally:
        redis_server.start()
    for gateway in gateways:
        gateway.log_matching("key limits are per instance until it is back")  # once a minute
        scrape = httpx.get(gateway.url + "/metrics", headers={"authorization": f"Bearer {admin}"}, timeout=5)
        assert metric(scrape.text, "iflow2api_key_limits_failed_open_total") >= 1, scrape.text


def metric(scrape: str, name: str) -> float:
    """The sum of a metric's samples in a /metrics scrape (every instance labels its own)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == name
    )


def test_two_workers_serve_and_keep_a_key_limit(cluster: Cluster, fake: FakeIflow) -> None:
    key = cluster.create_key("three", "--rpm", "3")
    (gateway,) = cluster.start(1, iflow_settings(fake), args=["--workers", "2"])
    # Each request on a connection of its own, so either worker may take it.
    statuses = [chat(gateway, key).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert len(_children(gateway.process.pid)) >= 2, gateway.log()


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children

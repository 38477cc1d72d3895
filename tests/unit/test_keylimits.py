"""keylimits.SharedLimits: a key's limits as every instance counts them, over a coordinator double."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from iflow2api.clientkeys import KeyRing, new_key, new_record
from iflow2api.coordination import Admission, CoordinationDown, Event
from iflow2api.errors import ClientAuthError, KeyLimitReached
from iflow2api.keylimits import SharedLimits


class KeyStore:
    """The client-key part of ``Coordinator`` in memory, shared by the "instances" of one test."""

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {}
        self.tokens: dict[str, int] = {}
        self.revoked: set[str] = set()
        self.down = False
        self.listeners: list[Callable[[Event], None]] = []
        #: Admissions asked of the store (answered or not).
        self.asked = 0

    def instance(self, name: str) -> KeyCoordinator:
        return KeyCoordinator(self, name)


class KeyCoordinator:
    def __init__(self, shared: KeyStore, instance: str) -> None:
        self.shared, self.instance = shared, instance

    def _up(self) -> None:
        if self.shared.down:
            raise CoordinationDown("connection refused")

    def on_event(self, listener: Callable[[Event], None]) -> None:
        self.shared.listeners.append(listener)

    async def admit_key(
        self, key_id: str, *, rpm: int | None, tokens_per_day: int | None, now: float
    ) -> Admission:
        self.shared.asked += 1
        self._up()
        if key_id in self.shared.revoked:
            return Admission(False, refused_for="revoked")
        if tokens_per_day is not None and self.shared.tokens.get(key_id, 0) >= tokens_per_day:
            return Admission(False, 3600.0, "tokens")
        seen = [at for at in self.shared.seen.get(key_id, []) if at > now - 60]
        if rpm is not None and len(seen) >= rpm:
            return Admission(False, seen[0] + 60 - now, "rpm")
        self.shared.seen[key_id] = [*seen, now]
        return Admission(True)

    async def add_key_tokens(self, key_id: str, tokens: int, now: float) -> None:
        self.shared.asked += 1
        self._up()
        self.shared.tokens[key_id] = self.shared.tokens.get(key_id, 0) + tokens

    async def revoke_key(self, key_id: str) -> None:
        self._up()
        self.shared.revoked.add(key_id)
        for listener in self.shared.listeners:
            listener(Event("revoked", key_id, self.instance))


def limits(coordinator: KeyCoordinator, clock: list[float], revoked: list[int] | None = None) -> SharedLimits:
    def note() -> None:
        if revoked is not None:
            revoked.append(1)

    return SharedLimits(coordinator, on_revoked=note, clock=lambda: clock[0])  # type: ignore[arg-type]


def test_the_rpm_limit_holds_across_instances_and_says_when_to_retry() -> None:
    store, clock = KeyStore(), [1000.0]
    a, b = limits(store.instance("a"), clock), limits(store.instance("b"), clock)
    alice = new_record("alice", new_key(), rpm=5)

    async def scenario() -> None:
        for n in range(5):
            await (a if n % 2 else b).admit(alice)
            clock[0] += 1
        for instance in (a, b):
            with pytest.raises(KeyLimitReached) as caught:
                await instance.admit(alice)
            assert caught.value.retry_after == pytest.approx(55.0)
            assert "5 requests per minute" in caught.value.message

    asyncio.run(scenario())


def test_daily_tokens_are_added_and_then_refused() -> None:
    store, clock = KeyStore(), [1000.0]
    a, b = limits(store.instance("a"), clock), limits(store.instance("b"), clock)
    bob = new_record("bob", new_key(), tokens_per_day=100)

    async def scenario() -> None:
        await a.admit(bob)
        await a.add_tokens(bob.id, 60)
        await b.add_tokens(bob.id, 0)  # nothing to count: no round trip
        await b.admit(bob)
        await b.add_tokens(bob.id, 40)
        with pytest.raises(KeyLimitReached) as caught:
            await a.admit(bob)
        assert "100 tokens for today" in caught.value.message

    asyncio.run(scenario())
    assert store.tokens == {bob.id: 100}


def test_a_key_revoked_on_one_instance_is_refused_by_another_at_once() -> None:
    store, clock = KeyStore(), [1000.0]
    reloads: list[int] = []
    a = limits(store.instance("a"), clock)
    b = limits(store.instance("b"), clock, revoked=reloads)
    carol = new_record("carol", new_key())
    ring = KeyRing(shared=a)

    async def scenario() -> None:
        await b.admit(carol)
        await ring.revoke_everywhere(carol.id)
        assert reloads, "the other instance reloads its keys on the event"
        with pytest.raises(ClientAuthError) as caught:
            await b.admit(carol)
        assert caught.value.code == "invalid_api_key"
        assert "revoked" in caught.value.message

    asyncio.run(scenario())


def test_store_down_admits_counts_and_logs_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    store, clock = KeyStore(), [1000.0]
    told: list[int] = []
    a = SharedLimits(
        store.instance("a"),  # type: ignore[arg-type]
        failed_open=lambda: told.append(1),
        clock=lambda: clock[0],
        monotonic=lambda: clock[0],
    )
    dave = new_record("dave", new_key(), rpm=1)
    store.down = True

    async def scenario() -> None:
        for _ in range(3):
            await a.admit(dave)
        await a.add_tokens(dave.id, 10)  # lost, not raised
        await a.revoke(dave.id)  # logged, not raised
        clock[0] += 61
        await a.admit(dave)

    with caplog.at_level(logging.WARNING, logger="iflow2api.keys"):
        asyncio.run(scenario())
    assert a.fail_open_admissions == 4 and len(told) == 4
    unchecked = [r for r in caplog.records if "key 'dave' checked by this instance alone" in r.getMessage()]
    assert len(unchecked) == 2  # the first failure, and again a minute later
    store.down = False
    clock[0] += 61  # a minute on: the store is asked again, and this instance's count is spent

    async def back() -> None:
        await a.admit(dave)
        with pytest.raises(KeyLimitReached):
            await a.admit(dave)

    asyncio.run(back())
    assert a.fail_open_admissions == 4


def test_store_down_falls_back_to_this_instances_own_count() -> None:
    store, clock = KeyStore(), [1000.0]
    shared = limits(store.instance("a"), clock)
    KeyRing(shared=shared)  # which makes its own count the fallback
    erin = new_record("erin", new_key(), rpm=2)
    store.down = True

    async def scenario() -> None:
        await shared.admit(erin)
        await shared.admit(erin)
        with pytest.raises(KeyLimitReached):  # not "no limit at all": this instance's own
            await shared.admit(erin)

    asyncio.run(scenario())


def test_a_breaker_spares_requests_the_stores_timeout_and_retries_each_second() -> None:
    store, clock = KeyStore(), [1000.0]
    a = SharedLimits(
        store.instance("a"),  # type: ignore[arg-type]
        clock=lambda: clock[0],
        monotonic=lambda: clock[0],
    )
    frank = new_record("frank", new_key())
    store.down = True

    async def admit(times: int) -> None:
        for _ in range(times):
            await a.admit(frank)

    asyncio.run(admit(5))
    asyncio.run(a.add_tokens(frank.id, 10))  # lost, and without waiting either
    assert store.asked == 1  # one wait for the timeout; the next four did not ask
    clock[0] += 1.5
    asyncio.run(admit(3))
    assert store.asked == 2  # asked again after a second, still down
    store.down = False
    clock[0] += 1.5
    asyncio.run(admit(3))
    assert store.asked == 5 and a.fail_open_admissions == 8  # back: every request asks again


def test_without_a_coordinator_revoking_is_local_only() -> None:
    ring = KeyRing()
    asyncio.run(ring.revoke_everywhere("key-1"))  # nothing to tell, nothing raised
    assert ring.shared is None

"""The pool's choice of account, its waiting line, and what failures do to an account's health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import pytest

from iflow2api.auth.credentials import Account
from iflow2api.errors import (
    AccountBlocked,
    AllAccountsCooling,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoAccountAvailable,
    NotLoggedIn,
    OutOfCredit,
    QueueFull,
    UpstreamAuthError,
    UpstreamConcurrencyLimited,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from iflow2api.pool.cluster import Cluster
from iflow2api.pool.members import Member, key_fingerprint
from iflow2api.pool.outcomes import CooldownPolicy
from iflow2api.pool.router import Pool, Strategy
from iflow2api.state.records import AccountHealth

MODEL = "glm-4.7"
POLICY = CooldownPolicy(base=2, ceiling=1800, error=15)
START = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def member(name: str, *, limit: int | None = 1, key: str | None = None, enabled: bool = True) -> Member:
    return Member(
        id=name,
        label=f"account {name}",
        kind="iflow-key",
        source="store",
        account=Account("iflow", "api-key", "http://x", key or f"sk-{name}-0123456789"),
        limit=limit,
        enabled=enabled,
    )


def asked(error: GatewayError, seconds: float) -> GatewayError:
    """``error`` as the speakers make it when the upstream sent ``Retry-After: seconds``."""
    return error.asked_to_wait(seconds)


def serves_anything(_member: Member, _model: str) -> bool | None:
    return None


#: Answers whether a member serves a model: True (it says so), False (it says not), None (unknown).
Serves = Callable[[Member, str], bool | None]


class Directory:
    """The pool's account directory, scripted: what it answers, and what it was handed to keep."""

    def __init__(
        self,
        serves: Serves = serves_anything,
        known_models: Callable[[], Iterable[str]] = tuple,
        health_log: list[tuple[str, AccountHealth]] | None = None,
        affinity_log: list[tuple[str, str]] | None = None,
    ) -> None:
        self._serves = serves
        self._known_models = known_models
        self.health_log = health_log if health_log is not None else []
        self.affinity_log = affinity_log if affinity_log is not None else []

    def serves(self, member: Member, model: str) -> bool | None:
        return self._serves(member, model)

    def known_models(self, members: Iterable[Member]) -> list[str]:
        return list(self._known_models())

    def persist_health(self, account_id: str, health: AccountHealth) -> None:
        self.health_log.append((account_id, health))

    def persist_affinity(self, session: str, account_id: str) -> None:
        self.affinity_log.append((session, account_id))


def make_pool(
    members: Iterable[Member],
    *,
    strategy: Strategy = "round-robin",
    affinity: bool = False,
    queue_size: int = 10,
    queue_timeout: float = 5.0,
    clock: Callable[[], float] | None = None,
    serves: Serves = serves_anything,
    known_models: Callable[[], Iterable[str]] = tuple,
    health_log: list[tuple[str, AccountHealth]] | None = None,
    affinity_log: list[tuple[str, str]] | None = None,
    cluster: Cluster | None = None,
) -> Pool:
    pool = Pool(
        strategy=strategy,
        affinity=affinity,
        queue_size=queue_size,
        queue_timeout=queue_timeout,
        policy=POLICY,
        directory=Directory(serves, known_models, health_log, affinity_log),
        clock=clock or Clock(),
        leases=cluster.leases if cluster is not None else None,
        shared_health=cluster.health if cluster is not None else None,
    )
    pool.set_members(members)
    return pool


def live(pool: Pool, member_id: str) -> Member:
    found = pool.get(member_id)
    assert found is not None
    return found


def take(pool: Pool, *, session: str | None = None, exclude: Iterable[str] = ()) -> str:
    """The id of the member a request that does not have to wait gets (its slot stays taken)."""
    return asyncio.run(pool.acquire(MODEL, session=session, exclude=frozenset(exclude))).id


def take_and_give_back(pool: Pool, *, session: str | None = None) -> str:
    chosen = asyncio.run(pool.acquire(MODEL, session=session))
    pool.release(chosen)
    return chosen.id


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


# -- choosing -------------------------------------------------------------------------------------


def test_round_robin_spreads_consecutive_requests_in_order() -> None:
    pool = make_pool([member("a"), member("b"), member("c")])
    assert [take_and_give_back(pool) for _ in range(7)] == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_takes_the_next_free_member_after_the_last_one_chosen() -> None:
    a, b, c = member("a"), member("b"), member("c")
    pool = make_pool([a, b, c])
    assert [take(pool) for _ in range(3)] == ["a", "b", "c"]
    pool.release(b)
    assert take(pool) == "b"
    pool.release(a)
    pool.release(c)
    assert take(pool) == "c"  # the pointer is after b, so c comes before a
    assert take(pool) == "a"
    assert [m.in_flight for m in (a, b, c)] == [1, 1, 1]


def test_fill_first_uses_the_first_member_until_it_is_busy() -> None:
    a, b, _ = members = [member("a"), member("b"), member("c")]
    pool = make_pool(members, strategy="fill-first")
    assert [take_and_give_back(pool) for _ in range(3)] == ["a", "a", "a"]
    assert take(pool) == "a"
    assert take(pool) == "b"
    pool.release(a)
    assert take(pool) == "a"
    pool.release(b)
    assert take(pool) == "b"


def test_unlimited_members_never_run_out_of_room() -> None:
    pool = make_pool([member("a", limit=None)], strategy="fill-first")
    assert [take(pool) for _ in range(5)] == ["a"] * 5
    assert live(pool, "a").in_flight == 5


def test_session_affinity_prefers_the_remembered_member_while_it_is_free() -> None:
    a = member("a")
    pool = make_pool([a, member("b"), member("c")], affinity=True)
    assert take_and_give_back(pool, session="s1") == "a"
    assert take_and_give_back(pool) == "b"
    # Round-robin alone would pick c now.
    assert take_and_give_back(pool, session="s1") == "a"
    assert take(pool, session="s1") == "a"
    # Busy: the conversation moves on (round-robin's next is c: affinity did not move the pointer),
    # and is remembered where it went.
    assert take(pool, session="s1") == "c"
    pool.release(a)
    pool.release(live(pool, "c"))
    assert take_and_give_back(pool) == "a"
    assert take_and_give_back(pool, session="s1") == "c"


def test_without_affinity_sessions_are_ignored() -> None:
    pool = make_pool([member("a"), member("b")], affinity=False)
    assert [take_and_give_back(pool, session="s1") for _ in range(3)] == ["a", "b", "a"]


def test_restored_affinities_are_used() -> None:
    pool = make_pool([member("a"), member("b"), member("c")], affinity=True)
    pool.restore_affinities({"s1": "c"})
    assert take_and_give_back(pool, session="s1") == "c"


def test_affinity_changes_are_persisted_once_per_move() -> None:
    persisted: list[tuple[str, str]] = []
    a = member("a")
    pool = make_pool([a, member("b")], affinity=True, affinity_log=persisted)
    take_and_give_back(pool, session="s1")
    take_and_give_back(pool, session="s1")
    assert persisted == [("s1", "a")]
    held = asyncio.run(pool.acquire(MODEL, session="s1"))
    assert take(pool, session="s1") == "b"
    assert persisted == [("s1", "a"), ("s1", "b")]
    pool.release(held)
    take_and_give_back(pool)  # no session: nothing to remember
    assert len(persisted) == 2


def test_disabled_members_are_never_picked() -> None:
    pool = make_pool([member("a", enabled=False), member("b"), member("c", enabled=False)])
    assert [take_and_give_back(pool) for _ in range(4)] == ["b"] * 4


def test_no_enabled_member_is_a_503() -> None:
    pool = make_pool([member("a", enabled=False)])
    with pytest.raises(NoAccountAvailable) as caught:
        take(pool)
    assert caught.value.status == 503
    assert caught.value.code == "no_account_available"
    with pytest.raises(NoAccountAvailable):
        take(make_pool([]))


def test_exclude_skips_members_already_tried() -> None:
    pool = make_pool([member("a"), member("b"), member("c")], strategy="fill-first")
    assert take(pool, exclude={"a"}) == "b"
    assert take(pool, exclude={"a", "b"}) == "c"
    with pytest.raises(NoAccountAvailable, match="failed this request"):
        take(pool, exclude={"a", "b", "c"})


def test_members_known_to_serve_the_model_are_preferred_and_refusers_never_used() -> None:
    answers = {"maybe": None, "sure": True, "never": False}
    pool = make_pool(
        [member("maybe", limit=None), member("never", limit=None), member("sure", limit=None)],
        serves=lambda m, _model: answers[m.id],
    )
    assert {take(pool) for _ in range(4)} == {"sure"}
    answers["sure"] = None
    assert {take(pool) for _ in range(4)} == {"maybe", "sure"}


def test_a_model_nobody_serves_names_the_known_models() -> None:
    pool = make_pool(
        [member("a"), member("b")],
        serves=lambda _m, model: model == MODEL,
        known_models=lambda: ["glm-4.7", "qwen3-coder-plus"],
    )

    with pytest.raises(ModelNotFound) as caught:
        asyncio.run(pool.acquire("gpt-9"))
    assert caught.value.status == 404
    assert caught.value.param == "model"
    assert "'gpt-9'" in caught.value.message
    assert "glm-4.7, qwen3-coder-plus" in caught.value.message


# -- cooling down and quarantine ------------------------------------------------------------------


def test_a_cooling_member_is_skipped() -> None:
    clock = Clock()
    pool = make_pool([member("a"), member("b"), member("c")], clock=clock)
    pool.cool_down(live(pool, "b"), "test", 10)
    assert [take_and_give_back(pool) for _ in range(4)] == ["a", "c", "a", "c"]
    clock.now += 10.5
    assert [take_and_give_back(pool) for _ in range(3)] == ["a", "b", "c"]


def test_rests_the_upstream_asked_for_beyond_max_cooldown_wait_are_a_429_until_the_earliest_end() -> None:
    clock = Clock()
    pool = make_pool([member("a"), member("b"), member("c", enabled=False)], clock=clock)
    pool.failed(live(pool, "a"), asked(UpstreamRateLimited("slow down"), 90))
    pool.failed(live(pool, "b"), asked(UpstreamError("unavailable", status=503), 42))
    clock.now += 2
    with pytest.raises(AllAccountsCooling) as caught:
        take(pool)
    assert caught.value.status == 429
    assert caught.value.code == "all_accounts_cooling_down"
    assert caught.value.retry_after == 40.0
    assert (b"retry-after", b"40") in caught.value.headers()
    assert "40 s" in caught.value.message
    clock.now += 40
    assert take(pool) == "b"


def test_a_request_waits_out_a_short_rest_the_upstream_asked_for() -> None:
    async def main() -> None:
        clock = Clock()
        a = member("a")
        pool = make_pool([a], clock=clock, queue_timeout=5)
        pool.failed(a, asked(UpstreamRateLimited("slow down"), 0.05))
        waiter = asyncio.create_task(pool.acquire(MODEL))
        await settle()
        assert not waiter.done() and pool.waiting == 1  # waiting, not refused, and no probe
        clock.now += 0.05  # the pool's look when the rest ends finds it over
        got = await asyncio.wait_for(waiter, 2)
        assert got is a and a.in_flight == 1 and not a.probing

    run(main())


def test_a_rest_the_upstream_asked_for_is_waited_only_within_max_cooldown_wait_and_queue_timeout() -> None:
    clock = Clock()
    policy = CooldownPolicy(base=2, ceiling=1800, error=15, wait=10)
    pool = Pool(
        strategy="round-robin",
        affinity=False,
        queue_size=10,
        queue_timeout=8,
        policy=policy,
        directory=Directory(),
        clock=clock,
    )
    pool.set_members([member("a")])
    pool.failed(live(pool, "a"), asked(UpstreamRateLimited("slow down"), 9))
    # Within max_cooldown_wait, but the line would give up first: refused now, with the hint.
    with pytest.raises(AllAccountsCooling) as caught:
        take(pool)
    assert caught.value.retry_after == 9.0
    clock.now += 2
    with pytest.raises(TimeoutError):  # 7 s left: it waits (the test's own clock never moves on)
        asyncio.run(asyncio.wait_for(pool.acquire(MODEL), 0.05))


def test_quarantined_and_resting_together_still_tell_when_to_retry() -> None:
    clock = Clock()
    pool = make_pool([member("a"), member("b")], clock=clock)
    pool.quarantine(live(pool, "a"), "blocked")
    pool.failed(live(pool, "b"), asked(UpstreamRateLimited("slow down"), 50))
    with pytest.raises(AllAccountsCooling) as caught:
        take(pool)
    assert caught.value.retry_after == 50.0


def test_an_account_resting_after_a_failure_is_asked_again_rather_than_refuse() -> None:
    clock = Clock()
    pool = make_pool([member("a"), member("b")], clock=clock)
    pool.failed(live(pool, "a"), asked(UpstreamRateLimited("slow down"), 300))
    pool.cool_down(live(pool, "b"), "upstream failure: HTTP 500", 15)
    # Nothing else is left: b's failure may have been a blip, a's rest is the upstream's word.
    assert take(pool) == "b"


@pytest.mark.parametrize(
    "error",
    [
        UpstreamError("HTTP 500"),
        UpstreamTimeout("slow"),
        UpstreamConcurrencyLimited("busy", retry_after=1),
        UpstreamRateLimited("slow down", retry_after=10),
    ],
    ids=["500", "timeout", "449", "429-without-retry-after"],
)
def test_a_lone_account_resting_by_our_choice_is_probed_by_the_next_request(error: GatewayError) -> None:
    a = member("a")
    pool = make_pool([a])
    pool.failed(a, error)
    assert a.shown_state(START) == "cooling"
    assert take(pool) == "a"
    assert a.probing


def test_a_rest_of_our_choosing_steers_while_another_account_is_usable() -> None:
    pool = make_pool([member("a"), member("b")])
    pool.failed(live(pool, "a"), UpstreamError("HTTP 500"))
    assert [take_and_give_back(pool) for _ in range(3)] == ["b", "b", "b"]


def test_the_first_rest_to_end_is_probed_first_and_each_account_by_one_request_at_a_time() -> None:
    clock = Clock()
    a, b = member("a", limit=None), member("b", limit=None)
    pool = make_pool([a, b], clock=clock)
    pool.cool_down(a, "upstream failure: x", 20)
    pool.cool_down(b, "upstream failure: y", 10)
    assert take(pool) == "b"
    assert take(pool) == "a"  # b has its probe in flight

    async def third() -> None:
        waiter = asyncio.create_task(pool.acquire(MODEL))
        await settle()
        assert not waiter.done() and pool.waiting == 1  # waits for a probe's outcome
        pool.release(b)  # the probe ended (without a success): b may be probed again
        got = await asyncio.wait_for(waiter, 1)
        assert got is b and b.probing

    run(third())


def test_a_probes_success_ends_the_rest_and_its_growth_and_wakes_the_line() -> None:
    async def main() -> None:
        a = member("a")
        pool = make_pool([a])
        for _ in range(3):
            pool.failed(a, UpstreamConcurrencyLimited("busy"))
        assert (a.health.strikes, a.health.until) == (3, START + 8)
        probe = await pool.acquire(MODEL)
        waiters = [asyncio.create_task(pool.acquire(MODEL)) for _ in range(2)]
        await settle()
        assert pool.waiting == 2
        pool.succeeded(probe, START)
        pool.release(probe)
        first = await asyncio.wait_for(waiters[0], 1)
        assert first is a and a.health.state == "ok" and not a.probing
        pool.release(first)
        await asyncio.wait_for(waiters[1], 1)
        # Growth starts again from the base.
        assert pool.failed(a, UpstreamConcurrencyLimited("busy")).cooldown == 2

    run(main())


def test_a_probes_first_content_ends_the_rest_while_its_answer_still_streams() -> None:
    async def main() -> None:
        a = member("a", limit=None)  # openai-compatible: many requests at once
        pool = make_pool([a])
        pool.failed(a, UpstreamError("HTTP 500"))
        probe = await pool.acquire(MODEL)
        waiters = [asyncio.create_task(pool.acquire(MODEL)) for _ in range(5)]
        await settle()
        assert pool.waiting == 5  # one probe at a time, even with room for more
        pool.answered(probe, START)  # its first content is out; the stream goes on
        got = await asyncio.wait_for(asyncio.gather(*waiters), 1)
        assert all(m is a for m in got) and a.health.state == "ok" and a.in_flight == 6

    run(main())


def test_a_probes_failure_starts_the_next_rest_and_hands_the_next_probe_to_the_line() -> None:
    async def main() -> None:
        a = member("a")
        pool = make_pool([a])
        pool.failed(a, UpstreamError("HTTP 500"))
        probe = await pool.acquire(MODEL)
        waiter = asyncio.create_task(pool.acquire(MODEL))
        await settle()
        pool.failed(probe, UpstreamError("HTTP 500 again"))
        await settle()
        assert not waiter.done()  # the probe is still in flight until released
        pool.release(probe)
        got = await asyncio.wait_for(waiter, 1)
        assert got is a and a.probing and a.health.strikes == 2

    run(main())


def test_the_clients_own_errors_neither_grow_nor_end_a_rest() -> None:
    a = member("a")
    pool = make_pool([a])
    pool.failed(a, UpstreamRateLimited("slow down"))
    rest = a.health
    for error in (
        ContextTooLong("too long"),
        ModelNotFound("no such model"),
        InvalidRequest("bad", status=422),
    ):
        pool.failed(a, error)
    assert a.health == rest


def test_our_failure_does_not_cut_short_a_longer_rest_the_upstream_asked_for() -> None:
    a = member("a", limit=None)
    pool = make_pool([a])
    pool.failed(a, asked(UpstreamRateLimited("slow down"), 120))
    pool.failed(a, UpstreamTimeout("slow"))
    assert a.health.upstream_asked and a.health.until == START + 120


def test_quarantine_excludes_a_member_until_reset() -> None:
    a = member("a")
    pool = make_pool([a, member("b")])
    pool.quarantine(a, "blocked by the upstream")
    assert [take_and_give_back(pool) for _ in range(3)] == ["b"] * 3
    assert a.shown_state() == "quarantined"
    pool.reset(a)
    assert a.shown_state() == "ok"
    assert {take_and_give_back(pool) for _ in range(2)} == {"a", "b"}


@pytest.mark.parametrize(
    ("error", "status", "code", "advice"),
    [
        (AccountBlocked("AK blocked"), 403, "account_blocked", "iflow2api accounts enable"),
        (UpstreamAuthError("refused"), 401, "invalid_api_key", "iflow2api login"),
        (UpstreamAuthError("expired", code="api_key_expired"), 401, "api_key_expired", "iflow2api login"),
    ],
    ids=["blocked", "refused", "expired"],
)
def test_only_members_out_of_service_give_the_error_of_their_reason(
    error: GatewayError, status: int, code: str, advice: str
) -> None:
    a = member("a")
    pool = make_pool([a])
    if isinstance(error, AccountBlocked):
        pool.failed(a, error)
    else:  # what serve() does when no login can renew the key
        pool.quarantine(a, f"key: {error.message}", code=error.code)
    with pytest.raises(GatewayError) as caught:
        take(pool)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert advice in caught.value.message
    assert "account a (a):" in caught.value.message
    assert "sk-a-" not in caught.value.message


def test_a_login_that_needs_a_person_is_not_logged_in() -> None:
    class NeedsLogin:
        needs_login = True

    a = member("a")
    a.refresher = NeedsLogin()  # type: ignore[assignment]
    pool = make_pool([a])
    with pytest.raises(NotLoggedIn) as caught:
        take(pool)
    assert (caught.value.status, caught.value.code) == (401, "not_logged_in")
    assert "iflow2api login" in caught.value.message


def test_an_old_quarantine_without_a_code_is_account_blocked() -> None:
    a = member("a")
    a.health = AccountHealth("quarantined", 0.0, 0, "blocked", START, key_fingerprint(a.account.api_key))
    pool = make_pool([a])
    with pytest.raises(AccountBlocked):
        take(pool)


def test_a_new_key_lifts_a_quarantine_by_itself() -> None:
    a = member("a", key="sk-old-0123456789")
    pool = make_pool([a])
    pool.quarantine(a, "blocked")
    assert a.health.key_fingerprint == key_fingerprint("sk-old-0123456789")
    with pytest.raises(AccountBlocked):
        take(pool)
    a.account = Account("iflow", "api-key", "http://x", "sk-new-0123456789")
    assert a.current_health() == AccountHealth()
    assert take(pool) == "a"


def test_a_reload_with_the_same_key_keeps_the_quarantine_and_a_new_key_lifts_it() -> None:
    pool = make_pool([member("a", key="sk-old-0123456789")])
    pool.quarantine(live(pool, "a"), "blocked")
    pool.set_members([member("a", key="sk-old-0123456789")])
    assert live(pool, "a").shown_state() == "quarantined"
    pool.set_members([member("a", key="sk-new-0123456789")])
    assert take(pool) == "a"


# -- waiting --------------------------------------------------------------------------------------


def test_requests_wait_in_line_and_are_served_first_come_first_served() -> None:
    async def main() -> None:
        a = member("a")
        pool = make_pool([a])
        held = await pool.acquire(MODEL)
        served: list[int] = []

        async def request(n: int) -> None:
            got = await pool.acquire(MODEL)
            served.append(n)
            await asyncio.sleep(0)
            pool.release(got)

        tasks = [asyncio.create_task(request(n)) for n in range(4)]
        await settle()
        assert pool.waiting == 4 and served == []
        pool.release(held)
        await asyncio.gather(*tasks)
        assert served == [0, 1, 2, 3]
        assert (a.in_flight, pool.waiting) == (0, 0)

    run(main())


def test_a_waiting_request_gets_the_first_member_released() -> None:
    async def main() -> None:
        pool = make_pool([member("a"), member("b"), member("c")])
        held = [await pool.acquire(MODEL) for _ in range(3)]
        waiter = asyncio.create_task(pool.acquire(MODEL))
        await settle()
        assert not waiter.done()
        pool.release(held[1])
        got = await asyncio.wait_for(waiter, 1)
        assert got.id == "b" and got.in_flight == 1

    run(main())


def test_waiting_too_long_is_queue_full_and_leaves_the_line() -> None:
    async def main() -> None:
        a = member("a")
        pool = make_pool([a], queue_timeout=0.05)
        await pool.acquire(MODEL)
        started = time.monotonic()
        with pytest.raises(QueueFull) as caught:
            await pool.acquire(MODEL)
        assert time.monotonic() - started >= 0.04
        assert caught.value.status == 429
        assert caught.value.retry_after is not None and caught.value.retry_after >= 1
        assert (pool.waiting, a.in_flight) == (0, 1)

    run(main())


def test_a_cancelled_waiter_leaves_the_line_and_takes_no_slot() -> None:
    async def main() -> None:
        a = member("a")
        pool = make_pool([a])
        held = await pool.acquire(MODEL)
        waiter = asyncio.create_task(pool.acquire(MODEL))
        await settle()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pool.waiting == 0
        pool.release(held)
        assert a.in_flight == 0

    run(main())


def test_a_waiter_cancelled_just_after_being_handed_a_member_passes_it_on() -> None:
    async def main() -> None:
        a = member("a")
        pool = make_pool([a])
        held = await pool.acquire(MODEL)
        first = asyncio.create_task(pool.acquire(MODEL))
        second = asyncio.create_task(pool.acquire(MODEL))
        await settle()
        pool.release(held)  # hands a to the first waiter...
        first.cancel()  # ...whose client goes away before it runs again
        with pytest.raises(asyncio.CancelledError):
            await first
        got = await asyncio.wait_for(second, 1)
        assert got is a and a.in_flight == 1

    run(main())


def test_the_line_is_bounded_by_queue_size_times_enabled_members() -> None:
    async def main() -> None:
        pool = make_pool([member("a"), member("b"), member("c", enabled=False)], queue_size=2)
        held = [await pool.acquire(MODEL) for _ in range(2)]
        waiters = [asyncio.create_task(pool.acquire(MODEL)) for _ in range(4)]
        await settle()
        assert pool.waiting == 4
        started = time.monotonic()
        with pytest.raises(QueueFull) as caught:
            await pool.acquire(MODEL)
        assert time.monotonic() - started < 0.5  # refused at once, not after queue_timeout
        assert caught.value.retry_after == 5.0  # one second, plus one per request ahead
        assert pool.waiting == 4
        for got in held:
            pool.release(got)
        served = []
        for waiter in waiters:
            got = await asyncio.wait_for(waiter, 1)
            served.append(got.id)
            pool.release(got)
        assert sorted(served) == ["a", "a", "b", "b"]

    run(main())


def test_a_cooldown_ending_wakes_a_waiter_without_any_release() -> None:
    async def main() -> None:
        a, b = member("a"), member("b")
        pool = make_pool([a, b], clock=time.time, queue_timeout=2)
        await pool.acquire(MODEL, exclude=frozenset({"b"}))
        pool.cool_down(b, "test", 0.05)
        started = time.monotonic()
        got = await asyncio.wait_for(pool.acquire(MODEL), 1)
        assert got is b
        assert time.monotonic() - started >= 0.04
        assert (a.in_flight, b.in_flight, pool.waiting) == (1, 1, 0)

    run(main())


def test_waiters_fail_when_every_account_they_could_use_starts_cooling() -> None:
    async def main() -> None:
        a = member("a")
        pool = make_pool([a])
        held = await pool.acquire(MODEL)
        waiter = asyncio.create_task(pool.acquire(MODEL))
        await settle()
        pool.failed(held, asked(UpstreamRateLimited("slow down"), 40))
        with pytest.raises(AllAccountsCooling) as caught:
            await asyncio.wait_for(waiter, 1)
        assert caught.value.retry_after == 40.0
        pool.release(held)
        assert (a.in_flight, pool.waiting) == (0, 0)

    run(main())


# -- reloading ------------------------------------------------------------------------------------


def test_a_reload_keeps_live_counters_and_health_of_surviving_members() -> None:
    clock = Clock()
    a, b = member("a"), member("b")
    pool = make_pool([a, b], clock=clock)
    taken = asyncio.run(pool.acquire(MODEL))
    pool.failed(b, UpstreamTimeout("slow"))
    fresh_a, fresh_b, fresh_c = member("a"), member("b"), member("c")
    pool.set_members([fresh_a, fresh_b, fresh_c])
    assert pool.members() == [fresh_a, fresh_b, fresh_c]
    assert (fresh_a.in_flight, fresh_b.requests, fresh_b.errors) == (1, 1, 1)
    assert fresh_a.last_used == START
    assert fresh_b.health == b.health and fresh_b.health.state == "cooling"
    assert fresh_c.in_flight == 0
    # Release and outcomes for an object from before the reload count on the live one.
    pool.succeeded(taken)
    pool.release(taken)
    assert (fresh_a.in_flight, fresh_a.requests) == (0, 1)
    pool.set_members([member("b")])
    assert pool.get("a") is None and pool.get("c") is None


def test_a_reload_takes_the_stored_health_when_it_brings_one() -> None:
    pool = make_pool([member("a")])
    pool.quarantine(live(pool, "a"), "blocked")
    reloaded = member("a")
    reloaded.health = AccountHealth("cooling", START + 5, 1, "from the store", START)
    pool.set_members([reloaded])
    assert pool.get("a") is reloaded and reloaded.health.reason == "from the store"


def test_release_after_a_reload_frees_the_live_member_for_waiters() -> None:
    async def main() -> None:
        pool = make_pool([member("a")])
        held = await pool.acquire(MODEL)
        waiter = asyncio.create_task(pool.acquire(MODEL))
        await settle()
        live = member("a")
        pool.set_members([live])
        assert live.in_flight == 1 and not waiter.done()
        pool.release(held)
        got = await asyncio.wait_for(waiter, 1)
        assert got is live and live.in_flight == 1
        pool.release(got)
        assert live.in_flight == 0

    run(main())


# -- outcomes -------------------------------------------------------------------------------------


def test_rate_limits_cool_down_longer_with_each_strike() -> None:
    clock = Clock()
    health_log: list[tuple[str, AccountHealth]] = []
    a = member("a")
    pool = make_pool([a], clock=clock, health_log=health_log)
    for strikes, seconds in ((1, 2), (2, 4), (3, 8)):
        verdict = pool.failed(a, UpstreamRateLimited("slow down"))
        assert (verdict.action, verdict.cooldown, verdict.retry_elsewhere) == ("cooldown", seconds, True)
        assert a.health.state == "cooling"
        assert (a.health.until, a.health.strikes, a.health.since) == (START + seconds, strikes, START)
        assert a.health.reason == "rate limited: slow down"
        assert health_log[-1] == ("a", a.health)
    assert len(health_log) == 3
    assert (a.requests, a.errors) == (3, 3)


def test_a_rate_limit_honours_the_upstreams_retry_after() -> None:
    a = member("a")
    pool = make_pool([a])
    verdict = pool.failed(a, asked(UpstreamRateLimited("slow down"), 30))
    assert verdict.cooldown == 30
    assert a.health.until == START + 30 and a.health.upstream_asked
    assert not pool.failed(a, UpstreamRateLimited("slow down", retry_after=10)).upstream_asked


def test_busy_elsewhere_449_cools_down() -> None:
    a = member("a")
    pool = make_pool([a])
    verdict = pool.failed(a, UpstreamConcurrencyLimited("busy"))
    assert (verdict.action, a.health.state, a.health.until) == ("cooldown", "cooling", START + 2)


def test_a_blocked_account_is_quarantined_for_its_key() -> None:
    health_log: list[tuple[str, AccountHealth]] = []
    a = member("a", key="sk-blocked-0123456789")
    pool = make_pool([a], health_log=health_log)
    verdict = pool.failed(a, AccountBlocked("AK blocked"))
    assert (verdict.action, verdict.retry_elsewhere) == ("quarantine", True)
    assert a.health.state == "quarantined"
    assert a.health.key_fingerprint == key_fingerprint("sk-blocked-0123456789")
    assert a.health.reason is not None and "AK blocked" in a.health.reason
    assert health_log == [("a", a.health)]


@pytest.mark.parametrize("error", [UpstreamRateLimited("slow down"), UpstreamTimeout("slow")])
def test_a_later_failure_does_not_turn_a_quarantine_into_a_cooldown(error: GatewayError) -> None:
    # Two requests in flight on one account: the first finds it blocked, the second fails otherwise.
    clock = Clock()
    a = member("a", limit=None)
    pool = make_pool([a], clock=clock)
    pool.failed(a, AccountBlocked("AK blocked"))
    verdict = pool.failed(a, error)
    assert verdict.retry_elsewhere
    assert a.health.state == "quarantined"
    clock.now += 3600
    with pytest.raises(AccountBlocked):
        take(pool)


def test_a_refused_key_asks_for_a_refresh_and_leaves_health_alone() -> None:
    health_log: list[tuple[str, AccountHealth]] = []
    a = member("a")
    pool = make_pool([a], health_log=health_log)
    verdict = pool.failed(a, UpstreamAuthError("expired", code="api_key_expired"))
    assert (verdict.action, verdict.retry_elsewhere) == ("refresh", True)
    assert a.health == AccountHealth() and health_log == []
    assert a.errors == 1


@pytest.mark.parametrize("error", [UpstreamError("bad gateway"), UpstreamTimeout("slow")])
def test_upstream_failures_cool_down_for_the_error_cooldown(error: GatewayError) -> None:
    a = member("a")
    pool = make_pool([a])
    verdict = pool.failed(a, error)
    assert (verdict.action, verdict.cooldown, verdict.retry_elsewhere) == ("cooldown", 15, True)
    assert (a.health.state, a.health.until) == ("cooling", START + 15)


@pytest.mark.parametrize("error", [InvalidRequest("bad"), ContextTooLong("too long")])
def test_the_clients_own_fault_changes_nothing(error: GatewayError) -> None:
    health_log: list[tuple[str, AccountHealth]] = []
    a = member("a")
    pool = make_pool([a], health_log=health_log)
    verdict = pool.failed(a, error)
    assert (verdict.action, verdict.retry_elsewhere) == ("none", False)
    assert a.health == AccountHealth() and health_log == []


def test_success_clears_strikes_and_cooldowns_but_not_a_quarantine() -> None:
    clock = Clock()
    health_log: list[tuple[str, AccountHealth]] = []
    a = member("a")
    pool = make_pool([a], clock=clock, health_log=health_log)
    pool.succeeded(a)
    assert health_log == []  # a healthy account's success writes nothing
    pool.failed(a, UpstreamRateLimited("slow down"))
    pool.failed(a, UpstreamRateLimited("slow down"))
    clock.now += 100
    pool.succeeded(a)
    assert a.health == AccountHealth(since=START + 100)
    assert health_log[-1] == ("a", a.health)
    # The next rate limit starts from the base again.
    assert pool.failed(a, UpstreamRateLimited("slow down")).cooldown == 2
    pool.failed(a, AccountBlocked("blocked"))
    quarantined = a.health
    pool.succeeded(a)
    assert a.health == quarantined and a.health.state == "quarantined"
    assert (a.requests, a.errors) == (7, 4)


def test_reset_clears_cooldown_and_quarantine() -> None:
    health_log: list[tuple[str, AccountHealth]] = []
    a = member("a")
    pool = make_pool([a], health_log=health_log)
    pool.failed(a, UpstreamRateLimited("slow"))
    pool.reset(a)
    assert a.health == AccountHealth(since=START)
    assert health_log[-1] == ("a", AccountHealth(since=START))


def test_checking_whether_all_rest_does_not_move_round_robin_on() -> None:
    pool = make_pool([member("a"), member("b"), member("c")])
    assert take_and_give_back(pool) == "a"
    assert pool.asked_rest(MODEL) is None
    assert pool.asked_rest(MODEL) is None
    assert take_and_give_back(pool) == "b"


def test_asked_rest_is_the_first_end_only_when_every_account_rests_as_the_upstream_asked() -> None:
    clock = Clock()
    pool = make_pool([member("a"), member("b"), member("c")], clock=clock)
    pool.quarantine(live(pool, "c"), "blocked")
    pool.failed(live(pool, "a"), asked(UpstreamRateLimited("x"), 300))
    assert pool.asked_rest(MODEL) is None  # b is fine
    pool.failed(live(pool, "b"), UpstreamError("HTTP 500"))
    assert pool.asked_rest(MODEL) is None  # b may be probed
    pool.failed(live(pool, "b"), asked(UpstreamRateLimited("x"), 120))
    clock.now += 20
    assert pool.asked_rest(MODEL) == 100.0


def test_spent_credit_shows_as_out_of_credit_whether_it_waits_for_a_person_or_a_reset_time() -> None:
    a, b = member("a"), member("b")
    pool = make_pool([a, b])
    verdict = pool.failed(a, OutOfCredit("balance spent"))
    assert (verdict.action, a.shown_state(START)) == ("quarantine", "out-of-credit")
    verdict = pool.failed(b, OutOfCredit("weekly limit spent").asked_to_wait(3600))
    assert (verdict.action, verdict.upstream_asked) == ("cooldown", True)
    assert b.shown_state(START) == "out-of-credit"
    assert b.shown_state(START + 3601) == "ok"  # the stated reset came

"""Leases on the accounts' slots, shared by several gateway instances through a ``Coordinator``.

One process alone needs none of this (``Pool`` then counts its own requests in flight). With
several, a request the local pool gives a slot must also hold a lease from the coordination store
before it goes upstream; iFlow bans an account that has two requests in flight, so:

- **Taking.** Refused (the other instances hold the account's slots), the slot goes back, the
  member counts as busy ``elsewhere`` and the request keeps its place at the head of the line,
  where a ``freed`` event of another instance, or the backstop poll of the lease counts of the
  accounts busy elsewhere every ``BACKSTOP_SECONDS``, wakes it. Accounts without a limit take no lease.
- **Renewing.** One task per instance renews every lease held, in one batch, every third of the
  lease's lifetime; a lease found gone (its instance lost the store for longer than that) is
  logged, and the request that held it releases nothing when it ends.
- **Giving back**, by id, in a task of its own: the request's ``finally`` hands it over, so a
  client that goes away (Claude Code cancels a stream every turn) cannot cancel the release. The
  local slot is freed once the store has answered, so that a local waiter asking next finds the
  lease gone. Lost on the way (the store down): it expires after ``lease_ttl``.
- **Failing closed.** When the store does not answer, the request keeps its slot and asks again
  every ``RETRY_SECONDS``, for at most ``min(queue_timeout, DOWN_WAIT)`` seconds, then gets a 503
  with ``Retry-After`` (``CoordinationUnavailable``). It never goes upstream without a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from iflow2api.coordination import CoordinationDown, Coordinator, Event, Taken
from iflow2api.errors import CoordinationUnavailable
from iflow2api.pool.members import Member

if TYPE_CHECKING:
    from iflow2api.pool.router import Pool

log = logging.getLogger("iflow2api.pool")
T = TypeVar("T")

#: How often the lease counts of the accounts busy elsewhere are read again: a ``freed`` event
#: lost on the way (or never sent, by an instance that died) delays a waiting request by this much
#: at most, not until its timeout.
BACKSTOP_SECONDS = 0.25
#: Seconds between two tries while the coordination store does not answer.
RETRY_SECONDS = 0.25
#: The longest a request waits for the store to answer again before its 503.
DOWN_WAIT = 10.0
#: How long a release may take before the lease is left to expire.
GIVE_BACK_SECONDS = 2.0


async def answer(work: Awaitable[T], failed: Callable[[str], None], operation: str) -> T | None:
    """What the store answered to ``work``, or None when it did not (counted as ``operation``):
    for the background polls, which simply try again next round."""
    try:
        return await work
    except CoordinationDown:
        failed(operation)
        return None


class Leases:
    #: The pool whose slots come with these leases (``bind``, by the pool itself).
    _pool: Pool

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        ttl: float,
        failed: Callable[[str], None],
    ) -> None:
        self._coordinator = coordinator
        self.ttl = ttl
        #: Counts a coordination failure by what was being done (``/metrics``).
        self._failed = failed
        #: Lease ids this instance holds, per account (any of an account's leases may be given back
        #: for any of its requests: they are alike).
        self.held: dict[str, list[str]] = {}
        #: Requests in flight whose lease expired under them, per account: theirs give nothing back.
        self._lost: dict[str, int] = {}
        #: ``freed`` events heard per account, so a take can tell those that crossed it.
        self._freed: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    def bind(self, pool: Pool) -> None:
        self._pool = pool

    def own(self, account_id: str) -> int:
        return len(self.held.get(account_id, ()))

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._loops = [asyncio.ensure_future(self._renew()), asyncio.ensure_future(self._backstop())]

    async def close(self) -> None:
        """Stop renewing, and give back what is still held (the store may be down: at most
        ``GIVE_BACK_SECONDS``; what is not given back expires)."""
        for task in self._loops:
            task.cancel()
        if self._loops:
            await asyncio.wait(self._loops)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=GIVE_BACK_SECONDS)
        held = [(account, lease) for account, leases in self.held.items() for lease in leases]
        self.held.clear()
        with contextlib.suppress(CoordinationDown, TimeoutError):
            async with asyncio.timeout(GIVE_BACK_SECONDS):
                for account, lease in held:
                    await self._coordinator.give_back(account, lease)

    # -- taking ----------------------------------------------------------------------------------

    async def acquire(self, model: str, session: str | None, exclude: frozenset[str]) -> Member:
        """A member whose local slot and shared lease are both taken (``Pool.acquire``'s errors,
        and ``CoordinationUnavailable`` when the store stays down)."""
        pool = self._pool
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pool.queue_timeout
        front = False
        while True:
            member = await pool.acquire(
                model, session=session, exclude=exclude, within=deadline - loop.time(), front=front
            )
            if member.limit is None:
                return member
            try:
                if await self._take(member):
                    return member
            except BaseException:
                pool.release_slot(member)
                raise
            # Full elsewhere: back to the head of the line, for the next account or the next freed.
            pool.release_slot(member)
            front = True

    async def _take(self, member: Member) -> bool:
        """Whether a lease was granted; while the store does not answer, ask again (the slot held,
        so the line keeps its order), up to the bound of the failure policy."""
        pool = self._pool
        loop = asyncio.get_running_loop()
        give_up = loop.time() + min(pool.queue_timeout, DOWN_WAIT)
        limit = member.limit
        assert limit is not None
        while True:
            freed = self._freed.get(member.id, 0)
            asking = asyncio.ensure_future(self._coordinator.take_lease(member.id, limit, self.ttl))
            try:
                # Shielded: a client gone while the store grants the lease must not leave it
                # behind for lease_ttl (on a one-request account, the whole account).
                taken = await asyncio.shield(asking)
            except asyncio.CancelledError:
                asking.add_done_callback(functools.partial(self._abandoned, member))
                raise
            except CoordinationDown as exc:
                self._failed("lease")
                if loop.time() + RETRY_SECONDS >= give_up:
                    log.error(
                        "no lease for account %s: the coordination store is down: %s", member.label, exc
                    )
                    raise CoordinationUnavailable(
                        "The gateway instances' coordination store (Redis) does not answer, and no "
                        "request goes to an account without its lease. Retry shortly.",
                        retry_after=DOWN_WAIT,
                    ) from None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if taken.lease_id is not None:
                self.held.setdefault(member.id, []).append(taken.lease_id)
                member.elsewhere = max(0, taken.held - self.own(member.id))
                return True
            # Refused means full, whatever the count says: the slot given back must not look free;
            # unless a release elsewhere crossed the refusal, and the count is already one too high.
            crossed = self._freed.get(member.id, 0) - freed
            full = max(taken.held - self.own(member.id), limit - member.in_flight + 1)
            member.elsewhere = max(0, full - crossed)
            return False

    def _abandoned(self, member: Member, asking: asyncio.Future[Taken]) -> None:
        """The request that asked is gone: a lease granted all the same goes straight back."""
        if asking.cancelled() or asking.exception() is not None:
            return
        lease = asking.result().lease_id
        if lease is not None:
            self._spawn_give_back(member, lease, lambda: None)

    # -- giving back -----------------------------------------------------------------------------

    def give_back(self, member: Member, then: Callable[[], None]) -> None:
        """Release one of ``member``'s leases off the request's path, then call ``then`` (which
        frees the local slot); at once when it holds none."""
        lost = self._lost.get(member.id, 0)
        leases = self.held.get(member.id)
        if lost:
            self._lost[member.id] = lost - 1
            then()
            return
        if not leases:
            then()
            return
        lease = leases.pop()
        if not leases:
            del self.held[member.id]
        self._spawn_give_back(member, lease, then)

    def _spawn_give_back(self, member: Member, lease: str, then: Callable[[], None]) -> None:
        task = asyncio.ensure_future(self._give_back(member, lease, then))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _give_back(self, member: Member, lease: str, then: Callable[[], None]) -> None:
        try:
            async with asyncio.timeout(GIVE_BACK_SECONDS):
                await self._coordinator.give_back(member.id, lease)
        except (CoordinationDown, TimeoutError) as exc:
            self._failed("give_back")
            log.warning(
                "could not give back a lease of account %s (%s); it expires within %g s",
                member.label,
                exc or "timed out",
                self.ttl,
            )
        finally:
            then()

    # -- what other instances did ----------------------------------------------------------------

    def heard(self, event: Event) -> None:
        """Another instance gave back a lease: one slot fewer is busy elsewhere."""
        self._freed[event.subject] = self._freed.get(event.subject, 0) + 1
        member = self._pool.get(event.subject)
        if member is not None and member.elsewhere:
            member.elsewhere -= 1
            self._pool.serve_waiters()

    async def _backstop(self) -> None:
        pool = self._pool
        while True:
            await asyncio.sleep(BACKSTOP_SECONDS)
            # Not only while someone waits: a count left too high would steer requests elsewhere.
            busy = [m.id for m in pool.members() if m.elsewhere]
            if not busy:
                continue
            counts = await answer(self._coordinator.leases_held(busy), self._failed, "leases_held")
            if counts is None:
                continue
            for account_id in busy:
                member = pool.get(account_id)
                if member is not None:
                    member.elsewhere = max(0, counts.get(account_id, 0) - self.own(account_id))
            pool.serve_waiters()

    async def _renew(self) -> None:
        period = delay = self.ttl / 3
        while True:
            await asyncio.sleep(delay)
            delay = period
            held = [(account, lease) for account, leases in self.held.items() for lease in leases]
            if not held:
                continue
            try:
                alive = await self._coordinator.renew_leases(held, self.ttl)
            except CoordinationDown as exc:
                self._failed("renew")
                log.warning("could not renew %d account lease(s): %s", len(held), exc)
                delay = min(period, RETRY_SECONDS * 4)  # soon again: the leases are running out
                continue
            for (account, lease), kept in zip(held, alive, strict=True):
                if not kept:
                    await self._retake(account, lease)

    async def _retake(self, account_id: str, lease: str) -> None:
        """A lease gone while its request runs (it expired, or the store restarted empty): another
        at once, and only when the account is full by now is it lost."""
        member = self._pool.get(account_id)
        taken = Taken(None, 0)
        if member is not None and member.limit is not None:
            with contextlib.suppress(CoordinationDown):
                taken = await self._coordinator.take_lease(account_id, member.limit, self.ttl)
        leases = self.held.get(account_id)
        if taken.lease_id is not None and member is not None:
            if leases is not None and lease in leases:
                leases[leases.index(lease)] = taken.lease_id
                log.info("a lease of account %s was gone (store restarted?); taken again", member.label)
            else:  # its request ended meanwhile
                self._spawn_give_back(member, taken.lease_id, lambda: None)
            return
        self._forget(account_id, lease)

    def _forget(self, account_id: str, lease: str) -> None:
        leases = self.held.get(account_id)
        if leases is None or lease not in leases:
            return  # given back meanwhile
        leases.remove(lease)
        if not leases:
            del self.held[account_id]
        self._lost[account_id] = self._lost.get(account_id, 0) + 1
        member = self._pool.get(account_id)
        log.warning(
            "a lease of account %s expired while its request ran (the coordination store was out of "
            "reach for longer than lease_ttl): another instance may use the account at the same time",
            member.label if member is not None else account_id,
        )

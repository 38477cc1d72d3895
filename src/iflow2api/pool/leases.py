"""Leases on the accounts' slots, shared by several gateway instances through a ``Coordinator``.

One process alone needs none of this (``Pool`` then counts its own requests in flight). With
several, a request the local pool gives a slot must also hold a lease from the coordination store
before it goes upstream; iFlow bans an account that has two requests in flight, so:

- **Taking.** Refused (the other instances hold the account's slots), the slot goes back, the
  member counts as busy ``elsewhere`` and the request goes back in the line at the place it
  arrived at (``pool.line``), where a ``freed`` event of another instance, or the backstop poll of
  the lease counts of the accounts busy elsewhere every ``BACKSTOP_SECONDS``, wakes it. Accounts
  without a limit take no lease.
- **Renewing.** One task per instance renews every lease held, in one batch, every third of the
  lease's lifetime, and at once when the backstop finds fewer of ours in the store than we hold,
  or when the store answers again after failing. A lease found gone is taken again at once under
  its id (``retake``); only when the account is full by then is it lost: the request that held it
  releases nothing when it ends.
- **The store losing its data** (Redis restarted without persistence, a failover): the leases
  held are gone, and until their holders take them again another instance could be granted the
  same slot. Each account has an epoch in the store (``i2a:{a:<id>}:epoch``, set by the first take
  that finds none); this instance remembers the one it last saw per account (learned by its first
  take, and by the backstop for every account with a limit) and passes it with each take. A take
  that finds another epoch is refused with ``reset``, and this instance then takes no new lease
  on ANY account for one ``lease_ttl``: a grace in which holders take theirs again (their backstop
  notices within ``BACKSTOP_SECONDS``, their renewal within a third of ``lease_ttl``). The edge
  left: an instance that never saw an account's epoch before the loss (one that started during
  the grace) is granted a lease as on a new store, even if the holder has not taken it again yet.
- **Giving back**, by id, in a task of its own: the request's ``finally`` hands it over, so a
  client that goes away (Claude Code cancels a stream every turn) cannot cancel the release. The
  local slot is freed once the store has answered, so that a local waiter asking next finds the
  lease gone. Lost on the way (the store down): it expires after ``lease_ttl``.
- **Failing closed.** When the store does not answer, the request gives its slot back (so the
  others in the line ask too, rather than wait behind its retries), asks again every
  ``RETRY_SECONDS`` from its place in the line, and gets a 503 with ``Retry-After``
  (``CoordinationUnavailable``) once ``min(queue_timeout, DOWN_WAIT)`` seconds have passed since
  it arrived. It never goes upstream without a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from iflow2api.coordination import CoordinationDown, Coordinator, Event, Taken
from iflow2api.errors import CoordinationUnavailable, QueueFull
from iflow2api.pool.members import Member

if TYPE_CHECKING:
    from iflow2api.pool.router import Pool

log = logging.getLogger("iflow2api.pool")

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
        #: The epoch of each account in the store, as last seen (module docstring).
        self.epochs: dict[str, str] = {}
        #: Set except during the grace after the store lost its leases: no new lease then.
        self._open = asyncio.Event()
        self._open.set()
        self._grace: asyncio.TimerHandle | None = None
        #: The store failed its last lease call: the line's waits end at each request's 503.
        self._down = False
        #: Set to renew now rather than at the next third of the lease's lifetime.
        self._renew_now = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    def bind(self, pool: Pool) -> None:
        self._pool = pool

    def own(self, account_id: str) -> int:
        return len(self.held.get(account_id, ()))

    @property
    def in_grace(self) -> bool:
        """No new lease is taken: the store lost its leases a moment ago."""
        return not self._open.is_set()

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
        if self._grace is not None:
            self._grace.cancel()
        if self._tasks:
            _, late = await asyncio.wait(list(self._tasks), timeout=GIVE_BACK_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
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
        arrived = loop.time()
        deadline = arrived + pool.queue_timeout
        # The 503's deadline counts from this request's arrival, whoever else waits or retries.
        give_up = arrived + min(pool.queue_timeout, DOWN_WAIT)
        place = pool.arrive()
        returning = False
        while True:
            await self._after_grace(deadline)
            # Up to the 503's deadline first: the store may be found down meanwhile. Leaving the
            # line then costs nothing, the request comes back at its place.
            bounded = self._down or loop.time() < give_up
            until = give_up if bounded else deadline
            try:
                member = await pool.take_slot(
                    model, session, exclude, until - loop.time(), place, returning=returning
                )
            except QueueFull:
                if self._down:
                    raise _unavailable() from None
                if not bounded or loop.time() < until:  # waited its whole time, or the line is full
                    raise
                returning = True
                continue
            returning = True
            if member.limit is None:
                return member
            if self.in_grace:  # the store lost its leases while this request waited in the line
                pool.release_slot(member)
                continue
            try:
                granted = await self._take(member)
            except CoordinationDown as exc:
                # Not retried holding the slot: the requests behind it would wait for its retries.
                pool.release_slot(member)
                if loop.time() + RETRY_SECONDS >= give_up:
                    log.error(
                        "no lease for account %s: the coordination store is down: %s", member.label, exc
                    )
                    raise _unavailable() from None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except BaseException:
                pool.release_slot(member)
                raise
            if granted:
                return member
            # Full elsewhere: back to the line at its place, for the next account or the next freed.
            pool.release_slot(member)

    async def _after_grace(self, deadline: float) -> None:
        """Wait, if the store lost its leases a moment ago, until their holders took them again."""
        if self._open.is_set():
            return
        try:
            async with asyncio.timeout(max(0.0, deadline - asyncio.get_running_loop().time())):
                await self._open.wait()
        except TimeoutError:
            raise CoordinationUnavailable(
                "The gateway instances' coordination store (Redis) lost its account leases; no "
                "new request goes upstream until the requests in flight have taken theirs again. "
                "Retry shortly.",
                retry_after=self.ttl,
            ) from None

    async def _take(self, member: Member) -> bool:
        """Whether a lease was granted (``CoordinationDown`` when the store does not answer)."""
        limit = member.limit
        assert limit is not None
        freed = self._freed.get(member.id, 0)
        asking = asyncio.ensure_future(
            self._coordinator.take_lease(member.id, limit, self.ttl, epoch=self.epochs.get(member.id))
        )
        try:
            # Shielded: a client gone while the store grants the lease must not leave it
            # behind for lease_ttl (on a one-request account, the whole account).
            taken = await asyncio.shield(asking)
        except asyncio.CancelledError:
            asking.add_done_callback(functools.partial(self._abandoned, member))
            raise
        except CoordinationDown:
            self._went_down("lease")
            raise
        self._came_back()
        self._learn(member.id, taken)
        if taken.lease_id is not None:
            self.held.setdefault(member.id, []).append(taken.lease_id)
            member.elsewhere = max(0, taken.held - self.own(member.id))
            return True
        if taken.reset:
            return False  # the grace has begun: the request waits for its end
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

    # -- the store's epochs ----------------------------------------------------------------------

    def _learn(self, account_id: str, taken: Taken) -> None:
        if taken.reset and not self.in_grace:
            self._begin_grace(account_id)
        if taken.epoch is not None:
            self.epochs[account_id] = taken.epoch

    def _begin_grace(self, account_id: str) -> None:
        member = self._pool.get(account_id)
        log.warning(
            "the coordination store lost its account leases (account %s has a new epoch): no new "
            "lease for %g s, while the requests in flight on every instance take theirs again",
            member.label if member is not None else account_id,
            self.ttl,
        )
        self._open.clear()
        self._grace = asyncio.get_running_loop().call_later(self.ttl, self._open.set)
        # Every epoch known is stale too (the store lost them all at once): relearn them now,
        # within this grace, rather than meet each in a grace of its own.
        self.epochs = {account_id: self.epochs.get(account_id, "")}
        self._renew_now.set()

    async def _learn_epochs(self) -> None:
        """Learn the epoch of each account with a limit not known yet: a take that can never be
        granted (limit 0), knowing none, so never a reset."""
        for member in self._pool.members():
            if member.limit is None or member.id in self.epochs:
                continue
            taken = await self._coordinator.take_lease(member.id, 0, self.ttl)
            self.epochs[member.id] = taken.epoch or ""

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

    # -- the store's state -----------------------------------------------------------------------

    def _went_down(self, operation: str) -> None:
        self._failed(operation)
        self._down = True

    def _came_back(self) -> None:
        """The store answers again: what it may have lost while away is renewed (or taken
        again) now, not a third of the lease's lifetime later."""
        if self._down:
            self._down = False
            self._renew_now.set()

    # -- the loops -------------------------------------------------------------------------------

    async def _backstop(self) -> None:
        while True:
            await asyncio.sleep(BACKSTOP_SECONDS)
            try:
                await self._look()
            except CoordinationDown:
                self._went_down("leases_held")
            except Exception:
                # The loop must outlive any surprise: without it, waiters hang on lost events.
                log.exception("the lease backstop failed; it goes on")

    async def _look(self) -> None:
        """Read the lease counts of the accounts busy elsewhere (a count left too high would
        steer requests elsewhere) and of those we hold (fewer than ours: the store lost some)."""
        pool = self._pool
        await self._learn_epochs()
        busy = [m.id for m in pool.members() if m.elsewhere]
        mine = list(self.held)
        asked = list(dict.fromkeys(busy + mine))
        if not asked:
            return
        counts = await self._coordinator.leases_held(asked)
        self._came_back()
        for account_id in busy:
            member = pool.get(account_id)
            if member is not None:
                member.elsewhere = max(0, counts.get(account_id, 0) - self.own(account_id))
        if any(counts.get(account_id, 0) < self.own(account_id) for account_id in mine):
            self._renew_now.set()
        pool.serve_waiters()

    async def _renew(self) -> None:
        period = self.ttl / 3
        delay = period
        while True:
            # asyncio.wait, not a timeout: a cancel (shutdown) meeting the timeout is never lost.
            waking = asyncio.ensure_future(self._renew_now.wait())
            try:
                await asyncio.wait({waking}, timeout=delay)
            finally:
                waking.cancel()
            self._renew_now.clear()
            try:
                delay = await self._renew_once(period)
            except Exception:
                # The loop must outlive any surprise: without it, every lease expires under its request.
                log.exception("renewing the account leases failed; trying again")
                delay = min(period, RETRY_SECONDS * 4)

    async def _renew_once(self, period: float) -> float:
        """Renew every lease held, taking again those found gone; the seconds to the next time."""
        held = [(account, lease) for account, leases in self.held.items() for lease in leases]
        if not held:
            return period
        try:
            alive = await self._coordinator.renew_leases(held, self.ttl)
        except CoordinationDown as exc:
            self._went_down("renew")
            log.warning("could not renew %d account lease(s): %s", len(held), exc)
            return min(period, RETRY_SECONDS * 4)  # soon again: the leases are running out
        self._came_back()
        for (account, lease), kept in zip(held, alive, strict=True):
            if not kept:
                await self._retake(account, lease)
        return period

    async def _retake(self, account_id: str, lease: str) -> None:
        """A lease gone while its request runs (it expired, or the store lost it): taken again at
        once under its id, whatever the epoch; lost only when the account is full by now."""
        member = self._pool.get(account_id)
        if member is None or member.limit is None:
            self._forget(account_id, lease)
            return
        try:
            taken = await self._coordinator.take_lease(
                account_id, member.limit, self.ttl, epoch=self.epochs.get(account_id), retake=lease
            )
        except CoordinationDown:
            self._went_down("lease")
            return  # still ours to take again, when the store answers (``_came_back``)
        if taken.epoch is not None:
            self.epochs[account_id] = taken.epoch
        if taken.lease_id is None:
            self._forget(account_id, lease)
        elif lease in self.held.get(account_id, ()):
            log.info("a lease of account %s was gone (store restarted?); taken again", member.label)
        else:  # its request ended meanwhile
            self._spawn_give_back(member, taken.lease_id, lambda: None)

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


def _unavailable() -> CoordinationUnavailable:
    return CoordinationUnavailable(
        "The gateway instances' coordination store (Redis) does not answer, and no request goes "
        "to an account without its lease. Retry shortly.",
        retry_after=DOWN_WAIT,
    )

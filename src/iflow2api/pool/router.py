"""Choosing an account for each request, and keeping the line of requests that wait for one.

Which accounts may take a request: enabled, serving the model, not quarantined, not resting. Of
those, the free ones (fewer requests in flight than their limit; iFlow allows one) are taken
round-robin, or first-listed-first with ``fill-first``; with session affinity, a conversation's
account is preferred while it is free. When all of them are busy, the request waits in one line,
first come first served, for the first that frees up.

When none may take it, the gateway must not be less available than its upstream, so what happens
depends on why (``pool.outcomes`` tells the rests apart):

- some rest after a failure, for a time the gateway chose itself: such a rest only steers requests
  elsewhere, and there is nowhere else. The one whose rest ends first is tried anyway, as a probe,
  one request at a time per account; the others wait in the line for the probe's outcome (a
  success ends the rest, a failure starts the next one and the next probe);
- all rest because the upstream asked (its ``Retry-After``): the request waits for the first rest
  to end when that is within ``max_cooldown_wait`` seconds, and otherwise gets a 429 with that
  ``Retry-After``;
- all are out of service (quarantined, or a login that needs a person): the error of that reason,
  saying what to do (403 ``account_blocked``, 401 ``invalid_api_key``, ``api_key_expired`` or
  ``not_logged_in``).

Nothing here awaits the state store: health and affinity changes are handed to the account
directory (``AccountDirectory``, given at construction), which writes them off the request path.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from iflow2api.errors import (
    AllAccountsCooling,
    GatewayError,
    ModelNotFound,
    NoAccountAvailable,
    OutOfCredit,
    QueueFull,
)
from iflow2api.pool.leases import Leases
from iflow2api.pool.line import Line, Waiter
from iflow2api.pool.members import Member, key_fingerprint
from iflow2api.pool.out_of_service import out_of_service
from iflow2api.pool.outcomes import CooldownPolicy, Verdict, verdict_for
from iflow2api.pool.shared_health import SharedHealth
from iflow2api.state.records import AccountHealth

log = logging.getLogger("iflow2api.pool")

Strategy = Literal["round-robin", "fill-first"]
#: Conversations remembered for affinity, at most (the least recently seen are forgotten first).
MAX_AFFINITIES = 20_000


class AccountDirectory(Protocol):
    """What the pool asks about its accounts, and where it hands their changes to be kept
    (``pool.directory.Directory``)."""

    def serves(self, member: Member, model: str) -> bool | None:
        """True (it says so), False (it says not), or None (unknown)."""
        ...

    def known_models(self, members: Iterable[Member]) -> list[str]: ...

    def persist_health(self, account_id: str, health: AccountHealth) -> None: ...

    def persist_affinity(self, session: str, account_id: str) -> None: ...


class Pool:
    def __init__(
        self,
        *,
        strategy: Strategy,
        affinity: bool,
        queue_size: int,
        queue_timeout: float,
        policy: CooldownPolicy,
        directory: AccountDirectory,
        clock: Callable[[], float] = time.time,
        leases: Leases | None = None,
        shared_health: SharedHealth | None = None,
    ) -> None:
        self.strategy = strategy
        self.affinity = affinity
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.policy = policy
        self._directory = directory
        self._clock = clock
        self._members: dict[str, Member] = {}
        self._order: list[Member] = []
        self._next = 0
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._waiters = Line()
        self._wakeup: asyncio.TimerHandle | None = None
        # Several instances (``pool.leases``, ``pool.shared_health``); None for one process alone.
        self._leases = leases
        self._shared = shared_health
        if leases is not None:
            leases.bind(self)
        if shared_health is not None:
            shared_health.bind(self)

    # -- membership ------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        return list(self._order)

    def get(self, member_id: str) -> Member | None:
        return self._members.get(member_id)

    def set_members(self, members: Iterable[Member]) -> None:
        """Replace the membership, keeping each surviving account's live counters and health."""
        fresh: dict[str, Member] = {}
        for member in members:
            old = self._members.get(member.id)
            if old is not None:
                member.in_flight, member.requests, member.errors = old.in_flight, old.requests, old.errors
                member.probing = old.probing
                member.last_used = old.last_used
                member.elsewhere = old.elsewhere
                if member.health == AccountHealth():
                    member.health = old.health
            fresh[member.id] = member
        self._members = fresh
        self._order = list(fresh.values())
        self._serve_waiters()

    def restore_affinities(self, sessions: dict[str, str]) -> None:
        for session, member_id in sessions.items():
            self._sessions[session] = member_id

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def waiting_for(self, member: Member) -> int:
        """Requests in the line that this member could take (for the page and the metrics)."""
        return sum(
            1
            for waiter in self._waiters
            if member.id not in waiter.exclude and self._directory.serves(member, waiter.model) is not False
        )

    # -- taking and giving back ------------------------------------------------------------------

    async def acquire(
        self, model: str, *, session: str | None = None, exclude: frozenset[str] = frozenset()
    ) -> Member:
        """A member with a slot taken for this request; ``release`` it when done.

        Raises ``AllAccountsCooling`` (429: every account rests at the upstream's request for longer
        than we wait), the error of the reason every account is out of service (403/401),
        ``NoAccountAvailable`` (503: none enabled, or all tried), ``ModelNotFound`` or, after
        waiting too long or with the line full, ``QueueFull`` (429). With several instances, the
        slot comes with the account's lease (``pool.leases``), or ``CoordinationUnavailable``.
        One process alone goes straight on: its path has no call or await more than before.
        """
        if self._leases is not None:
            return await self._leases.acquire(model, session, exclude)
        return await self.take_slot(model, session, exclude, self.queue_timeout, self._waiters.arrive())

    def arrive(self) -> int:
        """A place in the line for a request arriving now (``take_slot``)."""
        return self._waiters.arrive()

    async def take_slot(
        self,
        model: str,
        session: str | None,
        exclude: frozenset[str],
        within: float,
        place: int,
        *,
        returning: bool = False,
    ) -> Member:
        """The local slot alone, waiting at most ``within`` seconds at ``place`` in the line
        (``pool.leases`` takes the lease after). A ``returning`` request (it left the line because
        another instance held the account, and keeps its place) is never refused as one too many."""
        if not self._waiters:
            member = self._pick(model, session, exclude)
            if member is not None:
                self._take(member, session)
                return member
        else:
            # Fail now if nothing could ever take it (without moving round-robin's pointer).
            self._pick(model, session, exclude, advance=False)
        usable = sum(1 for m in self._order if m.enabled)
        if not returning and len(self._waiters) >= self.queue_size * max(1, usable):
            raise QueueFull(
                f"Too many requests are waiting for a free account ({len(self._waiters)} queued). "
                "Retry later.",
                retry_after=self._estimated_wait(),
            )
        waiter = Waiter(model, session, exclude, asyncio.get_running_loop().create_future(), place)
        self._waiters.add(waiter)
        self._serve_waiters()
        try:
            async with asyncio.timeout(max(0.0, within)):
                return await waiter.future
        except BaseException as exc:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self.release_slot(waiter.future.result())  # handed a slot just as we gave up: pass it on
            else:
                waiter.future.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise QueueFull(
                    f"Waited {self.queue_timeout:g} s for a free account. Retry later.",
                    retry_after=self._estimated_wait(),
                ) from None
            raise

    def _current(self, member: Member) -> Member:
        """The pool's own object for ``member``: a reload replaces the objects, keeping the counts."""
        return self._members.get(member.id, member)

    def release(self, member: Member) -> None:
        if self._leases is not None:
            # The slot is free once the store has the lease back (``Leases.give_back``).
            self._leases.give_back(member, functools.partial(self.release_slot, member))
            return
        self.release_slot(member)

    def release_slot(self, member: Member) -> None:
        member = self._current(member)
        member.in_flight -= 1
        member.probing = False
        if self._waiters:
            self._serve_waiters()

    def _take(self, member: Member, session: str | None) -> None:
        member.in_flight += 1
        member.last_used = now = self._clock()
        if member.shown_state(now) == "cooling":
            member.probing = True
        if self.affinity and session is not None:
            if self._sessions.get(session) != member.id:
                self._directory.persist_affinity(session, member.id)
            self._sessions[session] = member.id
            self._sessions.move_to_end(session)
            while len(self._sessions) > MAX_AFFINITIES:
                self._sessions.popitem(last=False)

    def _estimated_wait(self) -> float:
        return 1.0 + len(self._waiters)

    # -- choosing ------------------------------------------------------------------------------------

    def _candidates(self, model: str, exclude: frozenset[str]) -> list[Member]:
        """Enabled members that serve ``model``: those that say so, else those that may."""
        sure: list[Member] = []
        maybe: list[Member] = []
        for member in self._order:
            if not member.enabled or member.id in exclude:
                continue
            serves = self._directory.serves(member, model)
            if serves:
                sure.append(member)
            elif serves is None:
                maybe.append(member)
        return sure or maybe

    def _pick(
        self, model: str, session: str | None, exclude: frozenset[str], *, advance: bool = True
    ) -> Member | None:
        """A free usable member; None when all usable ones are busy; raises when none is usable."""
        candidates = self._candidates(model, exclude)
        if not candidates:
            if any(m.enabled for m in self._order):
                if exclude:
                    raise NoAccountAvailable("Every account that serves this model failed this request.")
                known = ", ".join(self._directory.known_models(self._order)) or "(none known)"
                raise ModelNotFound(
                    f"No account of this gateway serves the model '{model}'. Available: {known}.",
                    param="model",
                )
            raise NoAccountAvailable(
                "This gateway has no enabled upstream account. Add one on its page or with "
                "`iflow2api accounts add`, or log in with `iflow2api login`."
            )
        now = self._clock()
        usable: list[Member] = []
        probes: list[Member] = []
        asked: list[Member] = []
        out: list[Member] = []
        for member in candidates:
            state = member.shown_state(now)
            if state == "ok":
                usable.append(member)
            elif state == "cooling":
                (asked if member.current_health().upstream_asked else probes).append(member)
            else:
                out.append(member)
        if not usable:
            if probes:
                return _probe(probes)
            if asked:
                self._check_wait(model, asked, now)
                return None
            raise out_of_service(model, out)
        free = [m for m in usable if m.has_room()]
        if not free:
            return None
        if self.affinity and session is not None:
            preferred = self._sessions.get(session)
            for member in free:
                if member.id == preferred:
                    return member
        if self.strategy == "fill-first" or len(free) == 1:
            return free[0]
        # Round-robin over the pool's order: the first free member at or after the pointer.
        count = len(self._order)
        chosen = min(free, key=lambda m: (self._order.index(m) - self._next) % count)
        if advance:
            self._next = (self._order.index(chosen) + 1) % count
        return chosen

    def _check_wait(self, model: str, asked: list[Member], now: float) -> None:
        """Raise the 429 for rests the upstream asked for when the first ends later than we wait."""
        wait = max(0.0, min(m.current_health().until for m in asked) - now)
        if wait > self.policy.wait or wait >= self.queue_timeout:
            raise AllAccountsCooling(
                f"Every account that serves '{model}' is cooling down at the upstream's request; "
                f"the first is free again in {wait:.0f} s (longer than max_cooldown_wait).",
                retry_after=wait,
            )

    def asked_rest(self, model: str) -> float | None:
        """Seconds until the first account for ``model`` is back when every one rests at the
        upstream's request (the ``Retry-After`` of a request that failed on all); else None."""
        now = self._clock()
        ends: list[float] = []
        for member in self._candidates(model, frozenset()):
            state = member.shown_state(now)
            health = member.current_health()
            if state == "ok" or (state == "cooling" and not health.upstream_asked):
                return None
            if state == "cooling":
                ends.append(health.until)
        return max(0.0, min(ends) - now) if ends else None

    def serve_waiters(self) -> None:
        """Look for free members for the line again: another instance gave some back."""
        if self._waiters:
            self._serve_waiters()

    def _serve_waiters(self) -> None:
        """Hand free members to waiting requests, first come first served."""
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        for waiter in self._waiters:
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            try:
                member = self._pick(waiter.model, waiter.session, waiter.exclude)
            except GatewayError as error:
                self._waiters.remove(waiter)
                waiter.future.set_exception(error)
                continue
            if member is not None:
                self._waiters.remove(waiter)
                self._take(member, waiter.session)
                waiter.future.set_result(member)
        if self._waiters:
            # A cooldown that ends frees an account without anyone releasing it: look again then.
            now = self._clock()
            ends = [
                m.health.until
                for m in self._order
                if m.enabled and m.health.state == "cooling" and m.health.until > now
            ]
            if ends:
                loop = asyncio.get_running_loop()
                self._wakeup = loop.call_later(min(ends) - now + 0.01, self._serve_waiters)

    # -- outcomes --------------------------------------------------------------------------------

    def serves(self, member: Member, model: str) -> bool | None:
        return self._directory.serves(member, model)

    def succeeded(self, member: Member, started: float | None = None) -> None:
        """A request that began at ``started`` succeeded: clear the strikes, unless something
        newer (a rate limit met by a request in flight alongside) set the account's health since."""
        member = self._current(member)
        member.requests += 1
        health = member.health
        if started is not None and health.since > started:
            return
        if (health.strikes or health.state != "ok") and health.state != "quarantined":
            self._set_health(member, AccountHealth(since=self._clock()))

    def answered(self, member: Member, started: float | None = None) -> None:
        """The upstream's answer to a request begun at ``started`` has started reaching the
        client: a rest ends now, not when the answer is whole, so a probe that streams for a
        minute does not keep the line waiting that long. ``succeeded`` still follows at the end."""
        member = self._current(member)
        member.probing = False
        health = member.health
        if started is not None and health.since > started:
            return
        if health.state == "cooling":
            self._set_health(member, AccountHealth(since=self._clock()))

    def failed(self, member: Member, error: GatewayError) -> Verdict:
        """Record what ``error`` means for ``member``; returns the verdict for the request."""
        member = self._current(member)
        member.requests += 1
        member.errors += 1
        health = member.current_health()
        strikes = health.strikes + 1
        verdict = verdict_for(error, strikes=strikes, policy=self.policy)
        now = self._clock()
        # A request still in flight when its account was found blocked may fail otherwise later: a
        # cooldown then would end the quarantine by itself, which only a new key or a person may do.
        # Nor does a failure of ours cut short a longer rest the upstream asked for.
        if verdict.action == "cooldown" and not (
            health.state == "quarantined"
            or (
                health.upstream_asked and not verdict.upstream_asked and health.until > now + verdict.cooldown
            )
        ):
            self._set_health(
                member,
                AccountHealth(
                    "cooling",
                    now + verdict.cooldown,
                    strikes,
                    f"{verdict.reason}: {error.message}",
                    now,
                    upstream_asked=verdict.upstream_asked,
                    # Spent credit with a stated reset time rests to it, and shows as what it is.
                    code=error.code if isinstance(error, OutOfCredit) else None,
                ),
            )
            log.warning(
                "account %s cools down for %.0f s (%s%s)",
                member.label,
                verdict.cooldown,
                verdict.reason,
                ", as the upstream asked" if verdict.upstream_asked else "",
            )
        elif verdict.action == "quarantine":
            self.quarantine(member, f"{verdict.reason}: {error.message}", code=error.code)
        return verdict

    def cool_down(self, member: Member, reason: str, seconds: float | None = None) -> None:
        """A rest of the gateway's own choosing (``error_cooldown`` unless told)."""
        now = self._clock()
        rest = self.policy.error if seconds is None else seconds
        self._set_health(member, AccountHealth("cooling", now + rest, member.health.strikes, reason, now))

    def quarantine(self, member: Member, reason: str, *, code: str | None = None) -> None:
        """Out of service until a new key or a person ends it; ``code`` is the error clients get
        while no other account can serve them (``account_blocked`` when None)."""
        now = self._clock()
        self._set_health(
            member,
            AccountHealth(
                "quarantined", 0.0, 0, reason, now, key_fingerprint(member.account.api_key), code=code
            ),
        )
        log.error("account %s is quarantined and will not be used until reset: %s", member.label, reason)

    def reset(self, member: Member) -> None:
        self._set_health(member, AccountHealth(since=self._clock()), reset=True)

    def checked(self, member: Member, health: AccountHealth) -> None:
        """The health a check found (``services.account_check.health_after``), at once."""
        self._set_health(member, health, reset=True)

    def _set_health(self, member: Member, health: AccountHealth, *, reset: bool = False) -> None:
        """``reset``: a person's reset or a check's verdict, which alone end a shared quarantine."""
        member = self._current(member)
        self.adopt_health(member, health)
        if self._shared is not None:
            self._shared.publish(member.id, health, reset=reset)

    def adopt_health(self, member: Member, health: AccountHealth) -> None:
        """Take ``health`` as the member's own (found here, or in force across the instances)."""
        member = self._current(member)
        member.health = health
        self._directory.persist_health(member.id, health)
        if self._waiters:
            self._serve_waiters()


def _probe(resting: list[Member]) -> Member | None:
    """The resting member to try anyway: the first whose rest ends that no probe is trying yet."""
    for member in sorted(resting, key=lambda m: m.current_health().until):
        if not member.probing and member.has_room():
            return member
    return None

"""Choosing an account for each request, and keeping the line of requests that wait for one.

Which accounts may take a request: enabled, serving the model, not quarantined, not cooling down.
Of those, the free ones (fewer requests in flight than their limit; iFlow allows one) are taken
round-robin, or first-listed-first with ``fill-first``; with session affinity, a conversation's
account is preferred while it is free. When all of them are busy, the request waits in one line,
first come first served, for the first that frees up; when all of them are cooling down, it is
refused at once with a 429 whose ``Retry-After`` is the earliest end of a cooldown.

Nothing here awaits the state store: health and affinity changes are handed to ``persist``
callbacks that write them off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from iflow2api.errors import AllAccountsCooling, GatewayError, ModelNotFound, NoAccountAvailable, QueueFull
from iflow2api.pool.members import Member, key_fingerprint
from iflow2api.pool.outcomes import CooldownPolicy, Verdict, rests_for_rate_limit, verdict_for
from iflow2api.state.records import AccountHealth

log = logging.getLogger("iflow2api.pool")

Strategy = Literal["round-robin", "fill-first"]
#: Conversations remembered for affinity, at most (the least recently seen are forgotten first).
MAX_AFFINITIES = 20_000


#: Answers whether a member serves a model: True (it says so), False (it says not), None (unknown).
Serves = Callable[[Member, str], bool | None]


@dataclass(slots=True)
class _Waiter:
    model: str
    session: str | None
    exclude: frozenset[str]
    future: asyncio.Future[Member] = field(repr=False)


class Pool:
    def __init__(
        self,
        *,
        strategy: Strategy,
        affinity: bool,
        queue_size: int,
        queue_timeout: float,
        policy: CooldownPolicy,
        serves: Serves,
        known_models: Callable[[], Iterable[str]] = tuple,
        persist_health: Callable[[str, AccountHealth], None] = lambda _id, _health: None,
        persist_affinity: Callable[[str, str], None] = lambda _session, _id: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.strategy = strategy
        self.affinity = affinity
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.policy = policy
        self._serves = serves
        self._known_models = known_models
        self._persist_health = persist_health
        self._persist_affinity = persist_affinity
        self._clock = clock
        self._members: dict[str, Member] = {}
        self._order: list[Member] = []
        self._next = 0
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._waiters: deque[_Waiter] = deque()
        self._wakeup: asyncio.TimerHandle | None = None

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
                member.last_used = old.last_used
                if member.health == AccountHealth():
                    member.health = old.health
            fresh[member.id] = member
        self._members = fresh
        self._order = list(fresh.values())
        self._dispatch()

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
            if member.id not in waiter.exclude and self._serves(member, waiter.model) is not False
        )

    # -- taking and giving back ------------------------------------------------------------------

    async def acquire(
        self, model: str, *, session: str | None = None, exclude: frozenset[str] = frozenset()
    ) -> Member:
        """A member with a slot taken for this request; ``release`` it when done.

        Raises ``AllAccountsCooling`` (429), ``NoAccountAvailable`` (503), ``ModelNotFound`` or,
        after waiting too long or with the line full, ``QueueFull`` (429).
        """
        if not self._waiters:
            member = self._pick(model, session, exclude)
            if member is not None:
                self._take(member, session)
                return member
        else:
            # Fail now if nothing could ever take it (without moving round-robin's pointer).
            self._pick(model, session, exclude, advance=False)
        usable = sum(1 for m in self._order if m.enabled)
        if len(self._waiters) >= self.queue_size * max(1, usable):
            raise QueueFull(
                f"Too many requests are waiting for a free account ({len(self._waiters)} queued). "
                "Retry later.",
                retry_after=self._estimated_wait(),
            )
        waiter = _Waiter(model, session, exclude, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._dispatch()
        try:
            async with asyncio.timeout(self.queue_timeout):
                return await waiter.future
        except BaseException as exc:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self.release(waiter.future.result())  # handed a slot just as we gave up: pass it on
            else:
                waiter.future.cancel()
                with contextlib.suppress(ValueError):
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
        member = self._current(member)
        member.in_flight -= 1
        if self._waiters:
            self._dispatch()

    def _take(self, member: Member, session: str | None) -> None:
        member.in_flight += 1
        member.last_used = self._clock()
        if self.affinity and session is not None:
            if self._sessions.get(session) != member.id:
                self._persist_affinity(session, member.id)
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
            serves = self._serves(member, model)
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
                known = ", ".join(self._known_models()) or "(none known)"
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
        cooling: list[Member] = []
        for member in candidates:
            state = member.shown_state(now)
            if state == "ok":
                usable.append(member)
            elif state == "cooling":
                cooling.append(member)
        if not usable:
            # Resting after a failure (not a rate limit): better asked again than the client refused.
            usable = [m for m in cooling if not rests_for_rate_limit(m.current_health().reason)]
            usable.sort(key=lambda m: m.current_health().until)
        if not usable:
            cooling_until = [m.current_health().until for m in cooling]
            if cooling_until:
                wait = max(0.0, min(cooling_until) - now)
                raise AllAccountsCooling(
                    f"Every account that serves '{model}' is cooling down after rate limits or "
                    f"failures; the first is free again in {wait:.0f} s.",
                    retry_after=wait,
                )
            reasons = "; ".join(
                f"{m.label}: {m.current_health().reason or m.shown_state(now)}" for m in candidates
            )
            raise NoAccountAvailable(
                f"No account can take this request ({reasons}). Fix or replace them on the page, or "
                "reset them with `iflow2api accounts enable`."
            )
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

    def all_cooling(self, model: str) -> AllAccountsCooling | None:
        """The 429 to give when every account for ``model`` cools down (after a failover round)."""
        try:
            self._pick(model, None, frozenset(), advance=False)
        except AllAccountsCooling as error:
            return error
        except GatewayError:
            return None
        return None

    def _dispatch(self) -> None:
        """Hand free members to waiting requests, first come first served."""
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        for waiter in list(self._waiters):
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
                self._wakeup = loop.call_later(min(ends) - now + 0.01, self._dispatch)

    # -- outcomes --------------------------------------------------------------------------------

    def serves(self, member: Member, model: str) -> bool | None:
        return self._serves(member, model)

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

    def failed(self, member: Member, error: GatewayError) -> Verdict:
        """Record what ``error`` means for ``member``; returns the verdict for the request."""
        member = self._current(member)
        member.requests += 1
        member.errors += 1
        strikes = member.health.strikes + 1
        verdict = verdict_for(error, strikes=strikes, policy=self.policy)
        # A request still in flight when its account was found blocked may fail otherwise later: a
        # cooldown then would end the quarantine by itself, which only a new key or a person may do.
        if verdict.action == "cooldown" and member.current_health().state != "quarantined":
            now = self._clock()
            self._set_health(
                member,
                AccountHealth(
                    "cooling", now + verdict.cooldown, strikes, f"{verdict.reason}: {error.message}", now
                ),
            )
            log.warning(
                "account %s cools down for %.0f s (%s)", member.label, verdict.cooldown, verdict.reason
            )
        elif verdict.action == "quarantine":
            self.quarantine(member, f"{verdict.reason}: {error.message}")
        return verdict

    def cool_down(self, member: Member, reason: str, seconds: float | None = None) -> None:
        now = self._clock()
        rest = self.policy.error if seconds is None else seconds
        self._set_health(member, AccountHealth("cooling", now + rest, member.health.strikes, reason, now))

    def quarantine(self, member: Member, reason: str) -> None:
        now = self._clock()
        self._set_health(
            member,
            AccountHealth("quarantined", 0.0, 0, reason, now, key_fingerprint(member.account.api_key)),
        )
        log.error("account %s is quarantined and will not be used until reset: %s", member.label, reason)

    def reset(self, member: Member) -> None:
        self._set_health(member, AccountHealth(since=self._clock()))

    def _set_health(self, member: Member, health: AccountHealth) -> None:
        member = self._current(member)
        member.health = health
        self._persist_health(member.id, health)
        if self._waiters:
            self._dispatch()

"""Client keys' limits counted for every instance at once, in the coordination store.

One process counts a key's requests per minute in memory (``clientkeys.KeyRing.admit``). Several
would each allow the whole limit, so with a coordinator a request is admitted by one atomic round
trip (``Coordinator.admit_key``: revoked? tokens left today? room in the last minute? and, if
admitted, counted) and its tokens are added once its usage is known.

When the store does not answer, keys fail OPEN for the cluster: the request is checked by this
instance's own count alone (``fallback``, the key ring's ``admit``: each instance then allows the
whole limit), the failure is counted (``fail_open_admissions``, for ``/metrics``) and logged at
most once a minute. A key's limits are a budget, not a safety property; refusing every client
while Redis restarts would be the worse failure. (Account leases are the opposite: they fail
closed, see ``pool``.) A small breaker keeps requests from each waiting for the store's timeout
while it is down: after a failure the store is asked again only ``RETRY_EVERY`` seconds later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from iflow2api.coordination import CoordinationDown, Coordinator, Event
from iflow2api.errors import ClientAuthError, KeyLimitReached
from iflow2api.state.records import ClientKeyRecord

log = logging.getLogger("iflow2api.keys")

#: Seconds between two log lines about the store failing (each failure is still counted).
LOG_EVERY = 60.0
#: Seconds after a failure during which the store is not asked (requests use ``fallback``).
RETRY_EVERY = 1.0


class SharedLimits:
    def __init__(
        self,
        coordinator: Coordinator,
        *,
        on_revoked: Callable[[], None] = lambda: None,
        failed_open: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._coordinator = coordinator
        self._clock = clock
        self._monotonic = monotonic
        #: While the store is down: this instance's own check of a key's limits (the key ring sets
        #: it to its ``admit``), raising ``KeyLimitReached`` to refuse.
        self.fallback: Callable[[ClientKeyRecord], None] = lambda _record: None
        #: Until when (``monotonic``) the store is not asked, after it failed.
        self._down_until = float("-inf")
        #: Requests admitted unchecked because the coordination store did not answer.
        self.fail_open_admissions = 0
        self._logged_at: float | None = None
        self._on_revoked = on_revoked
        #: Told of each unchecked admission too (``/metrics`` counts them).
        self._failed_open_hook = failed_open
        coordinator.on_event(self._event)

    def _event(self, event: Event) -> None:
        # Another instance revoked a key: reload ours now rather than at the next store poll.
        if event.kind == "revoked":
            self._on_revoked()

    async def admit(self, record: ClientKeyRecord) -> None:
        """Check and count one request of ``record`` for every instance, or refuse it.

        Every key makes the round trip, limited or not, because it also asks whether the key was
        revoked by another instance since this one loaded its keys.
        """
        if self._monotonic() < self._down_until:
            self._failed_open(record, None)
            return
        now = self._clock()
        try:
            admission = await self._coordinator.admit_key(
                record.id, rpm=record.rpm, tokens_per_day=record.tokens_per_day, now=now
            )
        except CoordinationDown as exc:
            self._down_until = self._monotonic() + RETRY_EVERY
            self._failed_open(record, exc)
            return
        if admission.admitted:
            return
        if admission.refused_for == "revoked":
            self._on_revoked()
            raise ClientAuthError(
                f"The key '{record.name}' was revoked. Ask the gateway's admin for a new one.",
                code="invalid_api_key",
            )
        if admission.refused_for == "tokens":
            message = (
                f"The key '{record.name}' has used its {record.tokens_per_day:,} tokens for today (UTC)."
            )
        else:
            message = f"The key '{record.name}' allows {record.rpm} requests per minute."
        raise KeyLimitReached(message, retry_after=admission.retry_after)

    async def add_tokens(self, key_id: str, tokens: int) -> None:
        """Count a finished request's tokens against its key's day (lost, and logged, when the
        store is down: the day's budget then errs on the generous side, as admissions do)."""
        if tokens <= 0:
            return
        if self._monotonic() < self._down_until:
            self._log_down("could not count %d tokens of a client key (%s)", tokens, "it failed just now")
            return
        try:
            await self._coordinator.add_key_tokens(key_id, tokens, self._clock())
        except CoordinationDown as exc:
            self._down_until = self._monotonic() + RETRY_EVERY
            self._log_down("could not count %d tokens of a client key (%s)", tokens, exc)

    async def revoke(self, key_id: str) -> None:
        """Tell every instance to refuse ``key_id`` from its next request on. Without the store,
        the others still drop the key at their next reload of the state store (about a second)."""
        try:
            await self._coordinator.revoke_key(key_id)
        except CoordinationDown as exc:
            log.warning("could not tell the other instances at once that key %s is revoked (%s)", key_id, exc)

    def _failed_open(self, record: ClientKeyRecord, exc: CoordinationDown | None) -> None:
        self.fail_open_admissions += 1
        self._failed_open_hook()
        why = exc or "it failed less than a second ago"
        self._log_down(
            "key '%s' checked by this instance alone: the coordination store is down (%s)", record.name, why
        )
        self.fallback(record)  # may refuse: this instance's own count of the key

    def _log_down(self, message: str, *args: object) -> None:
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < LOG_EVERY:
            return
        self._logged_at = now
        log.warning(message + "; key limits are per instance until it is back", *args)

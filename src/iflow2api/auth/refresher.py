"""Keeping an OAuth login alive: refresh before expiry, fetch the key again, never lose a login.

The schedule (``refresh_due``): ``refresh_lead`` seconds before the token expires (the CLI's day),
less a little random jitter so many gateways do not all call at once; a token already inside the
lead when the gateway first sees it (started after days off) is refreshed at once, as the CLI does.
Tokens that this gateway was issued, and whose answer's ``expires_in`` was shorter than twice the
lead, are refreshed halfway through their life instead, so that one refresh does not call for the
next at once. A refresh is single-flight: any number of callers (the schedule, a request that saw
its key expire) share one call to the OAuth host.

Several instances (a coordinator): one refresher per login among them. The refresh takes the lock
``refresh:<account id>`` (the iFlow CLI's login, each host's own files: ``refresh:login-<its refresh
token's fingerprint>``, so only copies of one login share it) for ``LOCK_TTL``, longer than the
slowest refresh the OAuth client's timeouts allow; its holder re-reads the login from where it is
kept (another instance may have refreshed it), refreshes only if that is still the one this instance
saw (and, for the schedule, still due), and writes only if it did not change meanwhile. The others
wait for the lock and re-read, and use the login the holder wrote. The rotated tokens are written as
soon as the token call answers, before the key is fetched: the old refresh token is spent by then.
An ``invalid_grant`` is checked against the kept login first: another instance may have rotated the
token just before. Without the coordination store (it does not answer), each instance refreshes on
its own, as one process does.

Failures: a temporary one (the OAuth host's HTTP-200 ``success:false``, a 5xx, no network) is
retried with growing pauses and leaves the working credentials alone; only a definite rejection
(``invalid_grant``) marks the login as needing a new login, and even then nothing is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from iflow2api.auth import iflow_files, oauth, oauth_client
from iflow2api.auth.oauth_client import OAuthClient
from iflow2api.coordination import CoordinationDown, Coordinator
from iflow2api.errors import InvalidGrant, LoginError

log = logging.getLogger("iflow2api.refresh")

State = Literal["no-login", "ok", "refreshing", "retrying", "needs-login"]

#: Pauses between attempts after a temporary failure, in seconds; the last one repeats.
BACKOFF = (5.0, 15.0, 60.0, 300.0, 900.0)

#: Seconds a refresh under way at shutdown may take to finish (and save its tokens) before it is cut.
STOP_GRACE = 3.0
#: The longest a refresh can take while holding the lock: the token call (one request) and the
#: key fetch (``user_info``: three requests, with pauses between), each request up to the OAuth
#: client's connect timeout plus its head and read timeouts, and the two stores' writes.
_WORST_REFRESH = (
    oauth_client.TIMEOUT * 3 * (2 + len(oauth_client.RETRY_DELAYS)) + sum(oauth_client.RETRY_DELAYS) + 30.0
)
#: Seconds a refresh lock lasts: above the worst case, so it never expires under a living holder
#: (another instance would refresh the same token again: iFlow burns reused refresh tokens).
LOCK_TTL = _WORST_REFRESH + 60.0
#: How long an instance waits for another's refresh, and how often it looks meanwhile.
LOCK_WAIT = 20.0
LOCK_POLL = 0.2


@dataclass(frozen=True, slots=True)
class Status:
    state: State
    token_expires_at: float | None
    next_refresh_at: float | None
    last_refresh_at: float | None
    last_error: str | None


REJECTION_FILE = "login-rejected.json"


def refresh_due(expires_at: float, *, lead: float, lifetime: float | None, jitter: float) -> float:
    """When to refresh a token that expires at ``expires_at`` (seconds since the epoch).

    ``lifetime`` is the token's ``expires_in`` when this gateway was issued it, None when not known
    (a login found on disk); ``jitter`` (0 to 1) moves the time up to 5 minutes, or a tenth of the
    lead, earlier.

    >>> refresh_due(10 * 86400, lead=86400, lifetime=None, jitter=0)  # a day before it expires
    777600.0
    >>> refresh_due(10 * 86400, lead=86400, lifetime=3600, jitter=0)  # issued for an hour: halfway
    862200.0
    """
    if lifetime is not None and lifetime < 2 * lead:
        lead = lifetime / 2
    return expires_at - lead - jitter * min(300.0, lead * 0.1)


def _fingerprint(refresh_token: str) -> str:
    # Enough to recognise the rejected login later; the token itself is never stored twice.
    return hashlib.sha256(refresh_token.encode()).hexdigest()[:16]


def record_rejection(data_dir: Path, refresh_token: str, reason: str) -> None:
    """Remember, for ``iflow2api status`` and later runs, that iFlow refused this login."""
    record = {"refresh_token_sha256": _fingerprint(refresh_token), "reason": reason, "at": time.time()}
    iflow_files.write_json_atomic(data_dir / REJECTION_FILE, record)


def login_rejected(iflow_home: Path, data_dir: Path) -> str | None:
    """Why the current login needs renewing, if iFlow refused it; None otherwise."""
    creds = _read_creds(iflow_home)
    try:
        record = iflow_files.read_json_object(data_dir / REJECTION_FILE)
    except (OSError, ValueError):
        return None
    if (
        not creds
        or not record
        or record.get("refresh_token_sha256") != _fingerprint(str(creds["refresh_token"]))
    ):
        return None
    return str(record.get("reason") or "iFlow refused the saved login")


def _read_creds(iflow_home: Path) -> dict[str, Any] | None:
    try:
        creds = iflow_files.read_json_object(iflow_home / iflow_files.OAUTH_CREDS_FILE)
    except (OSError, ValueError):
        return None
    return usable_creds(creds)


def usable_creds(creds: dict[str, Any] | None) -> dict[str, Any] | None:
    """``creds`` if they hold what a refresh needs (``oauth_creds.json``'s shape), else None."""
    if not creds or not creds.get("refresh_token") or not isinstance(creds.get("expiry_date"), int | float):
        return None
    return creds


class LoginStorage(Protocol):
    """Where one OAuth login lives: the iFlow CLI's files, or an extra account in the state store."""

    def read(self) -> dict[str, Any] | None:
        """The login in ``oauth_creds.json``'s shape, or None when there is none to refresh."""
        ...

    async def save_refreshed(
        self, tokens: oauth.Tokens, api_key: str | None, *, previous_refresh_token: str
    ) -> bool:
        """Store a refresh; False (nothing written) when the login changed meanwhile."""
        ...

    async def record_rejection(self, refresh_token: str, reason: str) -> None: ...


@runtime_checkable
class SharedLoginStorage(LoginStorage, Protocol):
    """A login that other instances may refresh too: ``read`` may answer from memory, ``reread``
    asks where it is kept (and makes this instance use what it finds)."""

    async def reread(self) -> dict[str, Any] | None: ...


def version(creds: dict[str, Any] | None) -> tuple[str, float] | None:
    """What changes when a login is refreshed or replaced: its refresh token and expiry."""
    return (str(creds["refresh_token"]), float(creds["expiry_date"])) if creds else None


class FileLogin:
    """The login in the iFlow CLI's own files (``~/.iflow``)."""

    def __init__(self, iflow_home: Path, data_dir: Path | None = None) -> None:
        self.iflow_home = iflow_home
        self.data_dir = data_dir

    def read(self) -> dict[str, Any] | None:
        return _read_creds(self.iflow_home)

    async def reread(self) -> dict[str, Any] | None:
        return self.read()  # the files are read afresh every time

    async def save_refreshed(
        self, tokens: oauth.Tokens, api_key: str | None, *, previous_refresh_token: str
    ) -> bool:
        # fsync and a file lock: off the event loop.
        return await asyncio.to_thread(
            iflow_files.save_refreshed_tokens,
            self.iflow_home,
            tokens,
            api_key,
            previous_refresh_token=previous_refresh_token,
        )

    async def record_rejection(self, refresh_token: str, reason: str) -> None:
        if self.data_dir is not None:
            await asyncio.to_thread(record_rejection, self.data_dir, refresh_token, reason)


class Refresher:
    def __init__(
        self,
        login: Path | LoginStorage,
        client: OAuthClient,
        *,
        lead: float,
        data_dir: Path | None = None,
        name: str = "the iFlow login",
        clock: Callable[[], float] = time.time,
        coordinator: Coordinator | None = None,
        account_id: str = "cli",
    ) -> None:
        self.storage: LoginStorage = FileLogin(login, data_dir) if isinstance(login, Path) else login
        self.name = name
        self.client = client
        self.lead = lead
        #: Seconds since the epoch; tests pass a clock of their own.
        self._clock = clock
        self._inflight: asyncio.Task[bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._state: State = "no-login"
        self._rejected_token: str | None = None
        self._failures = 0
        self._next_at: float | None = None
        self._last_at: float | None = None
        self._last_error: str | None = None
        self._jitter = random.random()
        #: The refresh token this gateway was last issued, and that answer's lifetime.
        self._issued: tuple[str, float | None] | None = None
        self._retry_at: float | None = None
        #: With several instances: the lock that makes this login's refresher the only one.
        self._coordinator = coordinator
        self._lock_name = f"refresh:{account_id}"
        self._only_if_due = False

    # -- what the rest of the gateway asks ---------------------------------------------------------

    def status(self) -> Status:
        creds = self.storage.read()
        expires = creds["expiry_date"] / 1000 if creds else None
        state: State = self._state
        if creds is None:
            state = "no-login"
        elif state == "no-login":
            state = "ok"  # a login the schedule has not looked at yet
        elif state == "needs-login" and creds.get("refresh_token") != self._rejected_token:
            state = "ok"  # someone logged in again since
        return Status(state, expires, self._next_at, self._last_at, self._last_error)

    @property
    def needs_login(self) -> bool:
        """Whether the upstream refused this login (from memory: cheap enough for every request)."""
        return self._state == "needs-login"

    async def refresh_now(self, *, only_if_due: bool = False) -> bool:
        """Refresh at once, sharing a refresh already under way. True if the login is fresh now.

        ``only_if_due`` (the schedule): with several instances, skip the refresh when the login
        another instance wrote meanwhile is no longer due.
        """
        if self._inflight is None:
            self._only_if_due = only_if_due
            # A task of its own: a caller that goes away (a client hanging up) must not cut short
            # a refresh that others share, and whose rotated tokens must be saved.
            self._inflight = asyncio.ensure_future(self._refresh())
            self._inflight.add_done_callback(self._refreshed)
        return await asyncio.shield(self._inflight)

    def _refreshed(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here: the callers that still wait get it too

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop the schedule, and end a refresh under way while the gateway's clients still work
        (the gateway closes the coordinator only after this): it may have rotated the token
        already, so it gets ``STOP_GRACE`` seconds to save it; cancelled after that, it still gives
        its lock back on the way out."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        inflight = self._inflight
        if inflight is not None:
            await asyncio.wait([inflight], timeout=STOP_GRACE)
            inflight.cancel()
            await asyncio.wait([inflight])  # its outcome is read by ``_refreshed``

    def files_changed(self) -> None:
        """A new login was written: look at the schedule again now."""
        self._wake.set()

    def issued(self, tokens: oauth.Tokens) -> None:
        """A login this gateway just made was issued ``tokens``: their lifetime is known, so a
        short-lived token is refreshed halfway through it rather than at once."""
        self._issued = (tokens.refresh_token, tokens.expires_in)
        self._wake.set()

    # -- the work ----------------------------------------------------------------------------------

    def due_at(self) -> float | None:
        """When the schedule refreshes the current login next (seconds since the epoch); None
        without a login to refresh."""
        creds = self.storage.read()
        if creds is None or (self._state == "needs-login" and creds["refresh_token"] == self._rejected_token):
            return None
        due = self._due_at(creds)
        return due if self._retry_at is None else max(due, self._retry_at)

    def _due_at(self, creds: dict[str, Any]) -> float:
        token = str(creds["refresh_token"])
        lifetime = self._issued[1] if self._issued is not None and self._issued[0] == token else None
        expires = float(creds["expiry_date"]) / 1000
        return refresh_due(expires, lead=self.lead, lifetime=lifetime, jitter=self._jitter)

    def _pause(self) -> float:
        """How long to wait after the latest failure; shorter with a short lead (tests' tokens)."""
        return BACKOFF[min(self._failures, len(BACKOFF)) - 1] * min(1.0, self.lead / 60)

    async def _refresh(self) -> bool:
        if self._coordinator is None or not isinstance(self.storage, SharedLoginStorage):
            return await self._refresh_alone()
        return await self._refresh_shared(self._coordinator, self.storage)

    async def _refresh_shared(self, coordinator: Coordinator, storage: SharedLoginStorage) -> bool:
        seen = version(self.storage.read())
        lock_name = self._lock_for(seen)
        deadline = time.monotonic() + LOCK_WAIT  # real waiting, whatever the clock says
        while True:
            try:
                token = await coordinator.lock(lock_name, LOCK_TTL)
            except CoordinationDown as exc:
                log.warning("refreshing %s without the other instances: %s", self.name, exc)
                return await self._refresh_alone()
            if token is not None:
                break
            # Another instance refreshes it: wait for the login it writes.
            await asyncio.sleep(LOCK_POLL)
            current = await storage.reread()
            if version(current) != seen and current is not None:
                return self._adopted()
            if time.monotonic() > deadline:
                self._failures += 1
                self._retry_at = self._clock() + self._pause()
                self._state, self._last_error = "retrying", "another instance's refresh did not finish"
                log.warning("%s: another instance's refresh did not finish; trying again later", self.name)
                return False
        try:
            current = await storage.reread()
            if current is not None and version(current) != seen:
                return self._adopted()
            if current is not None and self._only_if_due and self._due_at(current) > self._clock():
                self._state = "ok"  # not due (any more): nothing to do
                return True
            return await self._refresh_alone()
        finally:
            with contextlib.suppress(CoordinationDown):
                await coordinator.unlock(lock_name, token)

    def _lock_for(self, seen: tuple[str, float] | None) -> str:
        """The lock of this login among the instances. The iFlow CLI's files are each host's own:
        their lock is named after the login itself (its refresh token's fingerprint), so hosts
        with different logins do not wait for each other, and copies of one login share one."""
        if isinstance(self.storage, FileLogin) and seen is not None:
            return f"refresh:login-{_fingerprint(seen[0])}"
        return self._lock_name

    def _adopted(self) -> bool:
        """Another instance refreshed the login (or replaced it): use theirs."""
        log.info("%s was refreshed by another instance; using its new key", self.name)
        self._state, self._failures, self._last_error, self._retry_at = "ok", 0, None, None
        return True

    async def _rotated_elsewhere(self, rejected: str) -> bool:
        """After an ``invalid_grant``: whether the kept login has another refresh token by now (an
        instance rotated it just before), which makes the rejection no reason to log in again."""
        if self._coordinator is None or not isinstance(self.storage, SharedLoginStorage):
            return False
        current = await self.storage.reread()
        return current is not None and str(current["refresh_token"]) != rejected

    async def _refresh_alone(self) -> bool:
        creds = self.storage.read()
        if creds is None:
            self._state = "no-login"
            return False
        refresh_token = str(creds["refresh_token"])
        if self._state == "needs-login" and refresh_token == self._rejected_token:
            return False  # rejected already; only a new login helps
        self._state = "refreshing"
        try:
            tokens = await self.client.refresh(refresh_token)
        except InvalidGrant as exc:
            if await self._rotated_elsewhere(refresh_token):
                return self._adopted()
            self._state, self._rejected_token, self._last_error = "needs-login", refresh_token, str(exc)
            await self.storage.record_rejection(refresh_token, str(exc))
            log.error(
                "%s was rejected (%s); log in again with `iflow2api login` or the web page", self.name, exc
            )
            return False
        except LoginError as exc:
            self._failures += 1
            self._retry_at = self._clock() + self._pause()
            self._state, self._last_error = "retrying", str(exc)
            log.warning("refreshing %s failed (%s); the current key stays in use", self.name, exc)
            return False
        # Saved at once: the old refresh token is spent now, so a crash (or a lock that ran out)
        # before the key fetch below must not leave only the spent one where it is kept.
        saved = await self.storage.save_refreshed(tokens, None, previous_refresh_token=refresh_token)
        if not saved:
            # A logout or a new login happened meanwhile: theirs wins.
            log.info("%s changed while refreshing; keeping the newer one", self.name)
            self._state = "ok"
            return False
        rotated = tokens.refresh_token or refresh_token
        self._issued = (rotated, tokens.expires_in)
        self._state, self._failures, self._last_error, self._retry_at = "ok", 0, None, None
        self._last_at = self._clock()
        self._jitter = random.random()
        log.info(
            "refreshed %s; the token now expires in %.0f s", self.name, tokens.expires_at - self._clock()
        )
        await self._fetch_key(tokens, rotated)
        return True

    async def _fetch_key(self, tokens: oauth.Tokens, rotated: str) -> None:
        """Fetch the API key again with the new access token and keep it next to the tokens."""
        try:
            api_key = (await self.client.user_info(tokens.access_token)).api_key
        except LoginError as exc:
            # The new tokens are saved; the key is fetched again at the next refresh.
            log.warning("refreshed the login, but could not fetch the API key again (%s)", exc)
            return
        if api_key and not await self.storage.save_refreshed(tokens, api_key, previous_refresh_token=rotated):
            log.info("%s changed while fetching its key; keeping the newer one", self.name)

    async def _run(self) -> None:
        while True:
            due = self._next_at = self.due_at()
            if due is None:
                wait = 30.0  # nothing to refresh: look again later, or as soon as told
            else:
                if self._state == "needs-login":
                    self._state = "ok"  # a new login replaced the rejected one
                wait = due - self._clock()
                if wait <= 0:
                    try:
                        await self.refresh_now(only_if_due=True)
                    except Exception:
                        log.exception("unexpected failure while refreshing %s", self.name)
                        self._failures += 1
                        self._retry_at = self._clock() + self._pause()
                    continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait, 30.0)):
                    await self._wake.wait()

"""Test before trust: does an OpenAI-compatible account work, and if not, why, in plain words.

A check lists the account's models (``GET {base_url}/models`` with its key) and sends one tiny
chat request asking for a single token, built by the account's provider profile (so a host that
wants ``max_completion_tokens`` gets it), each within the gateway's ``connect_timeout`` and
``first_byte_timeout``. Adding an account runs it (the page and ``iflow2api accounts add``), and so
do ``iflow2api accounts test`` and the page's Test button.

What a failure means is one pure function, ``explain``, over the error the profile made of the
host's answer, so the page and the CLI say the same::

    >>> explain(UpstreamAuthError("Upstream answered 401: bad key."), status=401,
    ...         base_url="https://api.example.com/v1").problem
    'wrong-key'
    >>> print(explain(GatewayError("Not Found"), status=404, base_url="http://127.0.0.1:8000").words)
    wrong base URL: http://127.0.0.1:8000 answered 404 (did you forget /v1? try http://127.0.0.1:8000/v1)

A failed check is kept as the account's health (``health_after``): it is then shown as failing
(``pool.members.CHECK_FAILED``), or out of credit, never as ok, until a check passes.
"""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from iflow2api.auth.credentials import Account
from iflow2api.dialects.intent import Intent
from iflow2api.errors import (
    AccountBlocked,
    GatewayError,
    ModelNotFound,
    OutOfCredit,
    RateLimited,
    UpstreamAuthError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from iflow2api.pool.members import CHECK_FAILED, key_fingerprint
from iflow2api.providers import Profiles, openai_wire
from iflow2api.providers.base import Profile
from iflow2api.services.answers import read
from iflow2api.services.redaction import redacted
from iflow2api.state.records import AccountHealth
from iflow2api.upstream.client import UpstreamClient, retry_after_seconds

#: What went wrong, one word each (the page and ``--json``-minded scripts read these).
Problem = Literal[
    "wrong-key", "wrong-base-url", "out-of-credit", "rate-limited", "unreachable", "model", "failed"
]

#: A path segment that names an API version (``/v1``, ``/v4``, ``/v1beta``): a base URL without one
#: that answered 404 most likely lost it.
_VERSION = re.compile(r"^v\d+[a-z0-9]*$")
#: What ``providers.openai_wire`` tells a person of the iFlow CLI's settings, not of an account's.
_IFLOW_ADVICE = re.compile(r"\s*Check (the apiKey|baseUrl) in the iFlow settings\.")
#: The question a chat request asks: one token is enough to know the key, the URL and the model work.
_PROMPT = "Say OK."


@dataclass(frozen=True, slots=True)
class Explanation:
    problem: Problem
    #: The whole sentence, in English (the CLI prints it).
    words: str
    #: What the host said or did, without the verdict: the page puts its own words for ``problem``
    #: (in the reader's language) before it.
    detail: str = ""
    #: A base URL that more likely works (the given one with ``/v1``), or None.
    suggestion: str | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check found: ``ok`` with the latency and the number of models, or the problem."""

    ok: bool
    #: One sentence for a person: "works: …" or the problem and what to do.
    words: str
    problem: Problem | None = None
    #: The one-token request's round trip, in milliseconds (a passing check only).
    latency_ms: int | None = None
    #: How many models its ``/models`` listed (None: it did not list them).
    models: int | None = None
    #: The model the one-token request asked for.
    model: str | None = None
    #: What the host said or did (``Explanation.detail``), and a base URL to try instead.
    detail: str = ""
    suggestion: str | None = None

    @classmethod
    def failed(cls, said: Explanation, *, models: int | None = None, model: str | None = None) -> CheckResult:
        return cls(False, said.words, said.problem, None, models, model, said.detail, said.suggestion)

    def view(self) -> dict[str, Any]:
        """As the page's API sends it."""
        return {
            "ok": self.ok,
            "words": self.words,
            "problem": self.problem,
            "latency_ms": self.latency_ms,
            "models": self.models,
            "model": self.model,
            "detail": self.detail,
            "suggestion": self.suggestion,
        }


def lacks_version(base_url: str) -> bool:
    """True when no segment of the URL's path names an API version.

    >>> lacks_version("https://api.example.com"), lacks_version("https://h/api/paas/v4")
    (True, False)
    """
    path = urllib.parse.urlsplit(base_url).path
    return not any(_VERSION.match(segment) for segment in path.lower().split("/"))


def _wrong_url(base_url: str, what: str) -> Explanation:
    hint, suggestion = "", None
    if lacks_version(base_url):
        suggestion = f"{base_url.rstrip('/')}/v1"
        hint = f" (did you forget /v1? try {suggestion})"
    detail = f"{base_url} {what}"
    return Explanation("wrong-base-url", f"wrong base URL: {detail}{hint}", detail, suggestion)


def _said(error: GatewayError) -> str:
    """The error's words without the advice meant for the iFlow CLI's settings file."""
    return _IFLOW_ADVICE.sub("", error.message).strip()


def explain(error: GatewayError, *, status: int | None, base_url: str) -> Explanation:
    """What ``error`` (and the HTTP ``status`` it came with, None: no answer at all) means for the
    person who added the account."""
    said = _said(error)
    if isinstance(error, OutOfCredit) or status == 402:
        return Explanation("out-of-credit", f"out of credit: {said}", said)
    if isinstance(error, UpstreamAuthError | AccountBlocked) or status in (401, 403):
        return Explanation("wrong-key", f"wrong key{f' ({status})' if status else ''}: {said}", said)
    if isinstance(error, RateLimited) or status == 429:
        return Explanation("rate-limited", f"rate limited: the key works, but try again later. {said}", said)
    if isinstance(error, ModelNotFound):
        return Explanation("model", f"the model is not served there: {said}", said)
    if status in (404, 405):
        return _wrong_url(base_url, f"answered {status}")
    if status is None and isinstance(error, UpstreamTimeout | UpstreamUnavailable):
        return Explanation("unreachable", f"unreachable: {said}", said)
    return Explanation("failed", f"failed: {said}", said)


def works(latency_ms: int, model: str, models: int | None) -> str:
    """What a passing check says.

    >>> works(340, "deepseek-chat", 2)
    'works: deepseek-chat answered in 340 ms; 2 models listed'
    """
    listed = "its /models gave no list" if models is None else f"{models} model{'s' * (models != 1)} listed"
    return f"works: {model} answered in {latency_ms} ms; {listed}"


def health_after(result: CheckResult, api_key: str, now: float) -> AccountHealth:
    """The account's health once ``result`` is known: a passing check clears any rest or
    quarantine; a failing one keeps the account out of rotation, for this key, until one passes."""
    if result.ok:
        return AccountHealth(since=now)
    code = OutOfCredit.code if result.problem == "out-of-credit" else CHECK_FAILED
    reason = f"check: {result.words}"
    return AccountHealth("quarantined", 0.0, 0, reason, now, key_fingerprint(api_key), code=code)


class _Failed(Exception):
    def __init__(self, explanation: Explanation) -> None:
        super().__init__(explanation.words)
        self.explanation = explanation


#: The longest a whole check takes, in seconds, whatever the gateway's own timeouts.
CHECK_WAIT = 30.0


class AccountCheck:
    """Runs checks with the gateway's own upstream client and provider profiles."""

    def __init__(
        self,
        client: UpstreamClient,
        profiles: Profiles,
        clock: Callable[[], float] = time.monotonic,
        *,
        wait: float = CHECK_WAIT,
    ) -> None:
        self._client, self._profiles, self._clock = client, profiles, clock
        self._wait = wait

    async def run(self, account: Account) -> CheckResult:
        """The check's verdict, within ``wait`` seconds in all: a person is waiting for it, and the
        gateway's own ``first_byte_timeout`` (for long generations) may be minutes."""
        try:
            return await asyncio.wait_for(self._verdict(account), self._wait)
        except TimeoutError:
            detail = f"{account.base_url} did not answer within {self._wait:g} s"
            return CheckResult.failed(Explanation("unreachable", f"unreachable: {detail}", detail))

    async def _verdict(self, account: Account) -> CheckResult:
        try:
            return await self._run(account)
        except GatewayError as error:  # the profile refused to build the request: still a verdict
            said = explain(redacted(error, (account.api_key,)), status=None, base_url=account.base_url)
            return CheckResult.failed(said)

    async def _run(self, account: Account) -> CheckResult:
        profile = self._profiles.for_account(account)
        models: tuple[str, ...] | None = None
        try:
            models = await self._models(profile, account)
        except _Failed as failed:
            # A host without /models may still chat: with a model of its own, ask it anyway.
            if failed.explanation.problem != "wrong-base-url" or not account.model_name:
                return CheckResult.failed(failed.explanation)
        model = account.model_name or (models[0] if models else None)
        if model is None:
            detail = "its /models lists no model; name the ones it serves (--models)"
            return CheckResult.failed(Explanation("model", f"failed: {detail}", detail), models=0)
        count = None if models is None else len(models)
        try:
            latency_ms = await self._one_token(profile, account, model)
        except _Failed as failed:
            return CheckResult.failed(failed.explanation, models=count, model=model)
        words = works(latency_ms, model, count)
        return CheckResult(True, words, latency_ms=latency_ms, models=count, model=model)

    async def _ask(
        self, profile: Profile, account: Account, method: str, url: str, body: bytes | None
    ) -> tuple[int, bytes, float | None]:
        """Status, body and ``Retry-After`` of one call, or ``_Failed`` when none came."""
        headers = profile.headers(account.api_key)
        try:
            response = await self._client.send(method, url, headers, body)
            try:
                raw = await read(response)
            finally:
                response.release()
        except GatewayError as error:
            error = redacted(error, (account.api_key,))
            raise _Failed(explain(error, status=None, base_url=account.base_url)) from None
        return response.status, raw, retry_after_seconds(response.headers.get("retry-after"))

    def _refused(
        self, profile: Profile, account: Account, status: int, raw: bytes, retry_after: float | None
    ) -> _Failed:
        error = redacted(profile.http_error(status, raw, None, retry_after), (account.api_key,))
        return _Failed(explain(error, status=status, base_url=account.base_url))

    async def _models(self, profile: Profile, account: Account) -> tuple[str, ...]:
        url = account.base_url.rstrip("/") + "/models"
        status, raw, retry_after = await self._ask(profile, account, "GET", url, None)
        if status in (404, 405):
            raise _Failed(_wrong_url(account.base_url, f"answered {status} to /models"))
        if status != 200:
            raise self._refused(profile, account, status, raw, retry_after)
        try:
            ids = openai_wire.model_ids(orjson.loads(raw))
        except orjson.JSONDecodeError:
            ids = None
        if ids is None:
            what = "a web page" if raw.lstrip()[:1] == b"<" else "something that is not a model list"
            raise _Failed(_wrong_url(account.base_url, f"answered /models with {what}"))
        return tuple(ids)

    async def _one_token(self, profile: Profile, account: Account, model: str) -> int:
        """Milliseconds for a one-token answer from ``model``."""
        request = {
            "model": model,
            "messages": [{"role": "user", "content": _PROMPT}],
            "max_tokens": 1,
            "stream": False,
        }
        outgoing = profile.prepare(account, request, Intent("off"))
        started = self._clock()
        status, raw, retry_after = await self._ask(profile, account, "POST", outgoing.url, outgoing.body)
        latency_ms = round((self._clock() - started) * 1000)
        if status >= 300:
            raise self._refused(profile, account, status, raw, retry_after)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if outgoing.stream:  # a host that answers only streams: its events are an answer
                return latency_ms
            what = "a web page" if raw.lstrip()[:1] == b"<" else "something that is not JSON"
            raise _Failed(_wrong_url(account.base_url, f"answered the chat request with {what}")) from None
        error = profile.business_error(payload)
        if error is not None:
            raise _Failed(explain(redacted(error, (account.api_key,)), status=200, base_url=account.base_url))
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            detail = "the chat answer held no choices"
            raise _Failed(Explanation("failed", f"failed: {detail}", detail))
        return latency_ms


def is_checked(account: Account) -> bool:
    """Only OpenAI-compatible accounts are checked (iFlow shut down on 2026-04-17)."""
    return account.kind == "openai-compatible"


__all__ = [
    "AccountCheck",
    "CheckResult",
    "Explanation",
    "explain",
    "health_after",
    "is_checked",
    "lacks_version",
    "works",
]

"""The dispatch service: sends a Chat Completions request to an account of the pool.

Choosing the account, waiting for one, failing over to another, the model aliases, a client key's
model limits, renewing a refused key, quarantine and the redaction of the account's secrets all
live here; what the answer becomes for the client is the ``Relay``'s business (``chat_stream``
for ``/v1/chat/completions``, ``streams.sink_relay`` for the APIs that translate).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Protocol

from iflow2api import affinity
from iflow2api.asgi import Scope
from iflow2api.auth.credentials import Account
from iflow2api.calls import Call
from iflow2api.clientkeys import KeyRing
from iflow2api.dialects.aliases import DEFAULT_ALIASES, resolve_model
from iflow2api.dialects.intent import Intent
from iflow2api.errors import GatewayError, ModelNotFound, NoAccountAvailable, RateLimited
from iflow2api.pool.router import Pool
from iflow2api.providers import Profiles
from iflow2api.providers.base import Outgoing, Profile
from iflow2api.reasoning import ReasoningStore
from iflow2api.services.answers import read
from iflow2api.services.membership import Membership
from iflow2api.services.redaction import Redacting, redacted
from iflow2api.settings import Settings
from iflow2api.upstream.client import Response, UpstreamClient, retry_after_seconds
from iflow2api.upstream.models import ModelDirectory


class Relay(Protocol):
    """What becomes of an upstream answer with a 2xx status: the client's answer, sent.

    Raises ``GatewayError`` when the answer turns out to be a failure (another account may then
    take the request, as long as nothing but keep-alive pings reached the client).
    """

    async def __call__(
        self, profile: Profile, response: Response, request: dict[str, Any], outgoing: Outgoing
    ) -> None: ...


#: What a relay is made with: the request's ``Call`` and the store of reasoning to remember.
MakeRelay = Callable[[Call, ReasoningStore], Relay]


class Dispatcher:
    def __init__(
        self,
        membership: Membership,
        pool: Pool,
        client: UpstreamClient,
        profiles: Profiles,
        *,
        models: ModelDirectory,
        reasoning: ReasoningStore,
        settings: Settings,
    ) -> None:
        self._membership, self._pool = membership, pool
        self._client, self._profiles = client, profiles
        self._models, self._reasoning = models, reasoning
        #: The user's model aliases, how many accounts one request may try, and how often a
        #: stream waiting for its first content is pinged.
        self._aliases, self._max_attempts = settings.model_aliases, settings.max_attempts
        self._keepalive = settings.keepalive_interval

    def anthropic_model(self, requested: str) -> str:
        """The upstream model for what an Anthropic client asked (Claude Code asks for claude-*).

        The user's aliases first; then, when the pool has an iFlow account, the built-in Claude
        table, and otherwise the first OpenAI-compatible upstream's own ``modelName`` for any
        Claude name.
        """
        aliases = dict(self._aliases)
        members = self._membership.enabled()
        if any(m.kind != "openai-compatible" for m in members) or not members:
            fallback = dict(DEFAULT_ALIASES)
        else:
            names = [m.account.model_name for m in members if m.account.model_name]
            fallback = {"claude*": names[0]} if names else {}
        for pattern, target in fallback.items():
            aliases.setdefault(pattern, target)
        return resolve_model(requested, aliases)

    async def dispatch(
        self,
        scope: Scope,
        request: dict[str, Any],
        call: Call,
        relay: MakeRelay,
        late_error: Callable[[GatewayError], bytes],
        intent: Intent | None = None,
    ) -> None:
        """Send ``request`` to an account of the pool, failing over to others until content flows.

        The answer goes to the client through the relay ``relay`` makes; a stream is kept alive
        with pings until its first content, and an error after them is sent as ``late_error``.

        A failed attempt is retried on another account (at most ``max_attempts`` in all) as long
        as nothing but keep-alive pings has reached the client; what the failure means for the
        account that produced it (cooldown, refresh, quarantine) is the pool's business
        (``pool.outcomes``). An account the upstream asked to wait (its ``Retry-After``) stays a
        candidate for the retry: with nothing else free, the retry waits out that rest
        (``max_cooldown_wait``) in the pool.

        ``intent`` is what the client asked of thinking when its dialect says more than the chat
        request's ``reasoning_effort`` can (Anthropic's budget, or adaptive thinking); each account's
        profile turns it into its host's switch.
        """
        call.model, call.stream = request["model"], bool(request.get("stream"))
        if call.stream:
            call.keep_alive(self._keepalive, late_error)
        answer = relay(call, self._reasoning)
        pool = self._pool
        if not self._membership.members():
            raise self._membership.no_accounts()
        if self._aliases:
            resolved = resolve_model(request["model"], dict(self._aliases))
            if resolved != request["model"]:
                request = {**request, "model": resolved}
        model = call.model = request["model"]
        KeyRing.check_model(call.key, model)
        if pool.affinity:
            call.session = affinity.session_key(scope, request)
        tried: set[str] = set()
        renewed: set[str] = set()
        last: GatewayError | None = None
        for _ in range(self._max_attempts):
            try:
                member = await pool.acquire(model, session=call.session, exclude=frozenset(tried))
                started = time.time()
            except NoAccountAvailable:
                if last is None:
                    raise
                raise self._final(model, last) from None
            call.attempts += 1
            call.account = member.label
            call.on_content = functools.partial(pool.answered, member, started)
            try:
                await self._attempt(member.account, request, answer, call, intent)
            except GatewayError as error:
                if call.content_sent:
                    # Part of the answer is out, so nothing is retried; but the upstream failed all
                    # the same, and its account is told so (a rate limit mid-stream is still one).
                    pool.failed(member, error)
                    raise
                last = error
                if isinstance(error, ModelNotFound) and pool.serves(member, model) is not True:
                    # An account that was only thought to serve the model: no fault of its own.
                    tried.add(member.id)
                    continue
                verdict = pool.failed(member, error)
                if verdict.action == "refresh":
                    # The key expired (iFlow 439) or was refused: a fresh one, then the same account.
                    renewal = (
                        "impossible" if member.renew is None or member.id in renewed else await member.renew()
                    )
                    renewed.add(member.id)
                    if renewal == "renewed":
                        continue
                    if renewal == "impossible":
                        pool.quarantine(member, f"{verdict.reason}: {error.message}", code=error.code)
                    else:
                        pool.cool_down(member, f"{verdict.reason}; renewing the key failed for now")
                if not verdict.retry_elsewhere:
                    raise
                if not verdict.upstream_asked:
                    tried.add(member.id)
            else:
                pool.succeeded(member, started)
                return
            finally:
                call.on_content = None
                pool.release(member)
        assert last is not None
        raise self._final(model, last)

    def _final(self, model: str, last: GatewayError) -> GatewayError:
        """The error that ends a request every account failed: the last one, and when that was a
        rate limit and every account rests at the upstream's request, with the ``Retry-After`` of
        the first rest to end (a rest of the gateway's own choosing is no reason to keep a client
        away)."""
        if isinstance(last, RateLimited):
            wait = self._pool.asked_rest(model)
            if wait is not None:
                last.retry_after = wait
        return last

    async def _attempt(
        self, account: Account, request: dict[str, Any], relay: Relay, call: Call, intent: Intent | None
    ) -> None:
        """One account's try; every error made from the upstream's words loses the account's key
        here, before the pool stores it as a reason, the log shows it or a client does."""
        secrets = (account.api_key,)
        profile = Redacting(self._profiles.for_account(account), secrets)
        try:
            await self._models.check(account, request["model"])
            # Reasoning the client left out of its history goes back in (see iflow2api.reasoning).
            messages = self._reasoning.restore(request["messages"])
            if messages is not request["messages"]:
                request = {**request, "messages": messages}
            outgoing = profile.prepare(account, request, intent)
            call.thinking = outgoing.thinking
            response = await self._client.send("POST", outgoing.url, outgoing.headers, outgoing.body)
            try:
                if response.status >= 300:
                    raw = await read(response)
                    retry_after = retry_after_seconds(response.headers.get("retry-after"))
                    raise profile.http_error(
                        response.status, raw, response.headers.get("eagleeye-traceid"), retry_after
                    )
                await relay(profile, response, request, outgoing)
            finally:
                # Unread content means the client left or we failed: closing the connection is
                # what tells the upstream to stop generating.
                response.release()
        except GatewayError as error:
            raise redacted(error, secrets) from None

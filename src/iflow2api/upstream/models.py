"""Which models an account's upstream serves.

For iFlow, the catalogue (its ``/models`` was unreliable and the CLI never called it, protocol §1);
ids it does not know still go upstream, which has the last word (a 435). For an openai-compatible
upstream, its own ``/models`` list, cached; when that fails, the configured ``modelName``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import orjson

from iflow2api import catalogue
from iflow2api.auth.credentials import Account
from iflow2api.errors import GatewayError, ModelNotFound
from iflow2api.providers import openai_wire as openai_compatible
from iflow2api.upstream import wire
from iflow2api.upstream.client import UpstreamClient, transport_failure

log = logging.getLogger("iflow2api.models")

# After a failed /models call, try again this soon rather than after the full cache lifetime.
_RETRY_AFTER_FAILURE = 30.0


@dataclass(frozen=True, slots=True)
class ModelList:
    ids: tuple[str, ...]
    #: True when the upstream itself said this is everything it serves.
    complete: bool


def describe(ids: tuple[str, ...]) -> str:
    return ", ".join(ids) if ids else "(none)"


class ModelDirectory:
    def __init__(self, client: UpstreamClient, ttl: float) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, tuple[float, ModelList]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def cached(self, account: Account, *, stale: bool = False) -> ModelList | None:
        """What is known without asking: the catalogue for iFlow, a cached list for others
        (``stale``: even one past its time)."""
        if account.kind == "iflow":
            return ModelList(tuple(m.id for m in catalogue.IFLOW_MODELS if not m.hidden), complete=False)
        cached = self._cache.get(account.key)
        return cached[1] if cached and (stale or cached[0] > time.monotonic()) else None

    async def models(self, account: Account) -> ModelList:
        if account.kind == "iflow":
            return ModelList(tuple(m.id for m in catalogue.IFLOW_MODELS if not m.hidden), complete=False)
        cached = self._cache.get(account.key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        lock = self._locks.setdefault(account.key, asyncio.Lock())
        async with lock:  # many first requests, one /models call
            cached = self._cache.get(account.key)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            listing, lifetime = await self._fetch(account)
            self._cache[account.key] = (time.monotonic() + lifetime, listing)
            return listing

    async def _fetch(self, account: Account) -> tuple[ModelList, float]:
        fallback = ModelList((account.model_name,) if account.model_name else (), complete=False)
        try:
            listing = await self.ask(account)
        except GatewayError as exc:
            log.warning("could not list the upstream's models (%s); using modelName", exc)
            return fallback, _RETRY_AFTER_FAILURE
        return listing, self._ttl if listing.complete else _RETRY_AFTER_FAILURE

    async def ask(self, account: Account) -> ModelList:
        """Its ``/models``, asked now: the list it gave (``complete``), or ``modelName`` when it
        answered without one.

        Raises the ``GatewayError`` of an upstream that did not answer (``UpstreamTimeout`` within
        the client's connect_timeout / first_byte_timeout, ``UpstreamUnavailable``, ...), so that a
        caller who asked in person can say so rather than show a guess.
        """
        fallback = ModelList((account.model_name,) if account.model_name else (), complete=False)
        headers = openai_compatible.build_headers(account.api_key)
        response = await self._client.send("GET", account.base_url + "/models", headers, None)
        try:
            raw = await response.read()
        except wire.TransportError as exc:
            raise transport_failure(exc, "reading") from None
        finally:
            response.release()
        ids = None
        if response.status == 200:
            try:
                ids = openai_compatible.model_ids(orjson.loads(raw))
            except orjson.JSONDecodeError:
                ids = None
        if ids is None:
            log.warning(
                "the upstream's /models answered %s without a model list; using modelName", response.status
            )
            return fallback
        return ModelList(tuple(ids), complete=True)

    async def check(self, account: Account, model: str) -> None:
        """Refuse a model the upstream said it does not serve, naming the ones it does."""
        if account.kind == "iflow":
            return
        listing = await self.models(account)
        if listing.complete and model not in listing.ids:
            raise ModelNotFound(
                f"The model '{model}' does not exist on this upstream. Available: {describe(listing.ids)}.",
                param="model",
            )

"""What every provider profile is: a pure description of one upstream host and how to speak to it.

A profile turns the client's Chat Completions request (every dialect is translated to one first)
and its thinking ``Intent`` into the host's own body and headers (``Profile.prepare``), reads the
host's answers into the shape the gateway relays (``Profile.rewriter``, ``Profile.normalize_completion``)
and its failures into errors from ``iflow2api.errors`` (``Profile.http_error``,
``Profile.business_error``). Sending is ``upstream.client``'s job; profiles do no I/O.

The base class speaks plain OpenAI Chat Completions, which is what the ``generic`` profile is; each
provider's module overrides what its host does differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import orjson

from iflow2api import written
from iflow2api.dialects.intent import Intent, intent_of_effort
from iflow2api.errors import GatewayError
from iflow2api.providers import openai_wire
from iflow2api.sse import DONE


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a host documents of one model: its context window and longest answer, in tokens."""

    context_window: int | None = None
    max_output: int | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    url: str
    headers: dict[str, str]
    body: bytes
    #: Whether the upstream is asked to stream (it may be when the client did not: see ``Prepared``).
    stream: bool
    #: What was sent for thinking, for the ``x-iflow2api-thinking`` response header (None: nothing).
    thinking: str | None = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A profile's body for the host, and what it chose for thinking.

    ``stream`` is True when the host is asked to stream although the client was not (a host that
    thinks only on streams): the gateway then gathers the stream into one answer.
    """

    body: dict[str, Any]
    thinking: str | None = None
    stream: bool = False


class Account(Protocol):
    """What a profile needs of an account (``auth.credentials.Account`` is one)."""

    @property
    def base_url(self) -> str: ...

    @property
    def api_key(self) -> str: ...


class ChunkRewriter(Protocol):
    """Turns one host's stream chunks into the gateway's shape (reasoning as ``reasoning_content``).

    Stateful, one per stream: a ``<think>`` tag may be split over chunks. ``feed`` never edits the
    chunk it is given: it returns that very object when nothing changes (so its bytes pass through
    as they came, ``EventRewriter``), and new dicts otherwise.
    """

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]: ...

    def finish(self) -> list[dict[str, Any]]: ...


class Profile:
    """The plain OpenAI-compatible host; subclasses describe the hosts that differ."""

    #: The profile's name in settings, on the CLI and on the page.
    name: ClassVar[str] = "generic"
    #: How people call the host.
    title: ClassVar[str] = "OpenAI-compatible"
    #: The public base URL, used when an account names the provider and no base URL.
    base_url: ClassVar[str] = ""
    #: Hosts of base URLs that mean this provider (``fnmatch`` patterns, lower case).
    hosts: ClassVar[tuple[str, ...]] = ()
    #: What the host documents of its models.
    models: ClassVar[Mapping[str, ModelInfo]] = MappingProxyType({})

    #: What a profile leaves to the user where the host's documents are silent or disagree, with
    #: its defaults; the ``provider_options`` setting overrides them per profile.
    options: ClassVar[Mapping[str, object]] = MappingProxyType({})

    def __init__(
        self, *, thinking_default: bool | None = None, options: Mapping[str, object] | None = None
    ) -> None:
        #: The ``thinking_default`` setting: None leaves a request without intent to the host.
        self.thinking_default = thinking_default
        unknown = set(options or {}) - set(self.options)
        if unknown:
            raise ValueError(
                f"provider_options: {self.name} has no option {', '.join(sorted(unknown))}"
                f" (it has: {', '.join(self.options) or 'none'})"
            )
        given = {name: _as_type_of(self.options[name], value) for name, value in (options or {}).items()}
        #: The options in force: the profile's defaults, overridden by the setting.
        self.option_values: Mapping[str, object] = MappingProxyType({**self.options, **given})

    def prepare(self, account: Account, request: dict[str, Any], intent: Intent | None = None) -> Outgoing:
        """What to send the host for ``request``. ``intent`` is the client's thinking intent when its
        dialect said more than ``reasoning_effort`` can; None: read it from ``reasoning_effort``."""
        prepared = self.build_body(request, intent)
        body = prepared.body
        return Outgoing(
            self.chat_url(account.base_url),
            self.headers(account.api_key),
            written.dumps(body),
            prepared.stream or body.get("stream") is True,
            prepared.thinking,
        )

    def intent(self, request: dict[str, Any], intent: Intent | None) -> Intent:
        """The client's intent (``intent``, else its ``reasoning_effort``); with none, the
        ``thinking_default`` setting's when that is set."""
        if intent is None:
            intent = intent_of_effort(request.get("reasoning_effort"))
        if intent.mode != "default" or self.thinking_default is None:
            return intent
        return Intent("on") if self.thinking_default else Intent("off")

    def chat_url(self, base_url: str) -> str:
        return base_url.rstrip("/") + "/chat/completions"

    def headers(self, api_key: str) -> dict[str, str]:
        return openai_wire.build_headers(api_key)

    def build_body(self, request: dict[str, Any], intent: Intent | None) -> Prepared:
        """The host's body. The generic host gets the client's request as it came, except that a
        stream always asks for its usage (see ``openai_wire.build_body``), and no thinking switch
        of ours: its ``reasoning_effort``, if any, passes as it is."""
        return Prepared(openai_wire.build_body(request))

    def rewriter(self, request: dict[str, Any]) -> ChunkRewriter | None:
        """A rewriter for this host's stream chunks, or None when they already have the gateway's
        shape (then the chat stream passes through byte for byte)."""
        return None

    def normalize_completion(self, completion: dict[str, Any]) -> bool:
        """Bring a whole answer into the gateway's shape, in place; True if anything changed."""
        return False

    def normalize_usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The host's usage object in OpenAI's shape: cached prompt tokens in
        ``prompt_tokens_details.cached_tokens``, reasoning tokens in
        ``completion_tokens_details.reasoning_tokens``."""
        return usage

    def business_error(self, payload: object) -> GatewayError | None:
        """The error a 200 answer or stream chunk stands for, if it is one."""
        return openai_wire.business_error(payload)

    def http_error(
        self, status: int, body: bytes, trace_id: str | None, retry_after: float | None
    ) -> GatewayError:
        return openai_wire.http_error(status, body, retry_after=retry_after)


def _as_type_of(default: object, value: object) -> object:
    """An option's value from the settings' text, as the type of its default."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if isinstance(default, bool):
        if value.lower() not in ("true", "false"):
            raise ValueError(f"provider_options: expected true or false, not {value!r}")
        return value.lower() == "true"
    if isinstance(default, int):
        return int(value)
    return value


class EventRewriter:
    """A ``ChunkRewriter`` over a stream's event data (``sse.SSEDecoder``'s bytes): each JSON chunk
    rewritten, anything else (``[DONE]``, a keep-alive, a line that is not JSON) as it came, and
    what the rewriter still holds out before ``[DONE]`` or at the end of the stream (``finish``).
    """

    __slots__ = ("_finished", "_rewriter")

    def __init__(self, rewriter: ChunkRewriter) -> None:
        self._rewriter = rewriter
        self._finished = False

    def feed(self, events: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for data in events:
            if data == DONE:
                out.extend(self.finish())
                out.append(data)
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                chunk = None
            if not isinstance(chunk, dict):
                out.append(data)
                continue
            rewritten = self._rewriter.feed(chunk)
            if len(rewritten) == 1 and rewritten[0] is chunk:
                out.append(data)  # unchanged: the host's own bytes, not written again
            else:
                out.extend(orjson.dumps(each) for each in rewritten)
        return out

    def finish(self) -> list[bytes]:
        if self._finished:
            return []
        self._finished = True
        return [orjson.dumps(chunk) for chunk in self._rewriter.finish()]

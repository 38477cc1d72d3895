"""One request as it goes through the gateway: how far its answer got, and what it cost.

``Call`` wraps the ASGI ``send`` of a request. It remembers whether the response has started and
whether any content has gone out (until then a failed upstream attempt may still be retried on
another account), and gathers what the usage record needs: key, account, model, tokens, time to
first token, attempts.

While a streaming request waits for its first token (a queue, a failover, a slow upstream), it can
send SSE comment pings, which every SSE client ignores, so that proxies and clients with idle
timeouts keep the connection open. A failure after a ping can no longer change the status code; it
goes out as an error event in the client's error shape instead (``late_error``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Literal

from iflow2api.asgi import SSE_HEADERS, Message, Send
from iflow2api.errors import GatewayError
from iflow2api.state.records import ClientKeyRecord, UsageRow

#: How the client expects an error: OpenAI's ``{"error": {...}}`` or Anthropic's. Not a dialect:
#: a dialect is an API family (chat, anthropic, responses), as in ``UsageRow.dialect``.
ErrorShape = Literal["openai", "anthropic"]
PING = b": ping\n\n"


#: The response header that says what was sent upstream for thinking (see ``providers``).
THINKING_HEADER = b"x-iflow2api-thinking"


class Call:
    __slots__ = (
        "_pinger",
        "_send",
        "_sending",
        "account",
        "arrived",
        "attempts",
        "began",
        "cached_tokens",
        "completion_tokens",
        "content_sent",
        "dialect",
        "error_code",
        "error_shape",
        "estimated",
        "finished",
        "first_content_at",
        "key",
        "late_error",
        "model",
        "on_content",
        "prompt_tokens",
        "reasoning_tokens",
        "same_origin_only",
        "session",
        "started",
        "status",
        "stream",
        "thinking",
    )

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.finished = False
        self.content_sent = False
        self.status = 0
        self.same_origin_only = False
        self.error_shape: ErrorShape = "openai"
        self.began = time.perf_counter()
        self.arrived = time.time()
        self.first_content_at: float | None = None
        #: Usage-recorded requests name their API family here: chat, anthropic or responses.
        self.dialect: str | None = None
        self.key: ClientKeyRecord | None = None
        self.account: str | None = None
        self.model = ""
        self.stream = False
        self.session: str | None = None
        #: What the profile sent upstream for thinking; the answer's ``x-iflow2api-thinking`` header.
        self.thinking: str | None = None
        self.attempts = 0
        self.error_code: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.reasoning_tokens = 0
        #: Prompt tokens the upstream read from its cache (a part of ``prompt_tokens``).
        self.cached_tokens = 0
        #: Whether the token counts are our own: the upstream reported no usage.
        self.estimated = False
        self.late_error: Callable[[GatewayError], bytes] | None = None
        #: Called once, when the first content goes out (the failover loop tells the pool then).
        self.on_content: Callable[[], None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        #: Made with the pinger (see ``keep_alive``): pings and real sends never interleave.
        self._sending: asyncio.Lock

    async def send(self, message: Message) -> None:
        if self._pinger is None:
            await self._pass_on(message)
            return
        async with self._sending:  # never in the middle of a ping
            await self._pass_on(message)

    async def _pass_on(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            if self.started:
                return  # the keep-alive pings already sent the stream's head
            self.started = True
            self.status = message["status"]
            if self.thinking is not None:
                message["headers"] = [*message["headers"], (THINKING_HEADER, self.thinking.encode())]
            if self.same_origin_only:
                # Other sites' scripts must not read the page's API (it shows who is logged in).
                message["headers"] = [
                    (k, v) for k, v in message["headers"] if not k.startswith(b"access-control-")
                ]
        else:
            if not self.content_sent and message.get("body"):
                self.content_sent = True
                self.first_content_at = time.perf_counter()
                if self._pinger is not None:
                    self._pinger.cancel()
                    self._pinger = None
                if self.on_content is not None:
                    self.on_content()
            if not message.get("more_body"):
                self.finished = True
        await self._send(message)

    # -- keep-alive ----------------------------------------------------------------------------------

    def keep_alive(self, interval: float, late_error: Callable[[GatewayError], bytes]) -> None:
        """Ping every ``interval`` seconds until the first content goes out."""
        self.late_error = late_error
        if interval > 0 and self._pinger is None:
            self._sending = asyncio.Lock()
            self._pinger = asyncio.ensure_future(self._ping(interval))

    async def _ping(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            async with self._sending:
                if self.content_sent or self.finished:
                    return
                if not self.started:
                    self.started = True
                    self.status = 200
                    # The header says what was sent for thinking, once an account was chosen; a
                    # stream that waits for one before any upstream is asked goes out without it.
                    headers = SSE_HEADERS
                    if self.thinking is not None:
                        headers = [*SSE_HEADERS, (THINKING_HEADER, self.thinking.encode())]
                    await self._send({"type": "http.response.start", "status": 200, "headers": headers})
                await self._send({"type": "http.response.body", "body": PING, "more_body": True})

    async def fail_late(self, error: GatewayError) -> bool:
        """Report ``error`` inside a stream that has started and is still open (it carried only
        pings so far, or content whose upstream wait a stop cut); False if it cannot."""
        if not self.started or self.finished or self.late_error is None:
            return False
        self.error_code = error.code or error.type
        if not self.content_sent:
            self.status = error.status  # for the usage record: the client got a 200 and then this
        await self.send({"type": "http.response.body", "body": self.late_error(error), "more_body": False})
        return True

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            # A ping that failed (the client gone) has nothing left to report.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pinger
            self._pinger = None

    # -- usage ---------------------------------------------------------------------------------------

    def note_usage(self, usage: object) -> None:
        """Take the token counts from an OpenAI ``usage`` object (the last one seen wins): a host's
        own shape is brought into OpenAI's by its profile first (``Profile.normalize_usage``).

        >>> call = Call(None)  # type: ignore[arg-type]
        >>> call.note_usage({"prompt_tokens": 90, "prompt_tokens_details": {"cached_tokens": 64}})
        >>> call.prompt_tokens, call.cached_tokens
        (90, 64)
        """
        if not isinstance(usage, dict):
            return
        self.estimated = False
        self.prompt_tokens = _count(usage.get("prompt_tokens"))
        self.completion_tokens = _count(usage.get("completion_tokens"))
        self.reasoning_tokens = _count(_detail(usage, "completion_tokens_details", "reasoning_tokens"))
        self.cached_tokens = _count(_detail(usage, "prompt_tokens_details", "cached_tokens"))

    def note_estimate(self, usage: dict[str, int]) -> None:
        """Take our own count, for an answer the upstream reported no usage for."""
        self.note_usage(usage)
        self.estimated = True

    def usage_row(self) -> UsageRow:
        now = time.perf_counter()
        ttft = None if self.first_content_at is None else (self.first_content_at - self.began) * 1000
        return UsageRow(
            at=self.arrived,
            key=self.key.name if self.key is not None else None,
            account=self.account,
            model=self.model or "-",
            dialect=self.dialect or "chat",
            stream=self.stream,
            status=self.status,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            reasoning_tokens=self.reasoning_tokens,
            latency_ms=round((now - self.began) * 1000, 2),
            ttft_ms=None if ttft is None else round(ttft, 2),
            attempts=self.attempts,
            error=self.error_code,
            estimated=self.estimated,
            cached_tokens=self.cached_tokens,
        )


def _detail(usage: dict[str, object], details: str, name: str) -> object:
    inner = usage.get(details)
    return inner.get(name) if isinstance(inner, dict) else None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

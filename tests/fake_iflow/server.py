"""The fake iFlow server: real HTTP on ``127.0.0.1:0``, in a thread with its own event loop.

Synchronous tests drive it; the gateway under test talks to it over loopback like to the real one::

    with FakeIflow() as fake:
        fake.enqueue(Completion(content="Hi"))
        # point the gateway's settings.json baseUrl at fake.base_url, send a request, then:
        fake.received[-1].headers["user-agent"]  # 'iFlow-Cli'

The same server plays iFlow's OAuth host at its root (``fake.oauth_base_url``, see ``oauth``); the
api keys its logins hand out are accepted by the chat endpoint like the ``api_keys`` given here.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from tests.fake_iflow import checks, hosts
from tests.fake_iflow.oauth import FakeOAuth, Handler
from tests.fake_iflow.replies import (
    BusinessError,
    Completion,
    Hang,
    HttpError,
    JsonOnStream,
    RawJson,
    Reply,
    Stream,
    completion_body,
    completion_chunks,
    encode_done,
    encode_event,
)

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
SSE_CONTENT_TYPE = "text/event-stream;charset=UTF-8"
# How long stop() lets a handler finish before aiohttp cancels it; hanging replies never finish.
SHUTDOWN_GRACE = 0.1


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One chat request as the fake got it; ``rejected`` says why it was refused, or is ``None``."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any] | None
    raw_body: bytes
    rejected: str | None


@dataclass(slots=True)
class _Ticket:
    """An admitted request while it is served; ``done`` once the reply is complete from our side."""

    key: str
    generation: int
    done: bool = False


class _Ledger:
    """State shared between the server thread and the test thread, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: deque[Reply] = deque()
        self._queues_by_key: dict[str, deque[Reply]] = {}
        self._busy: Counter[str] = Counter()
        self._disconnects = 0
        # reset() starts a new generation, so a leftover request from an earlier test that is
        # abandoned late does not count as a disconnect of the next test.
        self._generation = 0
        self.received: list[ReceivedRequest] = []

    def enqueue(self, replies: Iterable[Reply]) -> None:
        with self._lock:
            self._queue.extend(replies)

    def enqueue_for(self, key: str, replies: Iterable[Reply]) -> None:
        with self._lock:
            self._queues_by_key.setdefault(key, deque()).extend(replies)

    def record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.received.append(request)

    def admit(
        self, request: ReceivedRequest, key: str, *, single_flight: bool
    ) -> tuple[_Ticket, Reply] | None:
        """Record an accepted request and hand out its reply, or ``None`` when the key is busy."""
        with self._lock:
            if single_flight and self._busy[key]:
                return None
            self._busy[key] += 1
            self.received.append(request)
            # The key's own script first, then the shared one, then the default answer.
            queue = self._queues_by_key.get(key) or self._queue
            reply = queue.popleft() if queue else Completion()
            return _Ticket(key, self._generation), reply

    def release(self, ticket: _Ticket) -> None:
        with self._lock:
            if not ticket.done:
                ticket.done = True
                self._busy[ticket.key] -= 1

    def abandoned(self, ticket: _Ticket) -> None:
        """The client left before the reply was complete."""
        with self._lock:
            if not ticket.done and ticket.generation == self._generation:
                self._disconnects += 1
                self._lock.notify_all()

    def wait_for_disconnects(self, n: int, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._disconnects >= n, timeout)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(self._busy.values())

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._queues_by_key.clear()
            self.received.clear()
            self._disconnects = 0
            self._generation += 1


class FakeIflow:
    """A scriptable iFlow (``mode="iflow"``) or plain OpenAI-compatible (``mode="openai"``) upstream.

    In iFlow mode every chat request is checked the way the real service would (see ``checks``):
    key (434), CLI headers and signature (406, when ``require_signature``), body rules (400), model
    (435) and, when ``single_flight``, one request per key at a time (449). Requests that pass get
    the next enqueued reply, or a short default :class:`Completion`. Keys handed out by ``oauth``
    logins are accepted too; one retired by a refresh, once past its grace, gets a 439.

    ``null_usage`` answers a stream that asked ``stream_options.include_usage`` the way OpenAI does:
    ``"usage": null`` on every chunk but the one that carries the usage.
    """

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (checks.DEFAULT_KEY,),
        mode: str = "iflow",
        require_signature: bool = True,
        single_flight: bool = True,
        models: Sequence[str] | None = None,
        null_usage: bool = False,
    ) -> None:
        self.api_keys = frozenset(api_keys)
        self.mode = mode
        self.null_usage = null_usage
        self.require_signature = require_signature
        self.single_flight = single_flight and mode == "iflow"
        #: The provider this fake plays (``hosts``); None in iFlow mode.
        self.host = None if mode == "iflow" else hosts.HOSTS[mode]
        if mode == "iflow":
            self.models = tuple(dict.fromkeys([*checks.IFLOW_MODEL_IDS, *(models or ())]))
        else:
            self.models = tuple(models if models is not None else checks.OPENAI_MODEL_IDS)
        self._ledger = _Ledger()
        self.oauth = FakeOAuth(lambda: self.oauth_base_url)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stopping = False
        self._port: int | None = None
        self._failure: BaseException | None = None

    # --- the test's side --------------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every chat request, in arrival order, rejected ones included."""
        return self._ledger.received

    @property
    def base_url(self) -> str:
        """What goes in settings.json ``baseUrl``: ``http://127.0.0.1:<port>/v1``."""
        if self._port is None:
            raise RuntimeError("the fake iFlow server is not running; call start() first")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def oauth_base_url(self) -> str:
        """What ``IFLOW2API_OAUTH_BASE_URL`` is set to: ``http://127.0.0.1:<port>``."""
        if self._port is None:
            raise RuntimeError("the fake iFlow server is not running; call start() first")
        return f"http://127.0.0.1:{self._port}"

    @property
    def in_flight(self) -> int:
        """Chat requests admitted and not yet fully answered."""
        return self._ledger.in_flight

    def enqueue(self, *replies: Reply) -> None:
        self._ledger.enqueue(replies)

    def enqueue_for(self, key: str, *replies: Reply) -> None:
        """Replies for requests made with this API key only (one account of a pool), before the
        shared queue."""
        self._ledger.enqueue_for(key, replies)

    def wait_for_disconnects(self, n: int, timeout: float) -> bool:
        """True once ``n`` admitted requests were abandoned by their client before the reply ended."""
        return self._ledger.wait_for_disconnects(n, timeout)

    def reset(self) -> None:
        """Forget the queue, what was received, the disconnect count (in-flight ones stay counted) and
        the OAuth state (see ``FakeOAuth.reset``)."""
        self._ledger.reset()
        self.oauth.reset()

    def start(self) -> FakeIflow:
        if self._thread is not None:
            raise RuntimeError("the fake iFlow server is already running")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-iflow", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=10) or self._failure is not None:
            self.stop()
            raise RuntimeError("the fake iFlow server did not start") from self._failure
        return self

    def stop(self) -> None:
        thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop_requested is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop_requested.set)
        thread.join(timeout=5)
        if thread.is_alive():
            raise RuntimeError("the fake iFlow server did not stop within 5 s")
        self._thread = self._loop = self._stop_requested = None
        self._port = None

    def __enter__(self) -> FakeIflow:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # --- the server thread ------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._main(ready))

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._stopping = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        app.on_response_prepare.append(_add_trace_id)
        # handler_cancellation: a client that hangs up cancels its handler, which is how the fake
        # notices abandoned requests even while it sends nothing (Hang).
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_GRACE
        )
        try:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._port = int(runner.addresses[0][1])
        except Exception as error:  # start() raises it in the test's thread
            self._failure = error
            await runner.cleanup()
            return
        finally:
            ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            self._stopping = True
            await runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        routes: dict[str, dict[str, Handler]] = {
            CHAT_PATH: {"POST": self._chat},
            MODELS_PATH: {"GET": self._models},
            **self.oauth.routes(),
        }
        methods = routes.get(request.path)
        if methods is None:
            return _spring_error(404, "Not Found", request.path)
        handler = methods.get(request.method)
        if handler is None:
            return _spring_error(405, "Method Not Allowed", request.path)
        return await handler(request)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if checks.bearer_key(_lower(request.headers)) not in self._accepted_keys():
            if self.host is not None:
                return _json(401, checks.openai_invalid_key().body)
            return _json(401, {"error": {"message": "status 401", "type": "invalid_request_error"}})
        owner = "iflow" if self.mode == "iflow" else "fake"
        data = [{"id": model, "object": "model", "created": 0, "owned_by": owner} for model in self.models]
        return _json(200, {"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = _lower(request.headers)
        body = checks.parse_body(raw)
        received = ReceivedRequest(request.method, request.path, headers, body, raw, None)
        rejection = self._judge(headers, body)
        if rejection is None and body is not None:
            key = checks.bearer_key(headers) or ""
            admitted = self._ledger.admit(received, key, single_flight=self.single_flight)
            if admitted is not None:
                return await self._answer(request, body, *admitted)
            rejection = checks.busy(key)
        assert rejection is not None  # only a JSON object body passes the checks
        self._ledger.record(replace(received, rejected=rejection.reason))
        return _json(rejection.status, rejection.body)

    async def _answer(
        self, request: web.Request, body: dict[str, Any], ticket: _Ticket, reply: Reply
    ) -> web.StreamResponse:
        try:
            return await self._serve(request, reply, body, ticket)
        except asyncio.CancelledError:
            # With handler_cancellation, a client hanging up lands here; so does stop().
            if not self._stopping:
                self._ledger.abandoned(ticket)
            raise
        finally:
            self._ledger.release(ticket)

    def _accepted_keys(self) -> frozenset[str]:
        return self.api_keys | self.oauth.live_keys()

    def _judge(self, headers: Mapping[str, str], body: dict[str, Any] | None) -> checks.Rejection | None:
        api_keys = self._accepted_keys()
        if self.host is not None:
            return self.host.judge(headers, body, api_keys=api_keys, models=self.models)
        key = checks.bearer_key(headers)
        if key is not None and key not in api_keys and self.oauth.is_expired_key(key):
            return checks.expired_api_key(f"key ...{key[-4:]} was retired by an OAuth refresh")
        return checks.judge_iflow(
            headers,
            body,
            api_keys=api_keys,
            require_signature=self.require_signature,
            models=self.models,
            now_ms=int(time.time() * 1000),
        )

    async def _serve(
        self, request: web.Request, reply: Reply, body: dict[str, Any], ticket: _Ticket
    ) -> web.StreamResponse:
        model: str = body["model"]
        match reply:
            case Hang(seconds=seconds, then=then):
                await asyncio.sleep(seconds)
                return await self._serve(request, then or Completion(), body, ticket)
            case BusinessError():
                return _json(200, reply.payload())
            case HttpError(status=status, headers=extra):
                payload = reply.payload()
                if isinstance(payload, bytes):
                    return web.Response(status=status, body=payload, content_type="text/plain", headers=extra)
                return _json(status, payload, extra)
            case RawJson(body=raw):
                return _json(200, raw)
            case JsonOnStream(completion=completion):
                return _json(200, self._shaped(completion_body(completion, model), body))
            case Completion() if not checks.wants_stream(body):
                return _json(200, self._shaped(completion_body(reply, model), body))
            case Completion():
                options = body.get("stream_options")
                include_usage = isinstance(options, dict) and options.get("include_usage") is True
                include_usage = include_usage or (self.host is not None and self.host.usage_unasked)
                # OpenAI puts usage on a chunk of its own; for iFlow it rides on the finish chunk.
                separate = self.host is not None and self.host.separate_usage
                chunks = completion_chunks(
                    reply,
                    model,
                    include_usage=include_usage,
                    separate_usage=separate,
                    null_usage=self.null_usage and include_usage,
                )
                if self.host is not None:
                    chunks = self.host.shape_chunks(chunks, body)  # type: ignore[arg-type,assignment]
                return await self._stream(request, Stream(chunks), ticket)
            case Stream():
                return await self._stream(request, reply, ticket)

    def _shaped(self, completion: Any, request: dict[str, Any]) -> Any:
        return completion if self.host is None else self.host.shape_completion(completion, request)

    async def _stream(self, request: web.Request, stream: Stream, ticket: _Ticket) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": SSE_CONTENT_TYPE, "cache-control": "no-cache"})
        events = [encode_event(event, data_space=stream.data_space) for event in stream.chunks]
        if stream.cut_after is not None:
            events = events[: stream.cut_after]
        elif stream.done:
            events.append(encode_done(data_space=stream.data_space))
        try:
            await response.prepare(request)
            for index, event in enumerate(events):
                await asyncio.sleep(stream.first_delay if index == 0 else stream.delay)
                await response.write(event)
        except ConnectionResetError:
            # The client hung up between two writes; aiohttp finishes the response quietly.
            self._ledger.abandoned(ticket)
            return response
        # Free the key before the last bytes leave, so a client that sends its next request the
        # moment this one ends never meets a stale 449.
        self._ledger.release(ticket)
        if stream.cut_after is not None:
            _hang_up(request)
            return response
        await response.write_eof()
        return response


async def _add_trace_id(request: web.Request, response: web.StreamResponse) -> None:
    # §1: every answer of the real gateway carries one; the CLI quotes it in its error messages.
    response.headers["eagleeye-traceid"] = secrets.token_hex(15)  # 30 hex digits, like EagleEye's


def _hang_up(request: web.Request) -> None:
    """Close the connection mid-body: no chunked terminator, no ``[DONE]``.

    close() rather than abort(): the events already written still reach the client, then EOF.
    aiohttp's own write of the terminator then fails quietly on the closing transport.
    """
    if request.transport is not None:
        request.transport.close()


def _json(status: int, body: object, headers: Mapping[str, str] | None = None) -> web.Response:
    payload = orjson.dumps(body)
    return web.Response(status=status, body=payload, content_type="application/json", headers=headers)


def _spring_error(status: int, error: str, path: str) -> web.Response:
    # §1: the Spring Boot error body the real gateway answers unknown paths with.
    timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    return _json(status, {"timestamp": timestamp, "status": status, "error": error, "path": path})


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}

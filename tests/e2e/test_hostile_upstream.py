"""Upstreams that answer too much, or quote back the key they were sent, through the real gateway.

The upstream here is a raw socket server (not the fake iFlow): it writes exactly the bytes a test
scripts, however hostile, and pauses mid-answer until the test has seen ``/health`` answer, so
"the gateway keeps serving others while this happens" is checked without measuring time.
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import GatewayProcess

MiB = 1024 * 1024
MESSAGES = [{"role": "user", "content": "hi"}]

#: Writes one answer; gets the request's head and a ``hold`` to await where the test must look in.
Answer = Callable[[asyncio.StreamWriter, bytes, Callable[[], Awaitable[None]]], Awaitable[None]]


class HostileUpstream:
    """A raw HTTP/1.1 server on 127.0.0.1:0 in its own thread; ``answer`` writes each response.

    ``holding`` is set when an answer reaches its ``hold()``; the answer goes on after ``go_on()``.
    """

    def __init__(self) -> None:
        self.answer: Answer | None = None
        self.heads: list[bytes] = []
        self.holding = threading.Event()
        self._go_on = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._tasks: list[asyncio.Task[None]] = []
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> HostileUpstream:
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(5)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._go_on.set()

        async def stop() -> None:
            self._server.close()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            await asyncio.sleep(0.01)  # let the transports' close callbacks run

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def go_on(self) -> None:
        self._go_on.set()

    async def _hold(self) -> None:
        self.holding.set()
        await asyncio.to_thread(self._go_on.wait, 30)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.heads.append(head)
                assert self.answer is not None
                await self.answer(writer, head, self._hold)
        except (asyncio.IncompleteReadError, asyncio.CancelledError, ConnectionError, OSError):
            pass  # the gateway hung up (what most tests here expect of it), or the test ended
        finally:
            writer.close()


@pytest.fixture
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream() as server:
        yield server


def settings_for(upstream: HostileUpstream, key: str = "sk-" + "7" * 32) -> dict[str, Any]:
    return {"selectedAuthType": "iflow", "apiKey": key, "baseUrl": upstream.base_url, "modelName": "glm-4.7"}


def chat(gateway: GatewayProcess, *, stream: bool = False) -> Any:
    """A chat request through the ``openai`` SDK (a stream read to its end); the answer."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=120) as client:
        answer = client.chat.completions.create(model="glm-4.7", messages=MESSAGES, stream=stream)  # type: ignore[arg-type]
        return list(answer) if stream else answer


def peak_memory_mib(gateway: GatewayProcess) -> float:
    """The gateway process's peak resident memory so far (Linux's VmHWM)."""
    status = Path(f"/proc/{gateway.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def chunk(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


async def send_chunked(writer: asyncio.StreamWriter, pieces: Iterator[bytes]) -> None:
    for piece in pieces:
        writer.write(chunk(piece))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def gzip_pieces(parts: Iterator[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    for part in parts:
        packed = packer.compress(part)
        if packed:
            yield packed
    yield packer.flush()


def huge_completion(content_bytes: int) -> Iterator[bytes]:
    """A well-formed chat completion whose content is ``content_bytes`` long, made piece by piece:
    what a gateway without a cap would read whole and pass on."""
    yield b'{"id": "c1", "object": "chat.completion", "model": "glm-4.7", "choices": [{"index": 0, '
    yield b'"finish_reason": "stop", "message": {"role": "assistant", "content": "'
    block = b"x" * MiB
    for _ in range(content_bytes // MiB):
        yield block
    yield b'"}}]}'


def gzip_bomb() -> tuple[bytes, ...]:
    """512 MiB of completion, under a megabyte on the wire (made in pieces, never held inflated)."""
    return tuple(gzip_pieces(huge_completion(512 * MiB)))


def run_while_held(
    upstream: HostileUpstream, gateway: GatewayProcess, call: Callable[[], Any]
) -> Future[Any]:
    """Start ``call`` (a client request); once the upstream is mid-answer, check that ``/health``
    answers, then let the upstream go on. Returns the call's future."""
    pool = ThreadPoolExecutor(1)
    future = pool.submit(call)
    assert upstream.holding.wait(60), "the upstream was never asked"
    health = httpx.get(gateway.url + "/health", timeout=60)
    assert health.status_code == 200
    upstream.go_on()
    pool.shutdown(wait=False)
    return future


def expect_502(future: Future[Any]) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        future.result(timeout=120)
    assert caught.value.status_code == 502
    return caught.value


def still_serves(gateway: GatewayProcess, upstream: HostileUpstream) -> None:
    """The gateway answers /health and a normal request afterwards."""

    async def fine(writer: asyncio.StreamWriter, head: bytes, hold: Callable[[], Awaitable[None]]) -> None:
        body = json.dumps(
            {
                "id": "c2",
                "object": "chat.completion",
                "created": 1,
                "model": "glm-4.7",
                "choices": [
                    {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        await writer.drain()

    assert httpx.get(gateway.url + "/health", timeout=30).status_code == 200
    gateway.reset_accounts()
    upstream.answer = fine
    answer = chat(gateway)
    assert answer.choices[0].message.content == "ok"


# -- 1. answers beyond max_upstream_body ------------------------------------------------------------


def test_a_gzip_bomb_is_a_502_and_costs_no_more_than_the_cap(
    start_gateway: Any, upstream: HostileUpstream
) -> None:
    bomb = gzip_bomb()
    assert sum(map(len, bomb)) < MiB

    async def answer(writer: asyncio.StreamWriter, head: bytes, hold: Callable[[], Awaitable[None]]) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        writer.write(chunk(bomb[0]))
        await writer.drain()
        await hold()
        await send_chunked(writer, iter(bomb[1:]))

    upstream.answer = answer
    gateway: GatewayProcess = start_gateway(settings_for(upstream))
    error = expect_502(run_while_held(upstream, gateway, lambda: chat(gateway)))
    assert "max_upstream_body" in str(error.body)
    # Inflated whole, the answer alone would take 512 MiB (and its copies more).
    assert peak_memory_mib(gateway) < 400
    still_serves(gateway, upstream)


def test_a_plain_answer_beyond_the_cap_is_a_502(start_gateway: Any, upstream: HostileUpstream) -> None:
    async def answer(writer: asyncio.StreamWriter, head: bytes, hold: Callable[[], Awaitable[None]]) -> None:
        size = 4 * MiB + 1000
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % size
        )
        pieces = huge_completion(4 * MiB)
        writer.write(next(pieces))
        await writer.drain()
        await hold()
        for piece in pieces:
            writer.write(piece)
            await writer.drain()

    upstream.answer = answer
    gateway: GatewayProcess = start_gateway(settings_for(upstream), {"IFLOW2API_MAX_UPSTREAM_BODY": str(MiB)})
    error = expect_502(run_while_held(upstream, gateway, lambda: chat(gateway)))
    assert "1048576 bytes" in str(error.body)
    still_serves(gateway, upstream)


def test_one_sse_line_beyond_the_cap_is_a_502(start_gateway: Any, upstream: HostileUpstream) -> None:
    async def answer(writer: asyncio.StreamWriter, head: bytes, hold: Callable[[], Awaitable[None]]) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(chunk(b'data: {"choices": [{"index": 0, "delta": {"content": "'))
        await writer.drain()
        await hold()
        # 20 MiB without a line end, in small pieces: a decoder that copies its buffer for each
        # piece does quadratic work here (gigabytes of copying).
        await send_chunked(writer, (b"y" * 16384 for _ in range(20 * 64)))

    upstream.answer = answer
    gateway: GatewayProcess = start_gateway(settings_for(upstream))
    error = expect_502(run_while_held(upstream, gateway, lambda: chat(gateway, stream=True)))
    assert "line longer than 16777216 bytes" in str(error.body)
    still_serves(gateway, upstream)


def stream_past_first_event(gateway: GatewayProcess, upstream: HostileUpstream) -> str:
    """A chat stream's whole text; the upstream is let go on once the client has its first event
    ("Hel"), so what it does next happens to a stream that has started."""
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json={"model": "glm-4.7", "messages": MESSAGES, "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        pieces = response.iter_bytes()
        text = next(pieces).decode()
        assert "Hel" in text
        upstream.go_on()
        return text + b"".join(pieces).decode()


def test_one_sse_line_beyond_the_cap_after_content_ends_the_stream_with_an_error_event(
    start_gateway: Any, upstream: HostileUpstream
) -> None:
    async def answer(writer: asyncio.StreamWriter, head: bytes, hold: Callable[[], Awaitable[None]]) -> None:
        first = {"id": "c4", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(chunk(b"data: %s\n\n" % json.dumps(first).encode()))
        await writer.drain()
        await hold()  # until the client has the first event: the stream has started
        await send_chunked(writer, (b"y" * 16384 for _ in range(20 * 64)))

    upstream.answer = answer
    gateway: GatewayProcess = start_gateway(settings_for(upstream))
    text = stream_past_first_event(gateway, upstream)
    assert "upstream_response_too_large" in text
    assert text.endswith("data: [DONE]\n\n")
    still_serves(gateway, upstream)


# -- 2. an upstream that quotes the key back ------------------------------------------------------


SK_KEY = "sk-5e0c2b8f41a9d7e3c6b0a2f4e8d1c3b7"
ODD_KEY = "AKIAzq9mV7xR2pL4tN8wK3jH6Qp"  # an account key no secret pattern recognises


def quoting_answer(as_json: bool) -> Answer:
    """A 401 that quotes the key of the request's ``Authorization`` header, as OpenAI's once did."""

    async def answer(writer: asyncio.StreamWriter, head: bytes, hold: Callable[[], Awaitable[None]]) -> None:
        authorization = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"authorization:")
        )
        key = authorization.removeprefix("Bearer ")
        if as_json:
            said = f"Incorrect API key provided: {authorization}. Find your API key at the console."
            body = json.dumps({"error": {"message": said, "type": "invalid_request_error"}}).encode()
            kind = b"application/json"
        else:
            body = f"Incorrect API key provided: {key} (it is not valid).".encode()
            kind = b"text/plain"
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (kind, len(body), body)
        )
        await writer.drain()

    return answer


@pytest.mark.parametrize(
    ("key", "as_json"), [(SK_KEY, True), (ODD_KEY, False)], ids=["sk-key", "other-shape"]
)
def test_a_key_quoted_by_the_upstream_is_shown_nowhere(
    start_gateway: Any, upstream: HostileUpstream, key: str, as_json: bool
) -> None:
    upstream.answer = quoting_answer(as_json)
    gateway: GatewayProcess = start_gateway(settings_for(upstream, key))
    leaked = [key, key[6:]]

    with pytest.raises(openai.AuthenticationError) as first:
        chat(gateway)
    assert upstream.heads, "the upstream was never asked"
    shown = json.dumps(first.value.body)
    assert "Incorrect API key provided" in shown  # the upstream's words, without the key
    assert not any(secret in shown for secret in leaked)

    # The account is quarantined for it; its reason is stored and shown on the page.
    listing = httpx.get(gateway.url + "/api/accounts", timeout=10).json()
    reasons = [account["reason"] for account in listing["accounts"] if account["state"] == "quarantined"]
    assert reasons and "Incorrect API key provided" in reasons[0]
    assert not any(secret in json.dumps(listing) for secret in leaked)

    # A later client is told why no account is left, with the stored reason, without the key.
    later = httpx.post(
        gateway.url + "/v1/chat/completions", json={"model": "glm-4.7", "messages": MESSAGES}, timeout=30
    )
    assert later.status_code == 401  # every account out of service: its reason (invalid_api_key)
    assert "Incorrect API key provided" in later.text
    assert not any(secret in later.text for secret in leaked)
    anthropic_later = httpx.post(
        gateway.url + "/v1/messages",
        json={"model": "glm-4.7", "max_tokens": 10, "messages": MESSAGES},
        timeout=30,
    )
    assert anthropic_later.json()["type"] == "error"  # in the Anthropic dialect's shape and status
    assert not any(secret in anthropic_later.text for secret in leaked)

    log = gateway.log_matching("Incorrect API key provided")
    assert not any(secret in log for secret in leaked)


def test_a_key_quoted_in_an_error_inside_a_started_stream_is_not_passed_on(
    start_gateway: Any, upstream: HostileUpstream
) -> None:
    async def answer(writer: asyncio.StreamWriter, head: bytes, hold: Callable[[], Awaitable[None]]) -> None:
        first = {"id": "c3", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}
        failure = {"status": "434", "msg": f"Incorrect API key provided: {ODD_KEY}"}
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        writer.write(chunk(b"data: %s\n\n" % json.dumps(first).encode()))
        await writer.drain()
        await hold()  # until the client has the first event: the stream has started
        await send_chunked(writer, iter([b"data: %s\n\n" % json.dumps(failure).encode()]))

    upstream.answer = answer
    gateway: GatewayProcess = start_gateway(settings_for(upstream, ODD_KEY))
    text = stream_past_first_event(gateway, upstream)
    assert "Incorrect API key provided" in text  # the error event, after content
    assert ODD_KEY not in text and ODD_KEY[6:] not in text
    assert ODD_KEY not in gateway.log_matching(r"POST /v1/chat/completions 200 ")

"""Clients that never finish sending a request: a body short of its Content-Length, a chunked body
that never ends, headers that never end, a connection that sends nothing. None may hold a
connection beyond ``request_read_timeout``, and the gateway serves others meanwhile.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess, iflow_settings
from tests.fake_iflow import FakeIflow

READ_TIMEOUT = "1"
#: Far beyond the gateway's deadline: reaching it means the connection was held.
CLIENT_TIMEOUT = 15


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeIflow) -> Iterator[GatewayProcess]:
    from tests.conftest import write_settings

    home = tmp_path_factory.mktemp("slow-home")
    write_settings(home, iflow_settings(fake_server))
    process = GatewayProcess(
        home, tmp_path_factory.mktemp("slow-data"), {"IFLOW2API_REQUEST_READ_TIMEOUT": READ_TIMEOUT}
    )
    process.wait_for_health()
    yield process
    process.stop()
    # Slow and oversized requests are refused as a matter of course, never as a failure.
    assert "Traceback" not in process.log(), process.log()


def connect(gateway: GatewayProcess) -> socket.socket:
    address = urllib.parse.urlsplit(gateway.url)
    sock = socket.create_connection((address.hostname or "127.0.0.1", address.port or 80))
    sock.settimeout(CLIENT_TIMEOUT)
    return sock


def until_closed(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection (a timeout fails the test)."""
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received


def head(path: str, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    status, _, headers, body = parse_head(raw)
    return status, headers, json.loads(body)


def content_length(raw: bytes) -> int:
    _, _, headers, _ = parse_head(raw)
    return int(headers.get("content-length", "0"))


def parse_head(raw: bytes) -> tuple[int, str, dict[str, str], bytes]:
    header_block, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), status_line, headers, body


def short_body(path: str) -> bytes:
    return head(path, "Content-Length: 100") + b'{"mo'


def endless_chunks(path: str) -> bytes:
    return head(path, "Transfer-Encoding: chunked") + b'4\r\n{"mo\r\n'


OPENAI_SHAPE: Callable[[Any], bool] = lambda body: body["error"]["code"] == "request_timeout"  # noqa: E731
ANTHROPIC_SHAPE: Callable[[Any], bool] = lambda body: (  # noqa: E731
    body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
)


@pytest.mark.parametrize(
    ("request_bytes", "shape"),
    [
        pytest.param(short_body("/v1/chat/completions"), OPENAI_SHAPE, id="short-body-chat"),
        pytest.param(short_body("/v1/messages"), ANTHROPIC_SHAPE, id="short-body-messages"),
        pytest.param(short_body("/v1/messages/count_tokens"), ANTHROPIC_SHAPE, id="short-body-count"),
        pytest.param(endless_chunks("/v1/responses"), OPENAI_SHAPE, id="endless-chunks-responses"),
        pytest.param(endless_chunks("/v1/chat/completions"), OPENAI_SHAPE, id="endless-chunks-chat"),
    ],
)
def test_a_stalled_body_gets_a_408_in_the_dialect(
    impatient: GatewayProcess, request_bytes: bytes, shape: Callable[[Any], bool]
) -> None:
    sock = connect(impatient)
    sock.sendall(request_bytes)
    status, headers, body = parse_response(until_closed(sock))
    assert status == 408
    assert headers["connection"] == "close"
    assert shape(body), body


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n", id="partial-headers"),
        pytest.param(b"GET /hea", id="partial-request-line"),
    ],
)
def test_headers_that_never_end_are_cut_off(impatient: GatewayProcess, request_bytes: bytes) -> None:
    sock = connect(impatient)
    sock.sendall(request_bytes)
    received = until_closed(sock)
    assert received == b"" or received.startswith(b"HTTP/1.1 408"), received


def test_a_second_request_on_a_kept_alive_connection_has_the_same_deadline(impatient: GatewayProcess) -> None:
    sock = connect(impatient)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = b""
    while b"\r\n\r\n" not in first or len(first.partition(b"\r\n\r\n")[2]) < content_length(first):
        first += sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127")  # and never the rest
    received = until_closed(sock)
    assert received == b"" or received.startswith(b"HTTP/1.1 408"), received


def test_the_gateway_serves_others_while_slow_clients_hang(impatient: GatewayProcess) -> None:
    stalled = []
    for index in range(60):
        sock = connect(impatient)
        sock.sendall(
            short_body("/v1/chat/completions") if index % 2 else b"POST /v1/chat/completions HTTP/1.1\r\n"
        )
        stalled.append(sock)
    try:
        assert httpx.get(impatient.url + "/health", timeout=CLIENT_TIMEOUT).status_code == 200
        # A POST with a body, answered without the upstream (whose script other tests change).
        count = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}
        url = impatient.url + "/v1/messages/count_tokens"
        assert httpx.post(url, json=count, timeout=CLIENT_TIMEOUT).status_code == 200
        for sock in stalled:
            until_closed(sock)  # each is let go, none is held
    finally:
        for sock in stalled:
            sock.close()


def test_a_slow_but_steady_body_is_read(impatient: GatewayProcess) -> None:
    """The body's deadline is for silence: a body sent in pieces, each within it, is served."""
    import time

    body = json.dumps({"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}).encode()
    sock = connect(impatient)
    sock.sendall(head("/v1/messages/count_tokens", f"Content-Length: {len(body)}", "Connection: close"))
    for start in range(0, len(body), len(body) // 3 + 1):
        time.sleep(0.4)  # 1.2 s in all, more than the deadline, never 1 s silent
        sock.sendall(body[start : start + len(body) // 3 + 1])
    status, _, answer = parse_response(until_closed(sock))
    assert status == 200, answer


def send_all_you_can(sock: socket.socket, data: bytes) -> bytes:
    """Send ``data`` and read the answer; a gateway that hangs up midway may reset the connection."""
    try:
        sock.sendall(data)
        return until_closed(sock)
    except (ConnectionResetError, BrokenPipeError):
        return b""


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n", id="one-big"
        ),
        pytest.param(b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: a\r\n" * 100_000 + b"\r\n", id="many"),
    ],
)
def test_headers_beyond_the_limit_are_refused(impatient: GatewayProcess, request_bytes: bytes) -> None:
    received = send_all_you_can(connect(impatient), request_bytes)
    assert received == b"" or received.startswith(b"HTTP/1.1 431"), received[:200]
    assert httpx.get(impatient.url + "/health", timeout=CLIENT_TIMEOUT).status_code == 200


def test_headers_within_the_limit_are_served(impatient: GatewayProcess) -> None:
    headers = {"x-big": "a" * 40_000, "cookie": "c=" + "b" * 10_000}
    assert httpx.get(impatient.url + "/health", headers=headers, timeout=CLIENT_TIMEOUT).status_code == 200


def test_line_breaks_between_requests_do_not_hold_a_connection(impatient: GatewayProcess) -> None:
    """HTTP lets blank lines come before a request; they start no request, and no deadline but ours."""
    import time

    sock = connect(impatient)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = b""
    while b"\r\n\r\n" not in first or len(first.partition(b"\r\n\r\n")[2]) < content_length(first):
        first += sock.recv(65536)
    sock.settimeout(0.3)
    closed = False
    give_up = time.monotonic() + 10  # uvicorn's own keep-alive deadline (5 s) restarts on every byte
    with sock:
        while not closed and time.monotonic() < give_up:
            try:
                sock.sendall(b"\r\n")
                closed = sock.recv(65536) == b""
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                closed = True
    assert closed

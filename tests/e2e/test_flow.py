"""Concurrency, queueing, cancellation, timeouts and credentials that change on disk."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import DEFAULT_KEY, FakeIflow, Hang, Stream

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def post(gateway: GatewayProcess, body: dict[str, Any] = CHAT) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=30)


def test_requests_beyond_one_wait_instead_of_failing(gateway: GatewayProcess, fake: FakeIflow) -> None:
    """iFlow answers a second concurrent request with 449; the gateway queues it instead."""
    fake.enqueue(*(Stream.of_text(["slow"], first_delay=0.3) for _ in range(4)))
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: post(gateway, {**CHAT, "stream": True}), range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    assert all(r.rejected is None for r in fake.received)
    assert len(fake.received) == 4


def test_full_queue_is_a_429_with_retry_after(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_QUEUE_SIZE": "1"})
    fake.enqueue(Hang(1.0), Hang(1.0), Hang(1.0))
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(post, gateway) for _ in range(3)]
        time.sleep(0.1)
        statuses = sorted(f.result().status_code for f in futures)
        limited = next(f.result() for f in futures if f.result().status_code == 429)
    assert statuses == [200, 200, 429]
    assert limited.json()["error"]["code"] == "queue_full"
    assert int(limited.headers["retry-after"]) >= 1


def test_client_disconnect_cancels_the_upstream_stream(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Stream.of_text([f"part{i}" for i in range(50)], delay=0.2))
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # one chunk is enough; leaving closes the connection
    began = time.monotonic()
    assert fake.wait_for_disconnects(1, timeout=5)
    assert time.monotonic() - began < 2
    # The account's slot is free again: the next request is served at once.
    assert post(gateway).status_code == 200


def test_client_disconnect_while_waiting_cancels_non_stream(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Hang(30))
    raw = json.dumps(CHAT).encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(raw)}\r\n\r\n".encode()
            + raw
        )
        deadline = time.monotonic() + 5
        while fake.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.in_flight == 1
    assert fake.wait_for_disconnects(1, timeout=5)
    assert post(gateway).status_code == 200


def test_first_byte_timeout_is_a_504(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_FIRST_BYTE_TIMEOUT": "0.5"})
    fake.enqueue(Hang(5))
    response = post(gateway)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


def test_unreachable_upstream_is_a_502(start_gateway: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = start_gateway(
        {"selectedAuthType": "iflow", "apiKey": DEFAULT_KEY, "baseUrl": f"http://127.0.0.1:{port}/v1"}
    )
    response = post(gateway)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"


def test_credentials_are_reread_when_the_file_changes(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(None)
    assert post(gateway).status_code == 401
    write_settings(gateway.iflow_home, iflow_settings(fake))
    assert post(gateway).status_code == 200
    assert fake.received[-1].headers["authorization"] == f"Bearer {DEFAULT_KEY}"


def test_oauth_creds_key_is_used_for_oauth_login(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(
        {"selectedAuthType": "oauth-iflow", "baseUrl": fake.base_url, "apiKey": "sk-stale"}
    )
    creds = {
        "access_token": "at",
        "refresh_token": "rt",
        "expiry_date": int(time.time() * 1000) + 86_400_000,
        "apiKey": DEFAULT_KEY,
        "email": "someone@example.com",
    }
    (gateway.iflow_home / "oauth_creds.json").write_text(json.dumps(creds))
    assert post(gateway).status_code == 200
    assert fake.received[-1].headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert DEFAULT_KEY not in gateway.log()

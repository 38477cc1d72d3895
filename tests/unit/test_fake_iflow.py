"""The fake iFlow server itself, driven with httpx over loopback: its checks, replies and bookkeeping."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.fake_iflow import (
    DEFAULT_KEY,
    BusinessError,
    Completion,
    FakeIflow,
    Hang,
    HttpError,
    JsonOnStream,
    Stream,
    signature,
)

OTHER_KEY = "sk-ffffffffffffffffffffffffffffffff"
MESSAGES = [{"role": "user", "content": "hi"}]
BLOCKED_434 = {"status": "434", "msg": "Invalid apiKey", "body": None}
REJECTED_406 = {"error": {"message": "status 406", "type": "invalid_request_error"}}


def cli_headers(key: str = DEFAULT_KEY, /, **overrides: str | None) -> dict[str, str]:
    """Headers exactly as the iFlow CLI signs them; an override of ``None`` drops that header."""
    session_id = f"session-{uuid.uuid4()}"
    timestamp = str(int(time.time() * 1000))
    headers: dict[str, str | None] = {
        "authorization": f"Bearer {key}",
        "user-agent": "iFlow-Cli",
        "session-id": session_id,
        "conversation-id": str(uuid.uuid4()),
        "x-iflow-timestamp": timestamp,
        "x-iflow-signature": signature(key, session_id, timestamp),
    }
    headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
    return {name: value for name, value in headers.items() if value is not None}


def chat_body(model: str = "qwen3-coder-plus", /, *, stream: bool = False, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_new_tokens": 1000}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body | fields


def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
def server() -> Iterator[FakeIflow]:
    with FakeIflow(api_keys=(DEFAULT_KEY, OTHER_KEY), models=["my-own-model"]) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeIflow) -> FakeIflow:
    server.reset()
    return server


def post(
    http: httpx.Client, fake: FakeIflow, body: Any, *, key: str = DEFAULT_KEY, **kwargs: Any
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = kwargs.pop("headers", None) or cli_headers(key)
    return http.post(fake.base_url + "/chat/completions", content=content, headers=headers, **kwargs)


def sse_data(text: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("data:")]


def chunks_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(data) for data in sse_data(text) if data != "[DONE]"]


def joined(chunks: list[dict[str, Any]], field: str) -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c["choices"])


# --- signature and headers ----------------------------------------------------------------------


def test_signature_reproduces_the_protocol_test_vector() -> None:
    session = "session-00000000-0000-4000-8000-000000000000"
    expected = "1d5a5e8d4f42711197dfd53c8c3440921c8edb2bffaffa2535f5809ffff513c1"
    assert signature(DEFAULT_KEY, session, 1700000000000) == expected
    assert signature(DEFAULT_KEY, session, "1700000000000") == expected


def test_accepted_request_is_recorded_and_answered(fake: FakeIflow, http: httpx.Client) -> None:
    headers = cli_headers(conversation_id="")  # §2: the CLI may send an empty conversation id
    response = post(http, fake, chat_body(), headers={**headers, "X-Extra": "Yes"})
    assert response.status_code == 200, response.text
    assert len(response.headers["eagleeye-traceid"]) == 30
    assert response.json()["choices"][0]["message"]["content"] == "Hello from fake iFlow"
    assert response.json()["usage"]["total_tokens"] == 17
    [received] = fake.received
    assert received.rejected is None
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.headers["x-extra"] == "Yes"
    assert received.body == chat_body()
    assert json.loads(received.raw_body) == chat_body()


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"user_agent": "python-httpx"}, "user-agent", id="user-agent"),
        pytest.param({"session_id": str(uuid.uuid4())}, "session-id", id="session-without-prefix"),
        pytest.param({"session_id": None}, "session-id", id="no-session"),
        pytest.param({"conversation_id": "conv-1"}, "conversation-id", id="conversation-not-uuid"),
        pytest.param({"conversation_id": None}, "conversation-id", id="no-conversation"),
        pytest.param({"x_iflow_timestamp": str(int(time.time() * 1000) - 400_000)}, "5 minutes", id="stale"),
        pytest.param({"x_iflow_timestamp": "soon"}, "timestamp", id="timestamp-not-ms"),
        pytest.param({"x_iflow_signature": "0" * 64}, "signature", id="bad-signature"),
        pytest.param({"x_iflow_signature": None}, "signature", id="no-signature"),
    ],
)
def test_cli_header_faults_are_406(
    fake: FakeIflow, http: httpx.Client, overrides: dict[str, str | None], reason: str
) -> None:
    response = post(http, fake, chat_body(), headers=cli_headers(**overrides))
    assert response.status_code == 406
    assert response.json() == REJECTED_406
    assert reason in (fake.received[-1].rejected or "")


def test_signature_with_uppercase_hex_is_rejected(fake: FakeIflow, http: httpx.Client) -> None:
    headers = cli_headers()
    headers["x-iflow-signature"] = headers["x-iflow-signature"].upper()
    assert post(http, fake, chat_body(), headers=headers).status_code == 406


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {'sk-' + '1' * 32}", f"Basic {DEFAULT_KEY}", f"bearer {DEFAULT_KEY}", "Bearer"],
)
def test_unknown_key_is_a_434_business_error(
    fake: FakeIflow, http: httpx.Client, authorization: str | None
) -> None:
    response = post(http, fake, chat_body(), headers=cli_headers(authorization=authorization))
    assert response.status_code == 200
    assert response.json() == BLOCKED_434
    assert fake.received[-1].rejected is not None


def test_unsigned_requests_pass_when_the_signature_is_not_required(http: httpx.Client) -> None:
    with FakeIflow(require_signature=False) as lenient:
        bare = {"authorization": f"Bearer {DEFAULT_KEY}"}
        assert post(http, lenient, chat_body(), headers=bare).status_code == 200
        assert lenient.received[-1].rejected is None
        wrong_key = {"authorization": f"Bearer {OTHER_KEY}"}
        assert post(http, lenient, chat_body(), headers=wrong_key).json() == BLOCKED_434


# --- body rules ---------------------------------------------------------------------------------

KIMI: dict[str, Any] = {"model": "kimi-k2.5", "max_tokens": 1000, "top_p": 0.95, "n": 1}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

BODY_FAULTS = [
    pytest.param(b"{not json", "not a JSON object", id="not-json"),
    pytest.param(b"[1, 2]", "not a JSON object", id="not-an-object"),
    pytest.param({"messages": MESSAGES, "max_new_tokens": 1}, "model", id="no-model"),
    pytest.param(chat_body(messages=[]), "messages", id="no-messages"),
    pytest.param({"model": "glm-4.6-exp", "messages": MESSAGES}, "max_new_tokens", id="no-max-new-tokens"),
    pytest.param(chat_body(max_new_tokens=0), "max_new_tokens", id="max-new-tokens-zero"),
    pytest.param(chat_body(max_new_tokens="100"), "max_new_tokens", id="max-new-tokens-string"),
    pytest.param(chat_body(max_new_tokens=True), "max_new_tokens", id="max-new-tokens-bool"),
    pytest.param(chat_body(max_tokens=1000), "max_tokens must not", id="max-tokens-for-qwen"),
    pytest.param(chat_body("deepseek-v3.2-chat"), "needs max_tokens", id="deepseek-without-max-tokens"),
    pytest.param(
        chat_body("deepseek-v3.2-chat", max_tokens=5), "needs max_tokens", id="deepseek-max-tokens-differ"
    ),
    pytest.param(chat_body("deepseek-v3.2-reasoner", max_tokens=1000), "max_tokens must not", id="reasoner"),
    pytest.param(chat_body(**{**KIMI, "max_tokens": None}), "needs max_tokens", id="kimi-max-tokens-null"),
    pytest.param(chat_body(max_completion_tokens=10), "max_completion_tokens", id="max-completion-tokens"),
    pytest.param(chat_body(stream=True, stream_options=None), "stream_options", id="stream-without-options"),
    pytest.param(
        chat_body(stream=True, stream_options={"include_usage": False}), "stream_options", id="no-usage"
    ),
    pytest.param(chat_body() | {"stream": False}, "stream must be true or absent", id="stream-false"),
    pytest.param(chat_body(stream_options={"include_usage": True}), "without stream", id="options-alone"),
    pytest.param(chat_body(tools=[]), "tools", id="empty-tools"),
    pytest.param(chat_body(reasoning_effort="high"), "reasoning_effort", id="reasoning-effort"),
    pytest.param(chat_body("glm-4.7", temperature=0.6, top_p=0.95), "temperature", id="glm-4.7-temperature"),
    pytest.param(chat_body("glm-5", temperature=1), "top_p", id="glm-5-top-p"),
    pytest.param(chat_body(**KIMI, temperature=0.6), "without temperature", id="kimi-temperature"),
    pytest.param(chat_body(**{**KIMI, "n": 2}), "n = 1", id="kimi-n"),
    pytest.param(chat_body("iFlow-ROME-30BA3B", temperature=0.7, top_p=0.8), "top_k", id="rome-top-k"),
    pytest.param(chat_body("glm-4.6"), "glm-4.6-exp", id="glm-4.6-not-renamed"),
    pytest.param(
        chat_body("deepseek-v3.2-chat", max_tokens=1000, thinking_mode=True), "reasoner", id="ds-thinking"
    ),
    pytest.param(
        chat_body(**KIMI, thinking={"type": "enabled"}, tools=TOOLS, tool_choice="required"),
        "tool_choice",
        id="kimi-tool-choice",
    ),
]


@pytest.mark.parametrize(("body", "reason"), BODY_FAULTS)
def test_body_faults_are_400(fake: FakeIflow, http: httpx.Client, body: Any, reason: str) -> None:
    response = post(http, fake, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("fake iFlow: ") and reason in error["message"]
    assert reason in (fake.received[-1].rejected or "")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(chat_body("glm-4.7", temperature=1, top_p=0.95), id="glm-4.7"),
        pytest.param(chat_body("glm-5", temperature=1.0, top_p=0.95, enable_thinking=True), id="glm-5"),
        pytest.param(
            chat_body(**KIMI, thinking={"type": "enabled"}, tools=TOOLS, tool_choice="auto"), id="kimi"
        ),
        pytest.param(chat_body("deepseek-v3.2-chat", max_tokens=1000), id="deepseek-chat"),
        pytest.param(chat_body("deepseek-v3.2-reasoner", thinking_mode=True), id="deepseek-reasoner"),
        pytest.param(chat_body("iFlow-ROME-30BA3B", temperature=0.7, top_p=0.8, top_k=20), id="rome"),
        pytest.param(chat_body("QWen3-4B", tools=TOOLS, stream=True), id="stream-with-tools"),
        pytest.param(chat_body("my-own-model"), id="extra-model"),
    ],
)
def test_bodies_the_cli_would_send_are_accepted(fake: FakeIflow, http: httpx.Client, body: Any) -> None:
    response = post(http, fake, body)
    assert response.status_code == 200, response.text
    assert fake.received[-1].rejected is None


def test_unknown_model_is_a_435_and_keeps_the_queue(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Completion(content="kept"))
    response = post(http, fake, chat_body("gpt-4o"))
    assert response.json() == {"status": "435", "msg": "Model not support", "body": None}
    assert post(http, fake, chat_body(max_tokens=5)).status_code == 400
    assert post(http, fake, chat_body()).json()["choices"][0]["message"]["content"] == "kept"
    assert [r.rejected is None for r in fake.received] == [False, False, True]


def test_model_ids_are_case_sensitive(fake: FakeIflow, http: httpx.Client) -> None:
    assert post(http, fake, chat_body("Glm-4.7", temperature=1, top_p=0.95)).json()["status"] == "435"


# --- single flight, in-flight count, disconnects -----------------------------------------------


def test_a_second_request_with_the_same_key_is_449(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Hang(0.4), Completion(content="other key"))
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, http, fake, chat_body())
        wait_until(lambda: fake.in_flight == 1)
        busy = post(http, fake, chat_body())
        other = post(http, fake, chat_body(), key=OTHER_KEY)
        assert first.result().status_code == 200
    assert busy.json() == {"status": "449", "msg": "You exceeded your current rate limit", "body": None}
    assert other.json()["choices"][0]["message"]["content"] == "other key"
    assert "still being served" in (fake.received[1].rejected or "")
    assert fake.in_flight == 0
    assert post(http, fake, chat_body()).status_code == 200


def test_back_to_back_streams_never_meet_a_stale_449(fake: FakeIflow, http: httpx.Client) -> None:
    # Two clients in turn, each keeping its connection open, as a gateway's pool does: the next
    # request arrives on another connection while the fake may still be finishing the last one.
    with httpx.Client(timeout=5) as other:
        for client in [http, other] * 10:
            response = post(client, fake, chat_body(stream=True))
            assert response.status_code == 200 and '"status"' not in response.text


def test_single_flight_can_be_switched_off(http: httpx.Client) -> None:
    with FakeIflow(single_flight=False) as concurrent, ThreadPoolExecutor(2) as pool:
        concurrent.enqueue(Hang(0.3), Hang(0.3))
        futures = [pool.submit(post, http, concurrent, chat_body()) for _ in range(2)]
        wait_until(lambda: concurrent.in_flight == 2)
        assert [f.result().status_code for f in futures] == [200, 200]


def test_abandoned_stream_counts_as_a_disconnect(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Stream.of_text([f"part{i}" for i in range(40)], delay=0.05))
    url, content = fake.base_url + "/chat/completions", json.dumps(chat_body(stream=True))
    with http.stream("POST", url, content=content, headers=cli_headers()) as response:
        assert next(response.iter_lines()).startswith("data: ")
    assert fake.wait_for_disconnects(1, timeout=2)
    wait_until(lambda: fake.in_flight == 0)


def test_abandoned_hang_counts_as_a_disconnect(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Hang(5))
    with pytest.raises(httpx.ReadTimeout):
        post(http, fake, chat_body(), timeout=0.2)
    began = time.monotonic()
    assert fake.wait_for_disconnects(1, timeout=2)
    assert time.monotonic() - began < 1
    wait_until(lambda: fake.in_flight == 0)


def test_finished_and_cut_replies_are_not_disconnects(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Completion(), Stream.of_text(["a", "b"]), Stream.of_text(["a", "b"], cut_after=1))
    post(http, fake, chat_body())
    post(http, fake, chat_body(stream=True))
    with pytest.raises(httpx.RemoteProtocolError):
        post(http, fake, chat_body(stream=True))
    assert not fake.wait_for_disconnects(1, timeout=0.3)


def test_reset_forgets_queue_received_and_disconnects(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Hang(5), Completion(content="queued"))
    with pytest.raises(httpx.ReadTimeout):
        post(http, fake, chat_body(), timeout=0.2)
    assert fake.wait_for_disconnects(1, timeout=2)
    fake.reset()
    assert fake.received == []
    assert not fake.wait_for_disconnects(1, timeout=0)
    assert post(http, fake, chat_body()).json()["choices"][0]["message"]["content"] == "Hello from fake iFlow"


# --- reply types --------------------------------------------------------------------------------

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def test_completion_as_json(fake: FakeIflow, http: httpx.Client) -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    fake.enqueue(
        Completion(content="", reasoning="hmm", tool_calls=[CALL], finish_reason="tool_calls", usage=usage)
    )
    reply = post(http, fake, chat_body("glm-4.6-exp")).json()
    assert reply["object"] == "chat.completion" and reply["model"] == "glm-4.6-exp"
    choice = reply["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "hmm",
        "tool_calls": [CALL],
    }
    assert choice["finish_reason"] == "tool_calls"
    assert reply["usage"] == usage


def test_completion_without_usage_or_with_a_model(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Completion(usage=None, model="renamed"), Completion(usage=None))
    reply = post(http, fake, chat_body()).json()
    assert "usage" not in reply and reply["model"] == "renamed"
    assert all("usage" not in chunk for chunk in chunks_of(post(http, fake, chat_body(stream=True)).text))


def test_completion_as_stream(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(
        Completion(
            content="The answer is 4", reasoning="2+2 is 4", tool_calls=[CALL], finish_reason="tool_calls"
        )
    )
    response = post(http, fake, chat_body(stream=True))
    assert response.headers["content-type"].startswith("text/event-stream")
    assert sse_data(response.text)[-1] == "[DONE]"
    chunks = chunks_of(response.text)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    contents = [
        c["choices"][0]["delta"].get("content") for c in chunks if c["choices"][0]["delta"].get("content")
    ]
    assert len(contents) > 1 and "".join(contents) == "The answer is 4"
    assert joined(chunks, "reasoning_content") == "2+2 is 4"
    first_content = next(i for i, c in enumerate(chunks) if c["choices"][0]["delta"].get("content"))
    assert all(
        "content" not in c["choices"][0]["delta"] for c in chunks[first_content + 1 :] if "tool_calls" in c
    )
    assert all("reasoning_content" not in c["choices"][0]["delta"] for c in chunks[first_content:])
    fragments = [f for c in chunks for f in c["choices"][0]["delta"].get("tool_calls", [])]
    assert fragments[0]["id"] == "call_1" and fragments[0]["function"]["name"] == "get_weather"
    assert all("id" not in f and "name" not in f["function"] for f in fragments[1:])
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 17
    assert all("usage" not in chunk for chunk in chunks[:-1])


def test_business_error_is_json_for_json_and_stream(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(
        BusinessError(status="439", msg="token expired"),
        BusinessError(status=449, msg="busy"),
        BusinessError(error_code=8211, msg="rate limited"),
        BusinessError(msg="invalid apiKey"),
    )
    replies = [post(http, fake, chat_body(stream=stream)) for stream in (False, True, True, False)]
    assert all(r.status_code == 200 and r.headers["content-type"] == "application/json" for r in replies)
    assert [r.json() for r in replies] == [
        {"status": "439", "msg": "token expired", "body": None},
        {"status": 449, "msg": "busy", "body": None},
        {"error_code": 8211, "msg": "rate limited"},
        {"msg": "invalid apiKey", "body": None},
    ]


def test_http_errors(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(
        HttpError(406),
        HttpError(500),
        HttpError(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "7"}),
        HttpError(514, b"model error"),
    )
    first, second, third, fourth = (post(http, fake, chat_body(stream=True)) for _ in range(4))
    assert (first.status_code, first.json()) == (406, REJECTED_406)
    assert second.json() == {"error": {"message": "status 500", "type": "server_error"}}
    assert (third.status_code, third.json(), third.headers["retry-after"]) == (
        429,
        {"error": {"message": "slow down"}},
        "7",
    )
    assert (fourth.status_code, fourth.text) == (514, "model error")
    assert all("eagleeye-traceid" in r.headers for r in (first, second, third, fourth))


def test_json_on_stream(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(JsonOnStream(Completion(content="whole answer")))
    response = post(http, fake, chat_body(stream=True))
    assert response.headers["content-type"] == "application/json"
    assert response.json()["choices"][0]["message"]["content"] == "whole answer"


def test_hang_holds_back_the_headers_then_answers(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Hang(0.3), Hang(0.1, then=BusinessError(status="429", msg="later")))
    began = time.monotonic()
    assert post(http, fake, chat_body()).json()["choices"][0]["message"]["content"] == "Hello from fake iFlow"
    assert time.monotonic() - began >= 0.3
    assert post(http, fake, chat_body()).json()["status"] == "429"


def test_stream_paces_its_events(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Stream.of_text(["a", "b", "c"], first_delay=0.2, delay=0.1))
    began = time.monotonic()
    url, content = fake.base_url + "/chat/completions", json.dumps(chat_body(stream=True))
    with http.stream("POST", url, content=content, headers=cli_headers()) as response:
        headers_at = time.monotonic() - began
        arrivals = [time.monotonic() - began for line in response.iter_lines() if line.startswith("data:")]
    assert headers_at < 0.15  # first_delay comes after the headers, unlike Hang
    assert arrivals[0] >= 0.2
    assert arrivals[2] - arrivals[0] >= 0.18


def test_stream_framing_options(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(
        Stream.of_text(["x", "y"], data_space=False),
        Stream.of_text(["x"], done=False, usage={"total_tokens": 3}, reasoning=["r"]),
        Stream([": keep-alive", {"n": 1}, b'data: {"sp', b'lit": 2}\n\n'], done=False),
    )
    no_space = post(http, fake, chat_body(stream=True)).text
    assert "data: " not in no_space and no_space.endswith("data:[DONE]\n\n")
    assert joined(chunks_of(no_space), "content") == "xy"
    no_done = post(http, fake, chat_body(stream=True)).text
    assert "[DONE]" not in no_done
    assert chunks_of(no_done)[0]["choices"][0]["delta"] == {"role": "assistant", "reasoning_content": "r"}
    assert chunks_of(no_done)[-1]["usage"] == {"total_tokens": 3}
    raw = post(http, fake, chat_body(stream=True)).text
    assert raw == ': keep-alive\n\ndata: {"n":1}\n\ndata: {"split": 2}\n\n'


def test_cut_after_drops_the_connection_mid_body(fake: FakeIflow, http: httpx.Client) -> None:
    fake.enqueue(Stream.of_text(["a", "b", "c", "d"], cut_after=2))
    url, content = fake.base_url + "/chat/completions", json.dumps(chat_body(stream=True))
    lines: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", url, content=content, headers=cli_headers()) as response,
    ):
        lines.extend(response.iter_lines())
    assert joined(chunks_of("\n".join(lines)), "content") == "ab"
    assert "[DONE]" not in lines
    assert fake.in_flight == 0


# --- other paths --------------------------------------------------------------------------------


def test_unknown_path_is_a_spring_404(fake: FakeIflow, http: httpx.Client) -> None:
    response = http.post(fake.base_url + "/v1/messages", json={})
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"timestamp", "status", "error", "path"}
    assert (body["status"], body["error"], body["path"]) == (404, "Not Found", "/v1/v1/messages")
    assert body["timestamp"].endswith("+00:00")
    assert http.get(fake.base_url + "/chat/completions").json()["status"] == 405
    assert fake.received == []


def test_models_list_needs_a_key(fake: FakeIflow, http: httpx.Client) -> None:
    listing = http.get(fake.base_url + "/models", headers={"authorization": f"Bearer {DEFAULT_KEY}"})
    ids = [model["id"] for model in listing.json()["data"]]
    assert listing.json()["object"] == "list"
    assert ids[:2] == ["glm-4.7", "iFlow-ROME-30BA3B"] and "my-own-model" in ids and len(ids) == len(set(ids))
    assert http.get(fake.base_url + "/models").status_code == 401


# --- plain OpenAI mode --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain() -> Iterator[FakeIflow]:
    with FakeIflow(mode="openai") as upstream:
        yield upstream


def openai_post(http: httpx.Client, upstream: FakeIflow, body: Any, **headers: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {DEFAULT_KEY}", **headers}
    return http.post(upstream.base_url + "/chat/completions", json=body, headers=headers)


def test_openai_mode_accepts_a_plain_request(plain: FakeIflow, http: httpx.Client) -> None:
    plain.reset()
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "max_tokens": 5,
        "stream": False,
        "reasoning_effort": "low",
    }
    assert (
        openai_post(http, plain, body).json()["choices"][0]["message"]["content"] == "Hello from fake iFlow"
    )
    assert plain.received[-1].rejected is None


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        pytest.param({"max_new_tokens": 5}, {}, "max_new_tokens", id="max-new-tokens"),
        pytest.param({}, {"session-id": "session-x"}, "session-id", id="session-id"),
        pytest.param({}, {"x-iflow-signature": "00"}, "x-iflow-signature", id="signature"),
        pytest.param({}, {"user-agent": "iFlow-Cli"}, "iFlow-Cli", id="user-agent"),
        pytest.param({"stream_options": {"include_usage": True}}, {}, "stream_options", id="options-alone"),
        pytest.param({"messages": []}, {}, "messages", id="no-messages"),
    ],
)
def test_openai_mode_rejects_iflow_dialect(
    plain: FakeIflow, http: httpx.Client, body: dict[str, Any], headers: dict[str, str], reason: str
) -> None:
    response = openai_post(http, plain, {"model": "gpt-4o-mini", "messages": MESSAGES, **body}, **headers)
    assert response.status_code == 400
    assert reason in response.json()["error"]["message"]
    assert reason in (plain.received[-1].rejected or "")


def test_openai_mode_key_and_model_errors(plain: FakeIflow, http: httpx.Client) -> None:
    bad_key = openai_post(
        http, plain, {"model": "gpt-4o-mini", "messages": MESSAGES}, authorization="Bearer sk-x"
    )
    assert (bad_key.status_code, bad_key.json()) == (
        401,
        {
            "error": {
                "message": "Incorrect API key provided",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
    )
    unknown = openai_post(http, plain, {"model": "glm-4.7", "messages": MESSAGES})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "message": "The model `glm-4.7` does not exist",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    assert http.get(plain.base_url + "/models").status_code == 401
    listing = http.get(plain.base_url + "/models", headers={"authorization": f"Bearer {DEFAULT_KEY}"}).json()
    assert [m["id"] for m in listing["data"]] == ["gpt-4o-mini", "deepseek-chat"]


def test_openai_mode_streams_usage_only_when_asked(plain: FakeIflow, http: httpx.Client) -> None:
    body = {"model": "deepseek-chat", "messages": MESSAGES, "stream": True}
    without = chunks_of(openai_post(http, plain, body).text)
    assert all("usage" not in chunk for chunk in without)
    with_usage = chunks_of(openai_post(http, plain, body | {"stream_options": {"include_usage": True}}).text)
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["total_tokens"] == 17
    assert joined(with_usage, "content") == joined(without, "content") == "Hello from fake iFlow"


def test_null_usage_mode_is_openais_shape(http: httpx.Client) -> None:
    body = {"model": "deepseek-chat", "messages": MESSAGES, "stream": True}
    with FakeIflow(mode="openai", null_usage=True) as upstream:
        without = chunks_of(openai_post(http, upstream, body).text)
        asked = chunks_of(
            openai_post(http, upstream, body | {"stream_options": {"include_usage": True}}).text
        )
    assert all("usage" not in chunk for chunk in without)  # not asked: no usage field at all
    *rest, last = asked
    assert last["choices"] == [] and last["usage"]["total_tokens"] == 17
    assert rest and all("usage" in chunk and chunk["usage"] is None for chunk in rest)
    assert joined(asked, "content") == "Hello from fake iFlow"


# --- lifecycle ----------------------------------------------------------------------------------


def test_stop_is_quick_even_with_hanging_and_streaming_replies(http: httpx.Client) -> None:
    fake = FakeIflow(single_flight=False).start()
    fake.enqueue(Hang(30), Stream.of_text(["a", "b"], delay=30))
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(post, http, fake, chat_body(stream=True), timeout=10) for _ in range(2)]
        wait_until(lambda: fake.in_flight == 2)
        began = time.monotonic()
        fake.stop()
        assert time.monotonic() - began < 2
        assert all(isinstance(f.exception(timeout=5), httpx.TransportError) for f in futures)
    assert not fake.wait_for_disconnects(1, timeout=0)
    with pytest.raises(RuntimeError):
        _ = fake.base_url


def test_start_twice_is_an_error_and_stop_twice_is_not() -> None:
    fake = FakeIflow()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    with fake:
        with pytest.raises(RuntimeError):
            fake.start()
        assert fake.base_url.startswith("http://127.0.0.1:") and fake.base_url.endswith("/v1")
    fake.stop()

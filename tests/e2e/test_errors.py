"""Every row of iFlow's error table and every kind of bad input, as the client sees it."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import openai
import pytest

from iflow2api.auth.credentials import RECHECK_SECONDS
from tests.conftest import GatewayProcess
from tests.fake_iflow import BusinessError, Completion, FakeIflow, HttpError, JsonOnStream, Stream

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def post(
    gateway: GatewayProcess,
    body: Any = None,
    *,
    content: bytes | None = None,
    path: str = "/v1/chat/completions",
) -> httpx.Response:
    if content is not None:
        return httpx.post(
            gateway.url + path, content=content, headers={"content-type": "application/json"}, timeout=20
        )
    return httpx.post(gateway.url + path, json=body, timeout=20)


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return dict(error)


BLOCKED = "Access to the current AK has been blocked due to unauthorized requests"

# (reply from the fake, HTTP status the client gets, OpenAI error code)
ERROR_TABLE = [
    pytest.param(BusinessError(status="434", msg=BLOCKED), 403, "account_blocked", id="434-blocked"),
    pytest.param(BusinessError(status="438", msg=BLOCKED), 403, "account_blocked", id="438-blocked"),
    pytest.param(BusinessError(status="435", msg="Model not support"), 404, "model_not_found", id="435"),
    pytest.param(BusinessError(status="439", msg="token expired"), 401, "api_key_expired", id="439"),
    pytest.param(BusinessError(status=439), 401, "api_key_expired", id="439-number"),
    pytest.param(BusinessError(msg="invalid apiKey"), 401, "invalid_api_key", id="invalid-apikey"),
    pytest.param(
        BusinessError(status="449", msg="You exceeded your current rate limit"),
        429,
        "concurrency_limit_exceeded",
        id="449",
    ),
    pytest.param(BusinessError(status="429", msg="rate limited"), 429, "rate_limit_exceeded", id="429-body"),
    pytest.param(BusinessError(error_code=8211, msg="rate limited"), 429, "rate_limit_exceeded", id="8211"),
    pytest.param(
        BusinessError(error_code=511, msg="too long"), 400, "context_length_exceeded", id="511-body"
    ),
    pytest.param(
        BusinessError(error_code=413, msg="too long"), 400, "context_length_exceeded", id="413-body"
    ),
    pytest.param(
        BusinessError(error_code=514, msg="model error"), 502, "upstream_model_error", id="514-body"
    ),
    pytest.param(HttpError(511), 400, "context_length_exceeded", id="http-511"),
    pytest.param(HttpError(514), 502, "upstream_model_error", id="http-514"),
    pytest.param(HttpError(429), 429, "rate_limit_exceeded", id="http-429"),
    pytest.param(HttpError(406), 502, "upstream_rejected_request", id="http-406"),
    pytest.param(HttpError(500), 502, "upstream_error", id="http-500"),
]


@pytest.mark.parametrize(("reply", "status", "code"), ERROR_TABLE)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_error_table(
    gateway: GatewayProcess, fake: FakeIflow, reply: Any, status: int, code: str, stream: bool
) -> None:
    fake.enqueue(reply)
    response = post(gateway, {**CHAT, "stream": stream})
    error = assert_openai_error(response, status, code)
    if status == 429:
        assert int(response.headers["retry-after"]) >= 1
    if code == "model_not_found":
        assert "glm-4.7" in error["message"] and "kimi-k2.5" in error["message"]


def test_openai_sdk_raises_typed_errors(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(BusinessError(status="449", msg="You exceeded your current rate limit"))
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "x"}])


def test_unknown_model_reaches_upstream_which_decides(gateway: GatewayProcess, fake: FakeIflow) -> None:
    error = assert_openai_error(post(gateway, {**CHAT, "model": "no-such-model"}), 404, "model_not_found")
    assert "glm-4.7" in error["message"]
    assert fake.received[-1].body is not None and fake.received[-1].body["model"] == "no-such-model"


def test_wrong_api_key_is_a_401(gateway: GatewayProcess, fake: FakeIflow) -> None:
    from tests.conftest import write_settings

    write_settings(
        gateway.iflow_home,
        {"selectedAuthType": "iflow", "apiKey": "sk-" + "f" * 32, "baseUrl": fake.base_url},
    )
    # The files are looked at again at most every RECHECK_SECONDS; the previous test's request
    # may have just looked.
    time.sleep(RECHECK_SECONDS * 2)
    assert_openai_error(post(gateway, CHAT), 401, "invalid_api_key")


def test_json_completion_on_a_stream_becomes_chunks(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(JsonOnStream(Completion(content="whole answer")))
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for chunk in map(json.loads, events[:-1])
        if chunk["choices"]
    )
    assert text == "whole answer"


def stream_events(gateway: GatewayProcess) -> list[str]:
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        assert response.status_code == 200
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def test_stream_cut_halfway_ends_with_an_error_event(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Stream.of_text(["a", "b", "c", "d"], cut_after=2))
    events = stream_events(gateway)
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert final["error"]["code"] == "upstream_error"
    assert "broke off" in final["error"]["message"]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "a"


def test_missing_done_is_supplied(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Stream.of_text(["a", "b"], done=False))
    events = stream_events(gateway)
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1


def test_data_without_space_is_understood(gateway: GatewayProcess, fake: FakeIflow) -> None:
    fake.enqueue(Stream.of_text(["x", "y"], data_space=False))
    events = stream_events(gateway)
    contents = [
        json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1] if json.loads(e)["choices"]
    ]
    assert "".join(c or "" for c in contents) == "xy"


@pytest.mark.parametrize(
    ("content", "param"),
    [
        pytest.param(b"{not json", None, id="not-json"),
        pytest.param(b"[1, 2]", None, id="not-an-object"),
        pytest.param(
            json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model", id="no-model"
        ),
        pytest.param(json.dumps({"model": "glm-4.7"}).encode(), "messages", id="no-messages"),
        pytest.param(json.dumps({"model": 5, "messages": []}).encode(), "model", id="model-not-string"),
        pytest.param(
            json.dumps({"model": "glm-4.7", "messages": "hi"}).encode(), "messages", id="messages-string"
        ),
        pytest.param(
            json.dumps({"model": "glm-4.7", "messages": []}).encode(), "messages", id="messages-empty"
        ),
        pytest.param(
            json.dumps({**CHAT, "messages": [{"role": "wizard"}]}).encode(), "messages[0].role", id="bad-role"
        ),
        pytest.param(json.dumps({**CHAT, "stream": "yes"}).encode(), "stream", id="stream-not-bool"),
        pytest.param(json.dumps({**CHAT, "max_tokens": "10"}).encode(), "max_tokens", id="max-tokens-string"),
        pytest.param(json.dumps({**CHAT, "max_tokens": 0}).encode(), "max_tokens", id="max-tokens-zero"),
        pytest.param(
            json.dumps({**CHAT, "temperature": "hot"}).encode(), "temperature", id="temperature-string"
        ),
        pytest.param(json.dumps({**CHAT, "tools": {}}).encode(), "tools", id="tools-object"),
    ],
)
def test_bad_input_is_a_400(
    gateway: GatewayProcess, fake: FakeIflow, content: bytes, param: str | None
) -> None:
    error = assert_openai_error(post(gateway, content=content), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fake.received == []


def test_unknown_path_is_a_json_404(gateway: GatewayProcess) -> None:
    assert_openai_error(httpx.get(gateway.url + "/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_a_405(gateway: GatewayProcess) -> None:
    assert_openai_error(httpx.get(gateway.url + "/v1/chat/completions"), 405, "method_not_allowed")
    assert_openai_error(httpx.delete(gateway.url + "/v1/models"), 405, "method_not_allowed")


def test_body_over_the_limit_is_a_413(start_gateway: Any, fake: FakeIflow) -> None:
    from tests.conftest import iflow_settings

    gateway = start_gateway(iflow_settings(fake), {"IFLOW2API_MAX_BODY_BYTES": "2000"})
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    assert_openai_error(post(gateway, big), 413, "request_too_large")
    assert post(gateway, CHAT).status_code == 200


def test_no_credentials_is_a_401_that_says_how_to_log_in(start_gateway: Any) -> None:
    gateway = start_gateway(None)
    error = assert_openai_error(post(gateway, CHAT), 401, "not_logged_in")
    assert "settings.json" in error["message"] and "iflow" in error["message"]
    assert_openai_error(httpx.get(gateway.url + "/v1/models"), 401, "not_logged_in")
    assert httpx.get(gateway.url + "/health").json()["logged_in"] is False


def test_api_key_with_a_line_break_is_a_clear_401(start_gateway: Any, fake: FakeIflow) -> None:
    gateway = start_gateway(
        {"selectedAuthType": "iflow", "apiKey": "sk-abc\r\nx-evil: 1", "baseUrl": fake.base_url}
    )
    error = assert_openai_error(post(gateway, CHAT), 401, "invalid_api_key")
    assert "API key" in error["message"]
    assert fake.received == []
    assert "Traceback" not in gateway.log()


def test_network_error_as_the_first_event_is_a_real_http_error(
    gateway: GatewayProcess, fake: FakeIflow
) -> None:
    broken = {
        "id": "x",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "network_error"}],
    }
    fake.enqueue(Stream([broken]))
    error = assert_openai_error(post(gateway, {**CHAT, "stream": True}), 502, "upstream_error")
    assert "network_error" in error["message"]


def test_answer_cut_off_mid_body_is_a_502_not_a_500(start_gateway: Any) -> None:
    """An upstream that promises 500 bytes and hangs up after 7 (a review find)."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(
                b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{"id":'
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        gateway = start_gateway(
            {
                "selectedAuthType": "iflow",
                "apiKey": "sk-" + "0" * 32,
                "baseUrl": f"http://127.0.0.1:{port}/v1",
            }
        )
        error = assert_openai_error(post(gateway, CHAT), 502, "upstream_error")
        assert "broke off" in error["message"]
        assert "Traceback" not in gateway.log()
    finally:
        thread.join(timeout=5)
        listener.close()

"""Usage is counted for every request, and errors inside a stream are failed attempts like any other.

Issue 9, sections 2 and 3: the gateway always asks the upstream for a stream's usage, records it
and counts it against a key's daily tokens, forwarding the usage chunk (in OpenAI's shape) only to
clients that asked; without any usage from the upstream it estimates and says so. An error that
arrives inside a 200 stream before any content fails over to another account; after content it
ends the stream with an error event in the client's dialect. And an answer with wrongly typed
``choices`` is a 502, streamed or not.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.e2e.test_keys import create_key
from tests.fake_iflow import (
    DEFAULT_CONTENT,
    DEFAULT_KEY,
    DEFAULT_USAGE,
    BusinessError,
    Completion,
    FakeIflow,
    JsonOnStream,
    RawJson,
    Stream,
)

KEY_A = "sk-" + "a" * 32
KEY_B = "sk-" + "b" * 32
HI: Any = [{"role": "user", "content": "hi"}]  # Any: the SDKs want their own TypedDicts
OPENAI_MODEL = "deepseek-chat"


@pytest.fixture(scope="module")
def two_keys() -> Iterator[FakeIflow]:
    with FakeIflow(api_keys=[KEY_A, KEY_B]) as server:
        yield server


@pytest.fixture(scope="module")
def plain() -> Iterator[FakeIflow]:
    with FakeIflow(mode="openai", models=[OPENAI_MODEL]) as server:
        yield server


@pytest.fixture(scope="module")
def nulls() -> Iterator[FakeIflow]:
    """OpenAI's own shape, asked for usage: ``"usage": null`` on every chunk but the last."""
    with FakeIflow(mode="openai", models=[OPENAI_MODEL], null_usage=True) as server:
        yield server


def upstream_settings(kind: str, fake: FakeIflow) -> dict[str, Any]:
    if kind == "iflow":
        return iflow_settings(fake, KEY_A)
    return {
        "selectedAuthType": "openai-compatible",
        "baseUrl": fake.base_url,
        "apiKey": DEFAULT_KEY,
        "modelName": OPENAI_MODEL,
    }


def model_of(kind: str) -> str:
    return "glm-4.7" if kind == "iflow" else OPENAI_MODEL


@pytest.fixture(params=["iflow", "openai", "openai-nulls"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def upstream(kind: str, two_keys: FakeIflow, plain: FakeIflow, nulls: FakeIflow) -> FakeIflow:
    fake = {"iflow": two_keys, "openai": plain, "openai-nulls": nulls}[kind]
    fake.reset()
    return fake


@pytest.fixture(params=["openai", "openai-nulls"])
def compatible(request: pytest.FixtureRequest, plain: FakeIflow, nulls: FakeIflow) -> FakeIflow:
    """An OpenAI-compatible upstream, with and without ``"usage": null`` on its chunks."""
    fake = plain if request.param == "openai" else nulls
    fake.reset()
    return fake


@pytest.fixture
def single(start_gateway: Any, kind: str, upstream: FakeIflow) -> GatewayProcess:
    """A gateway with one account on the kind of upstream the test is parametrized with."""
    gateway: GatewayProcess = start_gateway(upstream_settings(kind, upstream))
    return gateway


def sse_payloads(response: httpx.Response) -> list[Any]:
    """The ``data`` payloads of a stream, parsed (``[DONE]`` as the string)."""
    payloads: list[Any] = []
    for line in response.text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            payloads.append(data if data == "[DONE]" else orjson.loads(data))
    return payloads


def recent_rows(gateway: GatewayProcess, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The usage rows, newest first, once every request so far is recorded."""
    summary = httpx.get(gateway.url + "/api/usage?days=1", headers=headers, timeout=5).json()
    rows: list[dict[str, Any]] = summary["recent"]
    return rows


# -- usage is always asked for, recorded and counted ---------------------------------------------


def test_streams_without_include_usage_count_against_the_tokens_per_day(
    start_gateway: Any, kind: str, upstream: FakeIflow, tmp_path: Path
) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    write_settings(home, upstream_settings(kind, upstream))
    key = create_key(data, "small", "--tokens-per-day", "30")
    gateway: GatewayProcess = start_gateway(None, {"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data)})
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    # 12 + 5 tokens a stream: 17, then 34, after which the day's 30 are used up.
    for _ in range(2):
        chunks = list(sdk.chat.completions.create(model=model_of(kind), messages=HI, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_CONTENT
        assert all(c.usage is None for c in chunks)  # not asked for, not forwarded
    with pytest.raises(openai.RateLimitError, match="30 tokens for today"):
        sdk.chat.completions.create(model=model_of(kind), messages=HI, stream=True)
    sent = [r for r in upstream.received if r.rejected is None]
    assert len(sent) == 2
    assert all(r.body is not None and r.body["stream_options"] == {"include_usage": True} for r in sent)


def test_a_client_that_asked_gets_openais_usage_chunk(single: GatewayProcess, kind: str) -> None:
    body = {
        "model": model_of(kind),
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = httpx.post(single.url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    *chunks, last = payloads[:-1]
    # The usage chunk is the last one, with no choices, after the finish chunk (whose usage is null)
    # even though iFlow put usage on its finish chunk.
    assert last["choices"] == [] and last["usage"] == DEFAULT_USAGE
    assert last["object"] == "chat.completion.chunk" and last["id"] == chunks[0]["id"]
    finish = chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert "usage" in finish and finish["usage"] is None
    assert all(chunk.get("usage") is None and chunk["choices"] for chunk in chunks)

    sdk = openai.OpenAI(base_url=single.url + "/v1", api_key="x", max_retries=0)
    streamed = list(
        sdk.chat.completions.create(
            model=model_of(kind), messages=HI, stream=True, stream_options={"include_usage": True}
        )
    )
    assert streamed[-1].usage is not None and streamed[-1].usage.total_tokens == 17
    assert [c.usage for c in streamed[:-1]] == [None] * (len(streamed) - 1)


def test_a_client_that_did_not_ask_gets_no_usage_chunk(single: GatewayProcess, kind: str) -> None:
    body = {"model": model_of(kind), "messages": HI, "stream": True}
    response = httpx.post(single.url + "/v1/chat/completions", json=body, timeout=30)
    payloads = sse_payloads(response)
    assert payloads[-1] == "[DONE]"
    assert all("usage" not in chunk and chunk["choices"] for chunk in payloads[:-1])
    assert recent_rows(single)[0]["prompt_tokens"] == 12  # recorded all the same
    assert recent_rows(single)[0]["estimated"] is False


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_upstream_without_usage_gives_an_estimated_row(
    single: GatewayProcess, kind: str, upstream: FakeIflow, stream: bool
) -> None:
    upstream.enqueue(Completion(content="The answer is four, as it always was.", usage=None))
    sdk = openai.OpenAI(base_url=single.url + "/v1", api_key="x", max_retries=0)
    if stream:
        chunks = list(
            sdk.chat.completions.create(
                model=model_of(kind), messages=HI, stream=True, stream_options={"include_usage": True}
            )
        )
        usage = chunks[-1].usage
        assert chunks[-1].choices == [] and chunks[-2].choices[0].finish_reason == "stop"
    else:
        usage = sdk.chat.completions.create(model=model_of(kind), messages=HI).usage
    # What the client is told is the estimate the row records.
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    row = recent_rows(single)[0]
    assert row["estimated"] is True and row["stream"] is stream
    assert (row["prompt_tokens"], row["completion_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    exported = httpx.get(single.url + "/api/usage.csv?days=1", timeout=5).text
    lines = list(csv.DictReader(io.StringIO(exported)))
    assert lines[-1]["estimated"] == "true"


@pytest.mark.parametrize("dialect", ["messages", "responses"])
def test_other_dialects_get_the_estimate_too(start_gateway: Any, compatible: FakeIflow, dialect: str) -> None:
    gateway: GatewayProcess = start_gateway(upstream_settings("openai", compatible))
    compatible.enqueue(Completion(content="The answer is four, as it always was.", usage=None))
    if dialect == "messages":
        claude = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
        with claude.messages.stream(model=OPENAI_MODEL, max_tokens=50, messages=HI) as events:
            final = events.get_final_message()
        told = (final.usage.input_tokens, final.usage.output_tokens)
    else:
        sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
        done = [
            e
            for e in sdk.responses.create(model=OPENAI_MODEL, input="hi", stream=True)
            if e.type == "response.completed"
        ]
        usage = done[0].response.usage
        assert usage is not None
        told = (usage.input_tokens, usage.output_tokens)
    row = recent_rows(gateway)[0]
    assert row["estimated"] is True
    assert told == (row["prompt_tokens"], row["completion_tokens"]) and min(told) > 0


def test_an_estimated_stream_counts_against_the_key(
    start_gateway: Any, compatible: FakeIflow, tmp_path: Path
) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    write_settings(home, upstream_settings("openai", compatible))
    key = create_key(data, "small", "--tokens-per-day", "10")
    gateway: GatewayProcess = start_gateway(None, {"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data)})
    compatible.enqueue(
        Completion(content="A rather long answer that is surely more than ten tokens long.", usage=None)
    )
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    assert list(sdk.chat.completions.create(model=OPENAI_MODEL, messages=HI, stream=True))
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model=OPENAI_MODEL, messages=HI, stream=True)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_client_that_leaves_mid_stream_still_pays_for_what_was_written(
    start_gateway: Any, plain: FakeIflow, path: str
) -> None:
    plain.reset()
    gateway: GatewayProcess = start_gateway(upstream_settings("openai", plain))
    words = ["Some", " words", " before", " the", " client", " leaves"] + [" more"] * 20
    plain.enqueue(Stream.of_text(words, model=OPENAI_MODEL, delay=0.2))
    body: dict[str, Any] = {"model": OPENAI_MODEL, "messages": HI, "stream": True, "max_tokens": 100}
    with httpx.stream("POST", gateway.url + path, json=body, timeout=30) as response:
        seen = ""
        for line in response.iter_lines():
            seen += line
            if "leaves" in seen:
                break  # and hang up
    deadline = time.monotonic() + 10
    while not (rows := recent_rows(gateway)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows and rows[0]["status"] == 499
    assert rows[0]["estimated"] is True
    assert rows[0]["prompt_tokens"] > 0 and rows[0]["completion_tokens"] >= len(words[:6]) - 1


# -- errors inside a stream ------------------------------------------------------------------------

ROLE_ONLY: dict[str, Any] = {
    "id": "chatcmpl-x",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "glm-4.7",
    "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
}
RATE_LIMIT_CHUNK = {
    "error": {
        "message": "Rate limit reached for requests",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
    }
}


def chunk_with(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {**ROLE_ONLY, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


# A little time between events, so the role-only chunk reaches the gateway on its own.
EARLY_FAILURES = {
    "error-chunk": Stream([ROLE_ONLY, RATE_LIMIT_CHUNK], delay=0.05),
    "business-error": Stream([ROLE_ONLY, BusinessError(status="449", msg="busy").payload()], delay=0.05),
    "network-error": Stream([ROLE_ONLY, chunk_with({}, "network_error")], delay=0.05),
    "empty-content-then-error": Stream(
        [ROLE_ONLY, chunk_with({"content": ""}), RATE_LIMIT_CHUNK], delay=0.05
    ),
}


@pytest.fixture(scope="module")
def pool(two_keys: FakeIflow, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """Two iFlow accounts, the first one always asked first while it is not resting."""
    home, data = tmp_path_factory.mktemp("pool-home"), tmp_path_factory.mktemp("pool-data")
    write_settings(home, iflow_settings(two_keys, KEY_A))
    config = home / "config.toml"
    config.write_text(
        f'[[accounts]]\nlabel = "second"\nkind = "iflow-key"\nbase_url = "{two_keys.base_url}"\n'
        f'api_key = "{KEY_B}"\n'
    )
    env = {
        "IFLOW2API_CONFIG": str(config),
        "IFLOW2API_STRATEGY": "fill-first",
        "IFLOW2API_ERROR_COOLDOWN": "30",
    }
    gateway = GatewayProcess(home, data, env)
    gateway.wait_for_health()
    yield gateway
    gateway.stop()


@pytest.fixture
def fresh_pool(pool: GatewayProcess, two_keys: FakeIflow) -> GatewayProcess:
    two_keys.reset()
    pool.reset_accounts()
    return pool


def account_states(gateway: GatewayProcess) -> dict[str, str]:
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    return {account["label"]: account["state"] for account in listing["accounts"]}


def asked(fake: FakeIflow) -> list[str]:
    keys = [r.headers["authorization"].removeprefix("Bearer ") for r in fake.received if r.rejected is None]
    return ["first" if key == KEY_A else "second" for key in keys]


def stream_text(gateway: GatewayProcess, dialect: str) -> str:
    """Stream one answer in ``dialect`` with its own SDK; the text the client saw."""
    if dialect == "chat":
        sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
        chunks = sdk.chat.completions.create(model="glm-4.7", messages=HI, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    if dialect == "messages":
        claude = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
        with claude.messages.stream(model="glm-4.7", max_tokens=50, messages=HI) as events:
            return "".join(events.text_stream)
    sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    response_events = sdk.responses.create(model="glm-4.7", input="hi", stream=True)
    return "".join(e.delta for e in response_events if e.type == "response.output_text.delta")


@pytest.mark.parametrize("dialect", ["chat", "messages", "responses"])
@pytest.mark.parametrize("failure", list(EARLY_FAILURES), ids=list(EARLY_FAILURES))
def test_an_error_in_the_stream_before_content_fails_over(
    fresh_pool: GatewayProcess, two_keys: FakeIflow, failure: str, dialect: str
) -> None:
    two_keys.enqueue_for(KEY_A, EARLY_FAILURES[failure])
    assert stream_text(fresh_pool, dialect) == DEFAULT_CONTENT
    assert asked(two_keys) == ["first", "second"]
    assert account_states(fresh_pool)["iFlow CLI settings"] == "cooling"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_rate_limit_inside_a_200_cools_the_account_like_a_429(
    fresh_pool: GatewayProcess, two_keys: FakeIflow, stream: bool
) -> None:
    if stream:
        two_keys.enqueue_for(KEY_A, EARLY_FAILURES["error-chunk"])
        assert stream_text(fresh_pool, "chat") == DEFAULT_CONTENT
    else:
        two_keys.enqueue_for(KEY_A, RawJson(RATE_LIMIT_CHUNK))
        sdk = openai.OpenAI(base_url=fresh_pool.url + "/v1", api_key="x", max_retries=0)
        assert (
            sdk.chat.completions.create(model="glm-4.7", messages=HI).choices[0].message.content
            == DEFAULT_CONTENT
        )
    assert asked(two_keys) == ["first", "second"]
    listing = httpx.get(fresh_pool.url + "/api/accounts", timeout=5).json()
    first = next(a for a in listing["accounts"] if a["label"] == "iFlow CLI settings")
    assert "rate limit" in (first["reason"] or "")


# The error comes a moment later, after "Hel" has gone out (had both arrived together, nothing
# would have reached the client yet and the request would go to the second account instead).
LATE_FAILURE = Stream([chunk_with({"role": "assistant", "content": "Hel"}), RATE_LIMIT_CHUNK], delay=0.2)


def test_an_error_after_content_ends_a_chat_stream_with_an_error_event(
    fresh_pool: GatewayProcess, two_keys: FakeIflow
) -> None:
    two_keys.enqueue_for(KEY_A, LATE_FAILURE)
    sdk = openai.OpenAI(base_url=fresh_pool.url + "/v1", api_key="x", max_retries=0)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="Rate limit reached") as caught:
        for chunk in sdk.chat.completions.create(model="glm-4.7", messages=HI, stream=True):
            seen.extend(c.delta.content or "" for c in chunk.choices)
    assert seen == ["Hel"]
    assert caught.value.code == "rate_limit_exceeded"
    assert asked(two_keys) == ["first"]  # content had gone out: no second attempt
    assert recent_rows(fresh_pool)[0]["error"] == "rate_limit_exceeded"
    assert account_states(fresh_pool)["iFlow CLI settings"] == "cooling"  # the failure counted


def test_an_error_after_content_ends_a_messages_stream_with_an_error_event(
    fresh_pool: GatewayProcess, two_keys: FakeIflow
) -> None:
    two_keys.enqueue_for(KEY_A, LATE_FAILURE)
    claude = anthropic.Anthropic(base_url=fresh_pool.url, api_key="x", max_retries=0)
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError, match="Rate limit reached"),
        claude.messages.stream(model="glm-4.7", max_tokens=50, messages=HI) as events,
    ):
        seen.extend(events.text_stream)
    assert seen == ["Hel"]
    assert asked(two_keys) == ["first"]
    assert recent_rows(fresh_pool)[0]["error"] == "rate_limit_exceeded"
    assert account_states(fresh_pool)["iFlow CLI settings"] == "cooling"


def test_an_error_after_content_ends_a_responses_stream_with_an_error_event(
    fresh_pool: GatewayProcess, two_keys: FakeIflow
) -> None:
    two_keys.enqueue_for(KEY_A, LATE_FAILURE)
    sdk = openai.OpenAI(base_url=fresh_pool.url + "/v1", api_key="x", max_retries=0)
    events = list(sdk.responses.create(model="glm-4.7", input="hi", stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["Hel"]
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"]
    error = events[-2]
    assert error.type == "error" and "Rate limit reached" in error.message
    assert asked(two_keys) == ["first"]
    assert recent_rows(fresh_pool)[0]["error"] == "rate_limit_exceeded"
    assert account_states(fresh_pool)["iFlow CLI settings"] == "cooling"


# -- wrongly typed choices -------------------------------------------------------------------------

BAD_CHOICES = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "glm-4.7",
    "choices": [{"message": 5}, 7],
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("dialect", ["chat", "messages"])
def test_wrongly_typed_choices_are_a_502(
    fresh_pool: GatewayProcess, two_keys: FakeIflow, stream: bool, dialect: str
) -> None:
    two_keys.enqueue_for(KEY_A, RawJson(BAD_CHOICES))
    two_keys.enqueue_for(KEY_B, RawJson(BAD_CHOICES))
    if dialect == "chat":
        body: dict[str, Any] = {"model": "glm-4.7", "messages": HI, "stream": stream}
        response = httpx.post(fresh_pool.url + "/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "upstream_error"
        assert "malformed" in response.json()["error"]["message"]
    else:
        body = {"model": "glm-4.7", "max_tokens": 10, "messages": HI, "stream": stream}
        response = httpx.post(fresh_pool.url + "/v1/messages", json=body, timeout=30)
        # Anthropic's dialect shows every upstream failure as a 500 api_error.
        assert response.status_code == 500, response.text
        assert response.json()["error"]["type"] == "api_error"
        assert "malformed" in response.json()["error"]["message"]
    assert "Traceback" not in response.text


def test_a_whole_completion_on_a_stream_keeps_openais_usage_shape(
    fresh_pool: GatewayProcess, two_keys: FakeIflow
) -> None:
    two_keys.enqueue_for(KEY_A, JsonOnStream())
    body = {"model": "glm-4.7", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    payloads = sse_payloads(httpx.post(fresh_pool.url + "/v1/chat/completions", json=body, timeout=30))
    assert payloads[-1] == "[DONE]"
    assert payloads[-2]["choices"] == [] and payloads[-2]["usage"] == DEFAULT_USAGE
    assert payloads[-3]["choices"][0]["finish_reason"] == "stop" and payloads[-3]["usage"] is None


LATE_FAILURES = {
    "error-chunk": LATE_FAILURE,
    "connection-cut": Stream([chunk_with({"role": "assistant", "content": "Hel"}), ROLE_ONLY], cut_after=1),
}


def failure_shown(gateway: GatewayProcess, dialect: str) -> str:
    """Stream one answer in ``dialect`` that fails after content; the error the client was shown."""
    if dialect == "responses":
        sdk = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
        events = list(sdk.responses.create(model="glm-4.7", input="hi", stream=True))
        return next(e.message for e in events if e.type == "error")
    with pytest.raises((openai.APIError, anthropic.APIStatusError)) as caught:
        stream_text(gateway, dialect)
    return str(caught.value)


@pytest.mark.parametrize("failure", list(LATE_FAILURES), ids=list(LATE_FAILURES))
@pytest.mark.parametrize("dialect", ["chat", "messages", "responses"])
def test_a_stream_that_fails_after_content_still_counts_what_was_written(
    fresh_pool: GatewayProcess, two_keys: FakeIflow, dialect: str, failure: str
) -> None:
    two_keys.enqueue_for(KEY_A, LATE_FAILURES[failure])
    started = time.time()
    assert failure_shown(fresh_pool, dialect)
    assert asked(two_keys) == ["first"]  # content had gone out: no second attempt
    # The client may read the error event before the gateway has recorded the request.
    deadline = time.monotonic() + 10
    while not (rows := [r for r in recent_rows(fresh_pool) if r["at"] >= started]):
        assert time.monotonic() < deadline, "the request was never recorded"
        time.sleep(0.05)
    (row,) = rows
    assert row["error"] in ("rate_limit_exceeded", "upstream_error")
    # No usage came from the upstream: the prompt and what was written ("Hel") are estimated.
    assert row["estimated"] is True
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0

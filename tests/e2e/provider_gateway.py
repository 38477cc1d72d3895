"""A gateway whose accounts are keys of one provider's fake host, for the provider profiles' tests.

``start`` writes the accounts into a config file (``[[accounts]]`` with ``provider``), in order,
and picks them fill-first, so the first is always asked first and a test can script its failure
(``FakeIflow.enqueue_for``) and see the next one take over. The fixture makers give a test module
its fake host and gateways, once per module, and each test a fresh view of them::

    fake_host = fake_fixture("minimax", KEYS, MODELS)
    gateway_process = gateway_fixture("minimax", KEYS)
    fake, gateway = fresh_fixture("fake_host"), fresh_fixture("gateway_process")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletionChunk

from tests.conftest import GatewayProcess
from tests.fake_iflow import Completion, FakeIflow

#: The response header that says what was sent upstream for thinking.
THINKING = "x-iflow2api-thinking"
#: The tool call of ``anthropic_tool_loop``'s first turn.
CALLS = [
    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
]


def start(
    tmp_path: Path, fake: FakeIflow, provider: str, keys: Mapping[str, str], options: str = ""
) -> GatewayProcess:
    """A gateway with one ``provider`` account per label in ``keys`` (label → api key)."""
    where = f'provider = "{provider}"\nbase_url = "{fake.base_url}"'
    tables = [f'[[accounts]]\nlabel = "{label}"\n{where}\napi_key = "{key}"\n' for label, key in keys.items()]
    config = tmp_path / "config.toml"
    config.write_text("\n".join(tables))
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "IFLOW2API_CONFIG": str(config),
        "IFLOW2API_STRATEGY": "fill-first",
        "IFLOW2API_PROVIDER_OPTIONS": options,
    }
    process = GatewayProcess(home, tmp_path / "data", env)
    process.wait_for_health()
    return process


def reset_accounts(gateway: GatewayProcess) -> None:
    """Every account back in rotation: out of credit too (``GatewayProcess.reset_accounts`` lifts
    only cooling and quarantined ones)."""
    for account in httpx.get(gateway.url + "/api/accounts", timeout=5).json()["accounts"]:
        if account["state"] != "ok":
            action = {"id": account["id"], "action": "reset"}
            httpx.post(gateway.url + "/api/accounts/action", json=action, timeout=5).raise_for_status()


def sent(fake: FakeIflow) -> dict[str, Any]:
    """The body of the last request the fake took."""
    body = fake.received[-1].body
    assert body is not None and fake.received[-1].rejected is None, fake.received[-1].rejected
    return body


def accepted(fake: FakeIflow) -> list[dict[str, Any]]:
    """The bodies of every request the fake took, in order; it must have accepted each."""
    assert all(r.rejected is None for r in fake.received), [r.rejected for r in fake.received]
    return [r.body for r in fake.received if r.body is not None]


def served_by(fake: FakeIflow, keys: Mapping[str, str]) -> list[str]:
    """The label of the account of each request the fake took, in order."""
    labels = {key: label for label, key in keys.items()}
    return [
        labels[r.headers["authorization"].removeprefix("Bearer ")]
        for r in fake.received
        if r.rejected is None
    ]


def states(gateway: GatewayProcess) -> dict[str, str]:
    """Each account's state as the page shows it, by label."""
    listing = httpx.get(gateway.url + "/api/accounts", timeout=5).json()
    return {account["label"]: account["state"] for account in listing["accounts"]}


def openai_client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20)


def streamed(chunks: Iterable[ChatCompletionChunk]) -> tuple[str, str]:
    """The reasoning and the text of a streamed chat answer, each joined."""
    deltas = [chunk.choices[0].delta for chunk in chunks if chunk.choices]
    reasoning = "".join(getattr(delta, "reasoning_content", None) or "" for delta in deltas)
    return reasoning, "".join(delta.content or "" for delta in deltas)


def fake_fixture(mode: str, keys: Mapping[str, str], models: Sequence[str]) -> Callable[..., Any]:
    """A module fixture: the fake playing ``mode``, taking the ``keys`` and serving ``models``."""

    @pytest.fixture(scope="module")
    def host() -> Iterator[FakeIflow]:
        with FakeIflow(mode=mode, api_keys=keys.values(), models=models) as server:
            yield server

    return host


def gateway_fixture(
    provider: str, keys: Mapping[str, str], options: str = "", fake: str = "fake_host"
) -> Callable[..., Any]:
    """A module fixture: a gateway (``start``) in front of the fixture named ``fake``."""

    @pytest.fixture(scope="module")
    def process(
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
    ) -> Iterator[GatewayProcess]:
        started = start(
            tmp_path_factory.mktemp(provider), request.getfixturevalue(fake), provider, keys, options
        )
        yield started
        started.stop()

    return process


def fresh_fixture(name: str) -> Callable[..., Any]:
    """A test's fixture: the module fixture ``name``, made fresh (a fake forgets what it was sent
    and was told to answer; a gateway puts every account back in rotation)."""

    @pytest.fixture
    def fresh(request: pytest.FixtureRequest) -> Any:
        value = request.getfixturevalue(name)
        if isinstance(value, FakeIflow):
            value.reset()
        else:
            reset_accounts(value)
        return value

    return fresh


def anthropic_tool_loop(
    gateway: GatewayProcess,
    fake: FakeIflow,
    model: str,
    thinking: Any,
    reasoning: str = "Need Oslo.",
    call_id: str = "call_1",
) -> tuple[Message, str | None, Message]:
    """Two turns of Claude Code's loop: the host thinks ``reasoning`` and calls a tool; the client
    sends the tool's result back with the ``tool_use`` blocks but without the thinking block (the
    gateway must put the reasoning back). The first answer, its thinking header, the second answer.
    A ``call_id`` of its own keeps a test clear of the reasoning an earlier one left in the store.
    """
    calls = [{**CALLS[0], "id": call_id}]
    claude = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20)
    tools: list[Any] = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    fake.enqueue(Completion(content="", reasoning=reasoning, tool_calls=calls, finish_reason="tool_calls"))
    question: list[Any] = [{"role": "user", "content": "Oslo?"}]
    raw = claude.messages.with_raw_response.create(
        model=model, max_tokens=4000, thinking=thinking, tools=tools, messages=question
    )
    first = raw.parse()
    uses = [block.model_dump() for block in first.content if block.type == "tool_use"]
    fake.enqueue(Completion(content="5C."))
    result = [{"type": "tool_result", "tool_use_id": call_id, "content": "5C"}]
    history: list[Any] = [
        *question,
        {"role": "assistant", "content": uses},
        {"role": "user", "content": result},
    ]
    second = claude.messages.create(
        model=model, max_tokens=4000, thinking=thinking, tools=tools, messages=history
    )
    return first, raw.headers.get(THINKING), second

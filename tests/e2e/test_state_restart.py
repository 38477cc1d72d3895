"""What the state store keeps across a restart: stored reasoning, previous responses, cooldowns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai

from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.fake_iflow import Completion, FakeIflow, HttpError


def test_memories_and_cooldowns_survive_a_restart(
    start_gateway: Any, fake: FakeIflow, tmp_path: Path
) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    write_settings(home, iflow_settings(fake))
    env = {"IFLOW_HOME": str(home), "IFLOW2API_DATA_DIR": str(data)}

    first: GatewayProcess = start_gateway(None, env)
    sdk = openai.OpenAI(base_url=first.url + "/v1", api_key="unused", max_retries=0)
    call = {"id": "call_restart", "type": "function", "function": {"name": "add", "arguments": "{}"}}
    fake.enqueue(Completion(content="", reasoning="Add them.", tool_calls=[call], finish_reason="tool_calls"))
    sdk.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "2+2?"}])
    fake.enqueue(Completion(content="Hi, Ann."))
    stored = sdk.responses.create(model="glm-4.7", input="I am Ann.")
    fake.enqueue(HttpError(429, headers={"Retry-After": "600"}))
    assert httpx.post(first.url + "/v1/chat/completions", json={"model": "glm-4.7", "messages": [
        {"role": "user", "content": "x"}]}, timeout=10).status_code == 429  # fmt: skip
    first.stop()

    second: GatewayProcess = start_gateway(None, env)
    accounts = httpx.get(second.url + "/api/accounts", timeout=5).json()["accounts"]
    assert accounts[0]["state"] == "cooling" and accounts[0]["until"] is not None  # the 429 is remembered
    httpx.post(
        second.url + "/api/accounts/action", json={"id": accounts[0]["id"], "action": "reset"}, timeout=5
    ).raise_for_status()
    sdk = openai.OpenAI(base_url=second.url + "/v1", api_key="unused", max_retries=0)
    history: list[Any] = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "4"},
    ]
    sdk.chat.completions.create(model="glm-4.7", messages=history)
    sent = fake.received[-1].body
    assert sent is not None
    assert sent["messages"][1]["reasoning_content"] == "Add them."  # stored reasoning, back after a restart

    sdk.responses.create(model="glm-4.7", input="Who am I?", previous_response_id=stored.id)
    sent = fake.received[-1].body
    assert sent is not None
    assert [m.get("content") for m in sent["messages"]] == ["I am Ann.", "Hi, Ann.", "Who am I?"]

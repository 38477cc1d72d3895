"""The real Claude Code and Codex CLIs through the gateway, one tool turn each, against the fake
DeepSeek: the fake thinks unless told not to and refuses a second turn whose tool call comes back
without its ``reasoning_content``, so each CLI's turn passes only if the gateway speaks DeepSeek's
rules. Installation, sandboxing and helpers are ``test_agent_clis``'s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayProcess
from tests.e2e.test_agent_clis import (  # noqa: F401 (agent_clis and proxy are fixtures)
    FINAL_TEXT,
    AgentClis,
    DeadEndProxy,
    agent_clis,
    answered_tool_call,
    base_env,
    explain,
    proxy,
    run_cli,
    tool_call,
)
from tests.fake_iflow import Completion, FakeIflow

pytestmark = [pytest.mark.node, pytest.mark.timeout(420)]

KEY = "sk-" + "9" * 32
MODEL = "deepseek-flash"
REASONING = "Run the command, then report."


@pytest.fixture(scope="module")
def deepseek() -> Iterator[FakeIflow]:
    with FakeIflow(mode="deepseek", api_keys=[KEY], models=[MODEL]) as server:
        yield server


@pytest.fixture
def gateway(deepseek: FakeIflow, start_gateway: Any, tmp_path: Path) -> GatewayProcess:
    deepseek.reset()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[accounts]]\nlabel = "DeepSeek"\nprovider = "deepseek"\nbase_url = "{deepseek.base_url}"\n'
        f'api_key = "{KEY}"\n'
    )
    # Claude Code asks for Claude models by name: they are served by DeepSeek here.
    env = {"IFLOW2API_CONFIG": str(config), "IFLOW2API_MODEL_ALIASES": f"claude-*={MODEL}"}
    gateway: GatewayProcess = start_gateway(None, env)
    return gateway


def check_the_second_turn(deepseek: FakeIflow, call_id: str) -> None:
    """Both turns were accepted by the fake DeepSeek, and the second gave the tool call its reasoning."""
    assert [r.rejected for r in deepseek.received] == [None, None]
    second = deepseek.received[-1].body
    assert second is not None
    calls = [m for m in second["messages"] if any(c["id"] == call_id for c in m.get("tool_calls") or [])]
    assert [m.get("reasoning_content") for m in calls] == [REASONING]


def test_claude_code_runs_a_bash_tool_turn_on_deepseek(
    agent_clis: AgentClis,  # noqa: F811
    gateway: GatewayProcess,
    deepseek: FakeIflow,
    proxy: DeadEndProxy,  # noqa: F811
    tmp_path: Path,
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    deepseek.enqueue(
        Completion(
            content="",
            reasoning=REASONING,
            tool_calls=[tool_call("call_ds_cc", "Bash", {"command": "echo hi-from-claude-code"})],
            finish_reason="tool_calls",
        ),
        Completion(content=FINAL_TEXT),
    )
    env = base_env(home, proxy) | {
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": "unused",
        "ANTHROPIC_MODEL": MODEL,
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "DISABLE_NON_ESSENTIAL_MODEL_CALLS": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
        "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    }
    command = [
        str(agent_clis.claude),
        "-p",
        "Say hi from the shell.",
        "--allowedTools",
        "Bash",
        "--max-turns",
        "4",
    ]
    result = run_cli(command, work, env)
    details = explain(result, gateway, deepseek)
    assert result.returncode == 0, details
    assert FINAL_TEXT in result.stdout, details
    assert len(deepseek.received) == 2, details
    assert answered_tool_call(deepseek, "call_ds_cc")["content"] == "hi-from-claude-code", details
    check_the_second_turn(deepseek, "call_ds_cc")


def test_codex_runs_an_exec_command_tool_turn_on_deepseek(
    agent_clis: AgentClis,  # noqa: F811
    gateway: GatewayProcess,
    deepseek: FakeIflow,
    proxy: DeadEndProxy,  # noqa: F811
    tmp_path: Path,
) -> None:
    home, work, codex_home = tmp_path / "home", tmp_path / "work", tmp_path / "codex"
    for folder in (home, work, codex_home):
        folder.mkdir()
    (codex_home / "config.toml").write_text(
        f"""model = "{MODEL}"
model_provider = "iflow2api"
model_reasoning_effort = "high"
check_for_update_on_startup = false

[model_providers.iflow2api]
name = "iflow2api"
base_url = "{gateway.url}/v1"
wire_api = "responses"
env_key = "IFLOW2API_KEY"

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
plugin_sharing = false
apps = false

[feedback]
enabled = false
"""
    )
    deepseek.enqueue(
        Completion(
            content="",
            reasoning=REASONING,
            tool_calls=[tool_call("call_ds_cx", "exec_command", {"cmd": "echo hi-from-codex"})],
            finish_reason="tool_calls",
        ),
        Completion(content=FINAL_TEXT),
    )
    env = base_env(home, proxy) | {"CODEX_HOME": str(codex_home), "IFLOW2API_KEY": "unused"}
    command = [
        str(agent_clis.codex),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "Say hi from the shell.",
    ]
    result = run_cli(command, work, env)
    details = explain(result, gateway, deepseek)
    assert result.returncode == 0, details
    assert FINAL_TEXT in result.stdout, details
    assert len(deepseek.received) == 2, details
    assert "hi-from-codex" in answered_tool_call(deepseek, "call_ds_cx")["content"], details
    first = deepseek.received[0].body
    assert first is not None and first["reasoning_effort"] == "high", details
    assert first["thinking"] == {"type": "enabled"}, details
    check_the_second_turn(deepseek, "call_ds_cx")

"""The real Claude Code and Codex CLIs through the gateway, one tool turn each, against the fake
DeepSeek: the fake thinks unless told not to and refuses a second turn whose tool call comes back
without its ``reasoning_content``, so each CLI's turn passes only if the gateway speaks DeepSeek's
rules. Installation, sandboxing and helpers are ``test_agent_clis``'s."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import GatewayProcess
from tests.e2e.test_agent_clis import (  # noqa: F401 (agent_clis and proxy are fixtures)
    AgentClis,
    DeadEndProxy,
    agent_clis,
    answered_tool_call,
    base_env,
    claude_command,
    claude_env,
    codex_command,
    codex_config,
    proxy,
    ran_one_tool_turn,
    run_cli,
    script_one_tool_turn,
    tool_call,
)
from tests.e2e.test_provider_deepseek import account, start
from tests.fake_iflow import FakeIflow

pytestmark = [pytest.mark.node, pytest.mark.timeout(420)]

KEY = "sk-" + "9" * 32
MODEL = "deepseek-flash"
REASONING = "Run the command, then report."


@pytest.fixture(scope="module")
def deepseek() -> Iterator[FakeIflow]:
    with FakeIflow(mode="deepseek", api_keys=[KEY], models=[MODEL]) as server:
        yield server


@pytest.fixture
def gateway(deepseek: FakeIflow, tmp_path: Path) -> Iterator[GatewayProcess]:
    deepseek.reset()
    # Claude Code asks for Claude models by name: they are served by DeepSeek here.
    process = start(tmp_path, account("DeepSeek", KEY, deepseek), IFLOW2API_MODEL_ALIASES=f"claude-*={MODEL}")
    yield process
    process.stop()


@dataclass(frozen=True)
class Bench:
    """What a CLI's run needs: the CLIs, the gateway, the dead-end proxy, a HOME and a working folder."""

    clis: AgentClis
    gateway: GatewayProcess
    proxy: DeadEndProxy
    home: Path
    work: Path


@pytest.fixture
def bench(
    agent_clis: AgentClis,  # noqa: F811
    gateway: GatewayProcess,
    proxy: DeadEndProxy,  # noqa: F811
    tmp_path: Path,
) -> Bench:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return Bench(agent_clis, gateway, proxy, home, work)


def check_the_second_turn(deepseek: FakeIflow, call_id: str) -> None:
    """Both turns were accepted by the fake DeepSeek, and the second gave the tool call its reasoning."""
    assert [r.rejected for r in deepseek.received] == [None, None]
    second = deepseek.received[-1].body
    assert second is not None
    calls = [m for m in second["messages"] if any(c["id"] == call_id for c in m.get("tool_calls") or [])]
    assert [m.get("reasoning_content") for m in calls] == [REASONING]


def test_claude_code_runs_a_bash_tool_turn_on_deepseek(bench: Bench, deepseek: FakeIflow) -> None:
    script_one_tool_turn(
        deepseek, tool_call("call_ds_cc", "Bash", {"command": "echo hi-from-claude-code"}), REASONING
    )
    env = claude_env(bench.home, bench.proxy, bench.gateway) | {"ANTHROPIC_MODEL": MODEL}
    result = run_cli(claude_command(bench.clis), bench.work, env)
    details = ran_one_tool_turn(result, bench.gateway, deepseek)
    assert answered_tool_call(deepseek, "call_ds_cc")["content"] == "hi-from-claude-code", details
    check_the_second_turn(deepseek, "call_ds_cc")


def test_codex_runs_an_exec_command_tool_turn_on_deepseek(bench: Bench, deepseek: FakeIflow) -> None:
    codex_home = bench.home.parent / "codex"
    codex_home.mkdir()
    effort = 'model_reasoning_effort = "high"\n'
    (codex_home / "config.toml").write_text(codex_config(bench.gateway, MODEL, effort))
    script_one_tool_turn(
        deepseek, tool_call("call_ds_cx", "exec_command", {"cmd": "echo hi-from-codex"}), REASONING
    )
    env = base_env(bench.home, bench.proxy) | {"CODEX_HOME": str(codex_home), "IFLOW2API_KEY": "unused"}
    result = run_cli(codex_command(bench.clis), bench.work, env)
    details = ran_one_tool_turn(result, bench.gateway, deepseek)
    assert "hi-from-codex" in answered_tool_call(deepseek, "call_ds_cx")["content"], details
    first = deepseek.received[0].body
    assert first is not None and first["reasoning_effort"] == "high", details
    assert first["thinking"] == {"type": "enabled"}, details
    check_the_second_turn(deepseek, "call_ds_cx")

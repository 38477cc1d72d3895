"""The real Claude Code and Codex CLIs, one tool turn each, against the fake Kimi through the gateway.

What ``test_agent_clis`` does for iFlow, for a ``provider = "moonshot"`` account: the fake Kimi
refuses the second turn unless the tool-call turn carries ``reasoning_content`` (both CLIs think),
and refuses any ``thinking`` switch but ``enabled`` on kimi-k2.7-code. (Claude Code's auxiliary
calls, which ask ``thinking: disabled``, are switched off here; ``test_provider_moonshot`` sends one.)
The CLIs, their install and their sealed-off environment come from ``test_agent_clis``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayProcess
from tests.e2e import test_agent_clis as clis
from tests.fake_iflow import Completion, FakeIflow

pytestmark = [pytest.mark.node, pytest.mark.timeout(420)]

# The fixtures of test_agent_clis, shared: the CLIs installed once, and the dead-end proxy.
agent_clis = clis.agent_clis
proxy = clis.proxy

KEY = "sk-kimi-" + "c" * 32
PROMPT = "Say hi from the shell."
#: What Claude Code's environment switches off: updates, telemetry, surveys, helper-model calls.
QUIET_CLAUDE = (
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_AUTOUPDATER",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "DISABLE_BUG_COMMAND",
    "DISABLE_NON_ESSENTIAL_MODEL_CALLS",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE",
)


@pytest.fixture
def kimi() -> Iterator[FakeIflow]:
    with FakeIflow(mode="moonshot", api_keys=[KEY], models=["kimi-k2.7-code", "kimi-k2.6"]) as server:
        yield server


def start_kimi_gateway(start_gateway: Any, kimi: FakeIflow, tmp_path: Path, model: str) -> GatewayProcess:
    """A gateway whose one account is Kimi, with every Claude model name sent as ``model``."""
    config = tmp_path / "kimi.toml"
    config.write_text(
        f'[[accounts]]\nlabel = "kimi"\nprovider = "moonshot"\n'
        f'base_url = "{kimi.base_url}"\napi_key = "{KEY}"\n'
    )
    env = {"IFLOW2API_CONFIG": str(config), "IFLOW2API_MODEL_ALIASES": f"claude-*={model}"}
    gateway: GatewayProcess = start_gateway(None, env)
    return gateway


def folders(tmp_path: Path, *names: str) -> list[Path]:
    made = [tmp_path / name for name in names]
    for folder in made:
        folder.mkdir()
    return made


def tool_turn(call_id: str, name: str, arguments: dict[str, Any]) -> Completion:
    return Completion(
        content="",
        reasoning="The shell can say it.",
        tool_calls=[clis.tool_call(call_id, name, arguments)],
        finish_reason="tool_calls",
    )


def run_turn(
    command: tuple[str, ...],
    work: Path,
    env: dict[str, str],
    gateway: GatewayProcess,
    kimi: FakeIflow,
    call_id: str,
) -> tuple[str, str]:
    """Run the CLI to its end: it printed the final text, and Kimi got back the reasoning of the
    turn that made ``call_id``. The tool's answer as the CLI sent it, and what to show on failure."""
    result = clis.run_cli(list(command), work, env)
    details = clis.explain(result, gateway, kimi)
    assert result.returncode == 0, details
    assert clis.FINAL_TEXT in result.stdout, details
    assert_reasoning_went_back(kimi, call_id, details)
    return str(clis.answered_tool_call(kimi, call_id)["content"]), details


def assert_reasoning_went_back(kimi: FakeIflow, call_id: str, details: str) -> None:
    assert all(r.rejected is None for r in kimi.received), details
    last = kimi.received[-1].body
    assert last is not None
    turns = [m for m in last["messages"] if any(c["id"] == call_id for c in m.get("tool_calls") or [])]
    assert [turn.get("reasoning_content") for turn in turns] == ["The shell can say it."], details


def test_claude_code_runs_a_bash_tool_turn_on_kimi(
    agent_clis: clis.AgentClis, start_gateway: Any, kimi: FakeIflow, proxy: clis.DeadEndProxy, tmp_path: Path
) -> None:
    gateway = start_kimi_gateway(start_gateway, kimi, tmp_path, "kimi-k2.7-code")
    home, work = folders(tmp_path, "home", "work")
    kimi.enqueue(
        tool_turn("call_kc_1", "Bash", {"command": "echo hi-from-claude-code"}),
        Completion(content=clis.FINAL_TEXT, reasoning="It worked."),
    )
    env = clis.base_env(home, proxy) | dict.fromkeys(QUIET_CLAUDE, "1")
    env |= {
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": "unused",
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
    }
    claude = (str(agent_clis.claude), "-p", PROMPT, "--allowedTools", "Bash", "--max-turns", "4")
    answer, details = run_turn(claude, work, env, gateway, kimi, "call_kc_1")
    assert answer == "hi-from-claude-code", details
    # kimi-k2.7-code always thinks: Claude Code asks for thinking, and no switch is sent for it.
    assert all(r.body is not None and "thinking" not in r.body for r in kimi.received), details


def test_codex_runs_an_exec_command_tool_turn_on_kimi(
    agent_clis: clis.AgentClis, start_gateway: Any, kimi: FakeIflow, proxy: clis.DeadEndProxy, tmp_path: Path
) -> None:
    gateway = start_kimi_gateway(start_gateway, kimi, tmp_path, "kimi-k2.6")
    home, work, codex_home = folders(tmp_path, "home", "work", "codex")
    # Inline tables: no plugin sync, apps, analytics or feedback, as test_agent_clis configures Codex.
    provider = (
        f'{{ name = "kimi", base_url = "{gateway.url}/v1", wire_api = "responses", env_key = "GW_KEY" }}'
    )
    (codex_home / "config.toml").write_text(
        'model = "kimi-k2.6"\nmodel_provider = "kimi"\nmodel_reasoning_effort = "high"\n'
        "check_for_update_on_startup = false\n"
        f"model_providers = {{ kimi = {provider} }}\n"
        "analytics = { enabled = false }\nfeedback = { enabled = false }\n"
        "features = { plugins = false, remote_plugin = false, plugin_sharing = false, apps = false }\n"
    )
    kimi.enqueue(
        tool_turn("call_kx_1", "exec_command", {"cmd": "echo hi-from-codex"}),
        Completion(content=clis.FINAL_TEXT, reasoning="It worked."),
    )
    env = clis.base_env(home, proxy) | {"CODEX_HOME": str(codex_home), "GW_KEY": "unused"}
    # No approval prompts and no sandbox: the one command is a harmless echo in a temp folder.
    unsandboxed = "--dangerously-bypass-approvals-and-sandbox"
    codex = (str(agent_clis.codex), "exec", "--skip-git-repo-check", unsandboxed, PROMPT)
    answer, details = run_turn(codex, work, env, gateway, kimi, "call_kx_1")
    assert "hi-from-codex" in answer, details
    first = kimi.received[0].body
    assert first is not None and first["thinking"] == {"type": "enabled"}, details

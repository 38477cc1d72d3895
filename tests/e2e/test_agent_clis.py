"""The real Claude Code and Codex CLIs through the gateway, one tool-using turn each, against the fake iFlow.

Both CLIs come from npm, pinned, installed once into ``.venv/node_tools`` (reused while the versions
match). Without Node.js and npm these tests skip; with ``CI=true`` a failed install fails them.

Each CLI runs configured as the README says, in a temporary HOME and working folder, with a time
limit and everything that phones home switched off. Its proxy is a local listener that answers
nothing and records what it was asked, and only 127.0.0.1 bypasses it: the tests assert the CLI
reached no other host.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayProcess, iflow_settings
from tests.fake_iflow import Completion, FakeIflow

pytestmark = [pytest.mark.node, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = ROOT / ".venv" / "node_tools"
PACKAGES = {"@anthropic-ai/claude-code": "2.1.197", "@openai/codex": "0.169.0"}
INSTALL_TIMEOUT = 300
RUN_TIMEOUT = 120
FINAL_TEXT = "All done: the command printed its greeting."


@dataclass(frozen=True)
class AgentClis:
    claude: Path
    codex: Path


def _installed_version(package: str) -> str | None:
    manifest = TOOLS_DIR / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def agent_clis(tmp_path_factory: pytest.TempPathFactory) -> AgentClis:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("Node.js and npm are needed to install the Claude Code and Codex CLIs")
    if any(_installed_version(package) != version for package, version in PACKAGES.items()):
        TOOLS_DIR.mkdir(parents=True, exist_ok=True)
        specs = [f"{package}@{version}" for package, version in PACKAGES.items()]
        try:
            result = subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(TOOLS_DIR),
                    "--no-audit",
                    "--no-fund",
                    "--save-exact",
                    *specs,
                ],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            _unavailable(f"npm install of {' '.join(specs)} took more than {INSTALL_TIMEOUT} s")
        if result.returncode != 0:
            _unavailable(f"npm install of {' '.join(specs)} failed:\n{result.stdout}\n{result.stderr}")
    clis = AgentClis(
        TOOLS_DIR / "node_modules" / ".bin" / "claude", TOOLS_DIR / "node_modules" / ".bin" / "codex"
    )
    # Even --version writes to the CLIs' home folders: keep them out of the user's.
    home = tmp_path_factory.mktemp("cli-version-home")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "CODEX_HOME": str(home)}
    env["CLAUDE_CONFIG_DIR"] = str(home / ".claude")
    for cli in (clis.claude, clis.codex):
        try:
            check = subprocess.run(
                [str(cli), "--version"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            _unavailable(f"{cli} does not run: {error}")
        if check.returncode != 0:
            _unavailable(f"{cli} --version failed:\n{check.stdout}\n{check.stderr}")
    return clis


class DeadEndProxy:
    """A proxy on 127.0.0.1 that records the first line of each request and hangs up."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.requests: list[str] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                try:
                    first_line = connection.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    first_line = b"(nothing read)"
                self.requests.append(first_line.decode(errors="replace"))

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._server.close()


@pytest.fixture
def proxy() -> Iterator[DeadEndProxy]:
    dead_end = DeadEndProxy()
    yield dead_end
    dead_end.close()


def base_env(home: Path, proxy: DeadEndProxy) -> dict[str, str]:
    """A minimal environment: no inherited keys or proxies; everything but loopback goes to ``proxy``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
    }
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    env["XDG_DATA_HOME"] = str(home / ".local" / "share")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = proxy.url
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run_cli(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{command[0]} ran longer than {RUN_TIMEOUT} s:\n{error.stdout!r}\n{error.stderr!r}")


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def script_one_tool_turn(fake: FakeIflow, call: dict[str, Any], reasoning: str | None = None) -> None:
    """The upstream's two answers to a CLI's tool turn: the tool call, then the final text."""
    fake.enqueue(
        Completion(content="", reasoning=reasoning, tool_calls=[call], finish_reason="tool_calls"),
        Completion(content=FINAL_TEXT),
    )


def explain(result: subprocess.CompletedProcess[str], gateway: GatewayProcess, fake: FakeIflow) -> str:
    bodies = [json.dumps(r.body)[-1500:] for r in fake.received]
    return (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
        f"gateway log:\n{gateway.log()}\nupstream requests (tails):\n" + "\n".join(bodies)
    )


def answered_tool_call(fake: FakeIflow, call_id: str) -> dict[str, Any]:
    """The ``tool`` message answering ``call_id`` in the last upstream request, after the assistant's call."""
    sent = fake.received[-1].body
    assert sent is not None
    messages = sent["messages"]
    calls = [i for i, m in enumerate(messages) if any(c["id"] == call_id for c in m.get("tool_calls") or [])]
    answers = [i for i, m in enumerate(messages) if m["role"] == "tool" and m.get("tool_call_id") == call_id]
    assert len(calls) == 1 and len(answers) == 1 and calls[0] < answers[0], messages[-3:]
    answer: dict[str, Any] = messages[answers[0]]
    return answer


def claude_env(home: Path, proxy: DeadEndProxy, gateway: GatewayProcess) -> dict[str, str]:
    """Claude Code's environment: the gateway as its API, nothing else it may phone."""
    return base_env(home, proxy) | {
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": "unused",
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


def claude_command(clis: AgentClis) -> list[str]:
    return [str(clis.claude), "-p", "Say hi from the shell.", "--allowedTools", "Bash", "--max-turns", "4"]


def codex_config(gateway: GatewayProcess, model: str, extra: str = "") -> str:
    """Codex's config.toml: the gateway as a Responses provider, and nothing that phones home."""
    return f"""model = "{model}"
model_provider = "iflow2api"
check_for_update_on_startup = false
{extra}
[model_providers.iflow2api]
name = "iflow2api"
base_url = "{gateway.url}/v1"
wire_api = "responses"
env_key = "IFLOW2API_KEY"

[analytics]
enabled = false

# No curated-plugin sync (a git clone from github.com) or apps/connectors at start-up.
[features]
plugins = false
remote_plugin = false
plugin_sharing = false
apps = false

[feedback]
enabled = false
"""


def codex_command(clis: AgentClis) -> list[str]:
    return [
        str(clis.codex),
        "exec",
        "--skip-git-repo-check",
        # No approval prompts and no sandbox: the one command is a harmless echo in a temp folder.
        "--dangerously-bypass-approvals-and-sandbox",
        "Say hi from the shell.",
    ]


def ran_one_tool_turn(
    result: subprocess.CompletedProcess[str], gateway: GatewayProcess, fake: FakeIflow
) -> str:
    """Checks that the CLI ended well after two upstream requests (the tool call, the answer to its
    result); returns the details to show when a later check fails."""
    details = explain(result, gateway, fake)
    assert result.returncode == 0, details
    assert FINAL_TEXT in result.stdout, details
    assert len(fake.received) == 2, details
    return details


def test_claude_code_runs_a_bash_tool_turn(
    agent_clis: AgentClis, start_gateway: Any, fake: FakeIflow, proxy: DeadEndProxy, tmp_path: Path
) -> None:
    gateway: GatewayProcess = start_gateway(iflow_settings(fake))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    script_one_tool_turn(fake, tool_call("call_cc_1", "Bash", {"command": "echo hi-from-claude-code"}))
    result = run_cli(claude_command(agent_clis), work, claude_env(home, proxy, gateway))
    details = ran_one_tool_turn(result, gateway, fake)
    assert answered_tool_call(fake, "call_cc_1")["content"] == "hi-from-claude-code", details
    first = fake.received[0].body
    assert first is not None and first["model"] in fake.models
    assert "Bash" in [tool["function"]["name"] for tool in first["tools"]]


def test_codex_runs_an_exec_command_tool_turn(
    agent_clis: AgentClis, start_gateway: Any, fake: FakeIflow, proxy: DeadEndProxy, tmp_path: Path
) -> None:
    gateway: GatewayProcess = start_gateway(iflow_settings(fake))
    home, work, codex_home = tmp_path / "home", tmp_path / "work", tmp_path / "codex"
    for folder in (home, work, codex_home):
        folder.mkdir()
    (codex_home / "config.toml").write_text(codex_config(gateway, "glm-4.7"))
    script_one_tool_turn(fake, tool_call("call_cx_1", "exec_command", {"cmd": "echo hi-from-codex"}))
    env = base_env(home, proxy) | {"CODEX_HOME": str(codex_home), "IFLOW2API_KEY": "unused"}
    result = run_cli(codex_command(agent_clis), work, env)
    details = ran_one_tool_turn(result, gateway, fake)
    assert "hi-from-codex" in answered_tool_call(fake, "call_cx_1")["content"], details
    first = fake.received[0].body
    assert first is not None and first["model"] == "glm-4.7"
    assert "exec_command" in [tool["function"]["name"] for tool in first["tools"]]

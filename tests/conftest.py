"""Fixtures: the fake iFlow server, an iFlow home folder, and the real gateway as a subprocess.

The gateway runs exactly as a user runs it (``python -m iflow2api serve``), on a port the OS picks,
and talks to the fake over loopback. When it fails to start, its log is in the error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_iflow import DEFAULT_KEY, FakeIflow

#: ``redis_server`` / ``redis_url``: a private redis-server for the tests of several instances;
#: ``postgres_server`` / ``postgres_url``: a private PostgreSQL, a fresh database per test.
pytest_plugins = ("tests.redis_server", "tests.pg_server")

LISTENING = re.compile(r"listening on (http://\S+)/v1")


@pytest.fixture(autouse=True, scope="session")
def private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test, and every process it starts, gets a home folder of its own.

    Commands such as ``iflow2api login`` default to ``~/.iflow2api``: without this, a test run
    would read and write the developer's real state. npm keeps its real cache, so the agent CLIs
    are not downloaded again.
    """
    real_home = Path.home()
    saved = {name: os.environ.get(name) for name in ("HOME", "npm_config_cache")}
    os.environ.setdefault("npm_config_cache", str(real_home / ".npm"))
    os.environ["HOME"] = str(tmp_path_factory.mktemp("home"))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class LoggedProcess:
    """A server started as a subprocess: waits for the line that says it listens (``started``),
    then keeps reading what it prints, for ``log()``; when it fails to start, its output is in
    the error."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], started: re.Pattern[str]) -> None:
        self._lines: list[str] = []
        self.process = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.started = self._wait_for(started)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _wait_for(self, started: re.Pattern[str]) -> re.Match[str]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self._lines.append(line)
            match = started.search(line)
            if match:
                return match
        self.process.kill()
        self.process.wait()
        self.process.stdout.close()
        raise RuntimeError(f"{self.process.args!r} did not start:\n" + "".join(self._lines))

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.append(line)

    def log(self) -> str:
        return "".join(self._lines)

    def log_matching(self, pattern: str, count: int = 1, timeout: float = 10) -> str:
        """The log once ``pattern`` is in it ``count`` times: the server writes its lines from a
        thread of their own, a moment after the request that logged them has been answered. Lines
        are written in the order they were logged, so once a request's own line is in, whatever
        was logged before it is too."""
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, log := self.log())) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"not {count} lines matching {pattern!r} in the log:\n{log}")
            time.sleep(0.02)
        return log

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


class GatewayProcess(LoggedProcess):
    """A running ``iflow2api serve``; ``url`` is its root, ``log()`` what it printed so far."""

    def __init__(
        self,
        iflow_home: Path,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        module: str = "iflow2api",
        args: Sequence[str] = (),
    ) -> None:
        """``module``: what ``python -m`` runs (a test's wrapper of the command, see
        ``tests.e2e.profiled_gateway``); ``args``: more flags for ``serve`` (``--workers 2``)."""
        self.iflow_home = iflow_home
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))},
            "IFLOW_HOME": str(iflow_home),
            "IFLOW2API_DATA_DIR": str(data_dir),
            "IFLOW2API_LOG_LEVEL": "info",
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        argv = [sys.executable, "-m", module, "serve", "--host", "127.0.0.1", "--port", "0", *args]
        super().__init__(argv, full_env, LISTENING)
        self.url = self.started.group(1)

    def reset_accounts(self) -> None:
        """Lift every cooldown and quarantine (the page's reset), so tests do not leak into each other."""
        listing = httpx.get(self.url + "/api/accounts", timeout=5).json()
        for account in listing["accounts"]:
            if account["state"] in ("cooling", "quarantined"):
                httpx.post(
                    self.url + "/api/accounts/action",
                    json={"id": account["id"], "action": "reset"},
                    timeout=5,
                ).raise_for_status()

    def wait_for_health(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the gateway never became healthy:\n" + self.log())


def write_settings(iflow_home: Path, settings: dict[str, Any]) -> None:
    iflow_home.mkdir(parents=True, exist_ok=True)
    temp = iflow_home / "settings.json.tmp"
    temp.write_text(json.dumps(settings, indent=2))
    temp.replace(iflow_home / "settings.json")


def iflow_settings(fake: FakeIflow, key: str = DEFAULT_KEY) -> dict[str, Any]:
    return {"selectedAuthType": "iflow", "apiKey": key, "baseUrl": fake.base_url, "modelName": "glm-4.7"}


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeIflow]:
    with FakeIflow() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeIflow) -> FakeIflow:
    fake_server.reset()
    return fake_server


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeIflow) -> Path:
    home = tmp_path_factory.mktemp("iflow-home")
    write_settings(home, iflow_settings(fake_server))
    return home


@pytest.fixture(scope="session")
def gateway_process(tmp_path_factory: pytest.TempPathFactory, shared_home: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(shared_home, tmp_path_factory.mktemp("data"))
    process.wait_for_health()
    yield process
    process.stop()


@pytest.fixture
def gateway(gateway_process: GatewayProcess, fake: FakeIflow, shared_home: Path) -> GatewayProcess:
    """The shared gateway, talking to a freshly reset fake, with the default iFlow settings."""
    write_settings(shared_home, iflow_settings(fake))
    gateway_process.reset_accounts()
    return gateway_process


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Any]:
    """Start a gateway of the test's own, with its own settings; stopped after the test."""
    started: list[GatewayProcess] = []

    def start(
        settings: dict[str, Any] | None, env: Mapping[str, str] | None = None, module: str = "iflow2api"
    ) -> GatewayProcess:
        home = tmp_path / f"iflow-{len(started)}"
        home.mkdir()
        if settings is not None:
            write_settings(home, settings)
        process = GatewayProcess(home, tmp_path / f"data-{len(started)}", env, module)
        started.append(process)
        process.wait_for_health()
        return process

    yield start
    for process in started:
        process.stop()

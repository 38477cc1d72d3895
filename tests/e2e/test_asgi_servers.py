"""The gateway under a plain ASGI server: ``iflow2api.app:app`` and ``create_app`` as a factory."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import LoggedProcess, iflow_settings, write_settings
from tests.fake_iflow import DEFAULT_CONTENT, FakeIflow

RUNNING = re.compile(r"Uvicorn running on (http://\S+):(\d+)")
#: The original project's documented way (README), with port 0 so the OS picks one.
RUN_APP = "import uvicorn; from iflow2api.app import app; uvicorn.run(app, host='{host}', port=0)"


class Server(LoggedProcess):
    """A plain uvicorn serving the gateway; ``port`` is where it listens."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        super().__init__(argv, env, RUNNING)
        self.port = int(self.started.group(2))


def _env(tmp_path: Path, fake: FakeIflow) -> dict[str, str]:
    home = tmp_path / "home"
    write_settings(home, iflow_settings(fake))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update(
        {
            "IFLOW_HOME": str(home),
            "IFLOW2API_DATA_DIR": str(tmp_path / "data"),
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@pytest.fixture
def serve() -> Iterator[type[Server]]:
    started: list[Server] = []

    class Tracked(Server):
        def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
            super().__init__(argv, env)
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()


def _chat(port: int, host: str = "127.0.0.1") -> str | None:
    client = openai.OpenAI(base_url=f"http://{host}:{port}/v1", api_key="unused", max_retries=0, timeout=20)
    answer = client.chat.completions.create(model="glm-4.7", messages=[{"role": "user", "content": "hi"}])
    return answer.choices[0].message.content


def test_the_documented_uvicorn_run_of_app_works(
    serve: type[Server], tmp_path: Path, fake: FakeIflow
) -> None:
    server = serve([sys.executable, "-c", RUN_APP.format(host="127.0.0.1")], _env(tmp_path, fake))
    assert _chat(server.port) == DEFAULT_CONTENT
    assert (tmp_path / "data" / "state.sqlite3").exists()  # built from the environment's settings


def test_uvicorn_factory_create_app_works(serve: type[Server], tmp_path: Path, fake: FakeIflow) -> None:
    argv = [sys.executable, "-m", "uvicorn", "--factory", "iflow2api.app:create_app", "--port", "0"]
    server = serve(argv, _env(tmp_path, fake))
    assert _chat(server.port) == DEFAULT_CONTENT


def test_the_config_file_is_read_too(serve: type[Server], tmp_path: Path, fake: FakeIflow) -> None:
    env = _env(tmp_path, fake)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "config.toml").write_text('api_keys = ["from-the-config-file"]\n')
    argv = [sys.executable, "-m", "uvicorn", "--factory", "iflow2api.app:create_app", "--port", "0"]
    server = serve(argv, env)
    url = f"http://127.0.0.1:{server.port}/v1/models"
    assert httpx.get(url, timeout=10).status_code == 401
    good = httpx.get(url, headers={"authorization": "Bearer from-the-config-file"}, timeout=10)
    assert good.status_code == 200


def test_importing_the_app_does_no_work(tmp_path: Path) -> None:
    data = tmp_path / "never-made"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update({"IFLOW2API_DATA_DIR": str(data), "IFLOW2API_PORT": "not a port"})
    code = "from iflow2api.app import app; print(callable(app))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert not data.exists()


def test_a_bad_setting_stops_the_server_with_its_name(tmp_path: Path, fake: FakeIflow) -> None:
    env = {**_env(tmp_path, fake), "IFLOW2API_QUEUE_SIZE": "lots"}
    result = subprocess.run(
        [sys.executable, "-c", RUN_APP.format(host="127.0.0.1")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "queue_size" in output and "IFLOW2API_QUEUE_SIZE" in output
    assert "Traceback" not in output


def _outside_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; this only picks a source address
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_without_keys_only_this_machine_is_served_on_a_wide_address(
    serve: type[Server], tmp_path: Path, fake: FakeIflow
) -> None:
    # uvicorn was told 0.0.0.0, which the gateway's own host setting knows nothing of.
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no address but loopback")
    server = serve([sys.executable, "-c", RUN_APP.format(host="0.0.0.0")], _env(tmp_path, fake))
    assert _chat(server.port) == DEFAULT_CONTENT
    refused = httpx.get(f"http://{outside}:{server.port}/v1/models", timeout=10)
    assert refused.status_code == 403
    assert "iflow2api keys create" in refused.json()["error"]["message"]


def test_the_app_is_one_object_however_often_it_is_imported() -> None:
    # Two gateways on the same state files would each hold their own pool, keys and usage.
    import iflow2api.app as module
    from iflow2api.app import app

    assert module.app is app
    assert module.app is module.app

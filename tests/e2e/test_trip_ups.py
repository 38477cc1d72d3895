"""Small things a user trips on, as a user meets them: ``models`` against an upstream that does not
answer, and mistakes in ``settings.json``."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayProcess, write_settings
from tests.e2e.test_cli import run
from tests.fake_iflow import DEFAULT_KEY


@pytest.fixture
def silent_upstream() -> Iterator[str]:
    """A base URL whose host takes the connection and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


def openai_compatible(base_url: str) -> dict[str, str]:
    return {"selectedAuthType": "openai-compatible", "baseUrl": base_url, "apiKey": DEFAULT_KEY}


def test_models_gives_up_on_a_silent_upstream_within_first_byte_timeout(
    tmp_path: Path, silent_upstream: str
) -> None:
    write_settings(tmp_path, openai_compatible(silent_upstream))
    started = time.monotonic()
    result = run(tmp_path, "models", "--first-byte-timeout", "1", env={"NO_PROXY": "127.0.0.1"})
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert f"{silent_upstream}/models" in result.stderr
    assert "did not answer within 1 s (setting first_byte_timeout)" in result.stderr
    assert result.stdout == ""
    assert DEFAULT_KEY not in result.stdout + result.stderr


def test_models_names_an_upstream_that_refuses_the_connection(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"  # bound, not listening: refused
        write_settings(tmp_path, openai_compatible(closed))
        result = run(tmp_path, "models", env={"NO_PROXY": "127.0.0.1"})
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {closed}/models: Upstream:")


BROKEN = """{
  "selectedAuthType": "openai-compatible",
  /* the key,
     from the provider page */
  "apiKey": "KEY"
  "baseUrl": "http://127.0.0.1:9/v1"
}
""".replace("KEY", DEFAULT_KEY)


def test_status_points_at_the_json_mistake(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "settings.json").write_text(BROKEN)
    result = run(tmp_path, "status")
    assert result.returncode == 1
    # The missing comma after the key: line 6, where "baseUrl" starts (the comment kept in place).
    assert "settings.json is not valid JSON" in result.stdout
    assert "at line 6 column 3" in result.stdout
    assert DEFAULT_KEY[4:] not in result.stdout + result.stderr


def test_status_names_the_missing_base_url(tmp_path: Path) -> None:
    write_settings(tmp_path, {"selectedAuthType": "openai-compatible", "apiKey": DEFAULT_KEY})
    result = run(tmp_path, "status")
    assert result.returncode == 1
    assert 'selectedAuthType is "openai-compatible" but baseUrl is missing' in result.stdout
    assert "apiKey is missing" not in result.stdout
    assert DEFAULT_KEY[4:] not in result.stdout + result.stderr


def test_the_gateway_logs_both_mistakes(start_gateway: Any) -> None:
    gateway: GatewayProcess = start_gateway({"selectedAuthType": "openai-compatible", "apiKey": DEFAULT_KEY})
    gateway.log_matching(r'"openai-compatible" but baseUrl is missing .*; that account is not used')
    (gateway.iflow_home / "settings.json").write_text(BROKEN)
    httpx.get(gateway.url + "/health", timeout=5)  # the files are looked at when an account is needed
    log = gateway.log_matching(r"settings\.json is not valid JSON: .* at line 6 column 3")
    assert DEFAULT_KEY[4:] not in log

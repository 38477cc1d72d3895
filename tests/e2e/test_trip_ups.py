"""Small things a user trips on, as a user meets them: ``models`` against an upstream that does not
answer, and mistakes in ``settings.json``."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_settings
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

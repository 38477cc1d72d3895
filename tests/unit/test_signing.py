"""§2: the request signature and the exact chat headers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from iflow2api.providers.iflow import rules as iflow
from iflow2api.upstream import signing

KEY = "sk-0123456789abcdef0123456789abcdef"
SESSION = "session-00000000-0000-4000-8000-000000000000"
TIMESTAMP = 1700000000000
# The protocol doc's test vector (§2), computed with both Python and Node.
VECTOR = "1d5a5e8d4f42711197dfd53c8c3440921c8edb2bffaffa2535f5809ffff513c1"


def test_signature_matches_the_protocol_test_vector() -> None:
    assert signing.USER_AGENT == "iFlow-Cli"
    assert signing.sign("iFlow-Cli", SESSION, TIMESTAMP, KEY) == VECTOR


@pytest.mark.parametrize(
    ("user_agent", "session_id", "timestamp_ms", "api_key"),
    [
        ("iFlow-Cli-MultimodalHelper", SESSION, TIMESTAMP, KEY),
        ("iFlow-Cli", "00000000-0000-4000-8000-000000000000", TIMESTAMP, KEY),  # without "session-"
        ("iFlow-Cli", SESSION, TIMESTAMP + 1, KEY),
        ("iFlow-Cli", SESSION, TIMESTAMP, KEY.upper()),
    ],
)
def test_every_part_is_signed(user_agent: str, session_id: str, timestamp_ms: int, api_key: str) -> None:
    signature = signing.sign(user_agent, session_id, timestamp_ms, api_key)
    assert re.fullmatch(r"[0-9a-f]{64}", signature)
    assert signature != VECTOR


def test_headers_are_exactly_the_clis() -> None:
    assert iflow.build_headers(KEY, SESSION, "conv-1", TIMESTAMP) == {
        "content-type": "application/json",
        "authorization": f"Bearer {KEY}",
        "user-agent": "iFlow-Cli",
        "session-id": SESSION,
        "conversation-id": "conv-1",
        "x-iflow-signature": VECTOR,
        "x-iflow-timestamp": "1700000000000",
    }


def test_no_signature_without_a_key() -> None:
    assert iflow.build_headers("", "", "", TIMESTAMP) == {
        "content-type": "application/json",
        "authorization": "Bearer ",
        "user-agent": "iFlow-Cli",
        "session-id": "",
        "conversation-id": "",
    }


def test_session_ids_look_like_the_clis() -> None:
    first, second = iflow.new_session_id(), iflow.new_session_id()
    uuid4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert re.fullmatch(f"session-{uuid4}", first)
    assert first != second


def imported_modules(module_file: str | None) -> set[str]:
    assert module_file is not None
    tree = ast.parse(Path(module_file).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0] if node.level == 0 else "." + node.module)
    return names


def test_signing_imports_nothing_but_hashing() -> None:
    assert imported_modules(signing.__file__) == {"__future__", "hashlib", "hmac"}


def test_the_iflow_speaker_does_no_io() -> None:
    assert imported_modules(iflow.__file__).isdisjoint(
        {"aiohttp", "asyncio", "os", "socket", "httpx", "time"}
    )

"""Which conversation a request belongs to: named by a header, or recognised by how it began."""

from __future__ import annotations

from typing import Any

import pytest

from iflow2api.affinity import session_key

SYSTEM = {"role": "system", "content": "You are terse."}
HELLO = {"role": "user", "content": "Hello"}


def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http", "headers": list(headers)}


def chat(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"model": "glm-4.7", "messages": list(messages)}


@pytest.mark.parametrize("name", [b"session_id", b"x-session-id", b"conversation_id", b"x-conversation-id"])
def test_a_session_header_names_the_conversation(name: bytes) -> None:
    key = session_key(scope((name, b"thread-42")), chat(HELLO))
    assert key is not None and key.startswith("h:")
    assert "thread-42" not in key
    # The header wins over the messages, whatever they are.
    assert session_key(scope((name, b"thread-42")), chat(SYSTEM, {"role": "user", "content": "Other"})) == key
    assert session_key(scope((name, b"thread-43")), chat(HELLO)) != key


def test_the_same_header_value_is_the_same_session_whichever_header_carries_it() -> None:
    assert session_key(scope((b"session_id", b"s")), chat()) == session_key(
        scope((b"x-session-id", b"s")), chat()
    )


def test_an_empty_header_falls_back_to_the_messages() -> None:
    assert session_key(scope((b"session_id", b"")), chat(HELLO)) == session_key(scope(), chat(HELLO))


def test_a_conversation_keeps_its_key_across_turns() -> None:
    first = session_key(scope(), chat(SYSTEM, HELLO))
    later = session_key(
        scope(),
        chat(
            SYSTEM,
            HELLO,
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "And now?"},
            {"role": "assistant", "content": "Still here."},
            {"role": "user", "content": "Bye"},
        ),
    )
    assert first is not None and first.startswith("m:")
    assert later == first


def test_different_openings_are_different_conversations() -> None:
    keys = {
        session_key(scope(), chat(HELLO)),
        session_key(scope(), chat({"role": "user", "content": "Goodbye"})),
        session_key(scope(), chat(SYSTEM, HELLO)),
        session_key(scope(), chat({"role": "developer", "content": "You are verbose."}, HELLO)),
    }
    assert len(keys) == 4 and None not in keys


def test_content_parts_and_plain_text_are_the_same_opening() -> None:
    parts = {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]}
    assert session_key(scope(), chat(parts)) == session_key(scope(), chat(HELLO))


@pytest.mark.parametrize(
    "request_body",
    [
        {"model": "glm-4.7"},
        chat(),
        {"model": "glm-4.7", "messages": None},
        chat({"role": "assistant", "content": "Hi"}),
        {"model": "glm-4.7", "messages": ["not a message"]},
    ],
)
def test_no_opening_no_session(request_body: dict[str, Any]) -> None:
    assert session_key(scope(), request_body) is None

"""Streamed tool calls reach clients only once their id and name are known (issue 9, section 3).

Upstreams split a call's first fragment differently: OpenAI sends id and name together, some send
the id first and the name in the next chunk (or the other way round), and parallel calls may
interleave by ``index``. The literal chunk sequences below are those shapes; each dialect must give
the client a call whose id and name are the upstream's, never an empty name.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import orjson

from iflow2api.dialects.anthropic import stream as anthropic_dialect
from iflow2api.dialects.responses import request as responses_request
from iflow2api.dialects.responses import stream as responses_stream
from tests.unit.test_responses import through_sdk

READ: Any = {
    "name": "Read",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
}


def chunk(*fragments: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {"tool_calls": list(fragments)} if fragments else {}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "glm-4.7",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def piece(
    index: int, *, id: str | None = None, name: str | None = None, arguments: str | None = None
) -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index}
    if id is not None:
        fragment.update(id=id, type="function")
    function = {key: value for key, value in (("name", name), ("arguments", arguments)) if value is not None}
    return {**fragment, "function": function}


END = chunk(finish_reason="tool_calls")

ID_THEN_NAME = [
    chunk(piece(0, id="call_1", arguments="")),
    chunk(piece(0, name="Read")),
    chunk(piece(0, arguments='{"path":')),
    chunk(piece(0, arguments=' "a.py"}')),
    END,
]
NAME_THEN_ID = [
    chunk(piece(0, name="Read", arguments="")),
    chunk(piece(0, id="call_1")),
    chunk(piece(0, arguments='{"path": "a.py"}')),
    END,
]
ARGUMENTS_BEFORE_NAME = [
    chunk(piece(0, id="call_1", arguments='{"path":')),
    chunk(piece(0, arguments=' "a.py"}')),
    chunk(piece(0, name="Read")),
    END,
]
# Two calls, each announced by id first, their names and arguments interleaved by index.
INTERLEAVED = [
    chunk(piece(0, id="call_a"), piece(1, id="call_b")),
    chunk(piece(1, name="Grep")),
    chunk(piece(0, name="Read")),
    chunk(piece(1, arguments='{"pattern": "x"}')),
    chunk(piece(0, arguments='{"path": "a.py"}')),
    END,
]
ONE_CALL = [("call_1", "Read", {"path": "a.py"})]


# ---------------------------------------------------------------------------------------------
# Anthropic


def anthropic_frames(chunks: list[dict[str, Any]]) -> list[bytes]:
    translator = anthropic_dialect.StreamTranslator(model="claude-x", message_id="msg_1")
    frames = [frame for piece in chunks for frame in translator.feed(piece)]
    return frames + translator.finish()


def anthropic_events(frames: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(frame.split(b"\ndata: ", 1)[1]) for frame in frames]


def claude_message(frames: list[bytes]) -> anthropic.types.Message:
    """What the anthropic SDK assembles from the frames."""
    body = b"".join(frames)

    def answer(_: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with (
        anthropic.Anthropic(
            api_key="test",
            base_url="http://gateway.test",
            max_retries=0,
            http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
            _strict_response_validation=True,
        ) as client,
        client.messages.stream(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "x"}], tools=[READ]
        ) as stream,
    ):
        return stream.get_final_message()


def tool_starts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        event["content_block"]
        for event in events
        if event["type"] == "content_block_start" and event["content_block"]["type"] == "tool_use"
    ]


def claude_calls(chunks: list[dict[str, Any]]) -> list[tuple[str, str, object]]:
    frames = anthropic_frames(chunks)
    starts = tool_starts(anthropic_events(frames))
    message = claude_message(frames)
    calls: list[tuple[str, str, object]] = [
        (block.id, block.name, block.input) for block in message.content if block.type == "tool_use"
    ]
    # What the block announced is what the SDK ends with: Claude Code acts on content_block_start.
    assert [(start["id"], start["name"]) for start in starts] == [(call[0], call[1]) for call in calls]
    assert message.stop_reason == "tool_use"
    return calls


def test_anthropic_id_first_name_next() -> None:
    assert claude_calls(ID_THEN_NAME) == ONE_CALL


def test_anthropic_name_first_id_next() -> None:
    assert claude_calls(NAME_THEN_ID) == ONE_CALL


def test_anthropic_arguments_held_until_the_name_come_in_one_delta() -> None:
    assert claude_calls(ARGUMENTS_BEFORE_NAME) == ONE_CALL
    events = anthropic_events(anthropic_frames(ARGUMENTS_BEFORE_NAME))
    deltas = [event["delta"] for event in events if event["type"] == "content_block_delta"]
    assert deltas == [{"type": "input_json_delta", "partial_json": '{"path": "a.py"}'}]


def test_anthropic_interleaved_calls() -> None:
    assert claude_calls(INTERLEAVED) == [
        ("call_b", "Grep", {"pattern": "x"}),
        ("call_a", "Read", {"path": "a.py"}),
    ]


def test_anthropic_nothing_of_a_call_is_sent_before_its_name() -> None:
    translator = anthropic_dialect.StreamTranslator(model="claude-x", message_id="msg_1")
    translator.feed(chunk(piece(0, id="call_1", arguments="")))
    assert translator.feed(chunk(piece(0, arguments='{"path":'))) == []
    (start, delta) = anthropic_events(translator.feed(chunk(piece(0, name="Read"))))
    assert start["content_block"] == {"type": "tool_use", "id": "call_1", "name": "Read", "input": {}}
    assert delta["delta"] == {"type": "input_json_delta", "partial_json": '{"path":'}


def test_anthropic_a_call_that_never_got_an_id_is_sent_at_the_end() -> None:
    calls = claude_calls([chunk(piece(0, name="Read", arguments='{"path": "a.py"}')), END])
    [(call_id, name, arguments)] = calls
    assert call_id.startswith("toolu_") and (name, arguments) == ("Read", {"path": "a.py"})


# ---------------------------------------------------------------------------------------------
# Responses


def responses_frames(chunks: list[dict[str, Any]]) -> list[bytes]:
    request = responses_request.parse_request(
        json.dumps(
            {
                "model": "glm-4.7",
                "input": "hi",
                "stream": True,
                "tools": [{"type": "function", "name": "Read", "parameters": {"type": "object"}}],
            }
        ).encode()
    )
    translator = responses_stream.StreamTranslator(request=request, response_id="resp_1", created_at=1)
    frames: list[bytes] = []
    for item in chunks:
        frames += translator.feed(item)
    return frames + translator.finish()


def responses_calls(chunks: list[dict[str, Any]]) -> list[tuple[str, str, object]]:
    frames = responses_frames(chunks)
    events = [orjson.loads(frame.split(b"\ndata: ", 1)[1]) for frame in frames]
    added = [
        (event["item"]["call_id"], event["item"]["name"])
        for event in events
        if event["type"] == "response.output_item.added" and event["item"]["type"] == "function_call"
    ]
    _, final = through_sdk(frames)
    assert final is not None, "the stream did not complete"
    calls = [
        (item.call_id, item.name, json.loads(item.arguments))
        for item in final.output
        if item.type == "function_call"
    ]
    assert added == [(call[0], call[1]) for call in calls]
    return calls


def test_responses_id_first_name_next() -> None:
    assert responses_calls(ID_THEN_NAME) == ONE_CALL


def test_responses_name_first_id_next() -> None:
    assert responses_calls(NAME_THEN_ID) == ONE_CALL


def test_responses_arguments_before_the_name() -> None:
    assert responses_calls(ARGUMENTS_BEFORE_NAME) == ONE_CALL

"""Anthropic Messages ⇄ OpenAI chat: requests, answers, streams and errors, checked with the real SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types import (
    ErrorResponse,
    Message,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)

from iflow2api.dialects.aliases import DEFAULT_ALIASES, resolve_model
from iflow2api.dialects.anthropic.answer import from_chat_completion
from iflow2api.dialects.anthropic.errors import error_body, error_status
from iflow2api.dialects.anthropic.request import parse_request
from iflow2api.dialects.anthropic.stream import StreamTranslator
from iflow2api.dialects.anthropic.to_chat import to_chat_request
from iflow2api.errors import (
    AccountBlocked,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    NotLoggedIn,
    PayloadTooLarge,
    QueueFull,
    UpstreamAuthError,
    UpstreamConcurrencyLimited,
    UpstreamError,
    UpstreamModelError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

DATA = Path(__file__).parent.parent / "data" / "anthropic"
USER = [{"role": "user", "content": "hi"}]
BASE = {"model": "glm-4.7", "max_tokens": 1024, "stream": False}
READ_TOOL = {
    "name": "Read",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}
READ_FUNCTION = {
    "type": "function",
    "function": {
        "name": "Read",
        "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def translated(request: dict[str, Any]) -> dict[str, Any]:
    return to_chat_request(parse_request(orjson.dumps(request)), model="glm-4.7")


# ---------------------------------------------------------------------------------------------
# Requests: (id, the Anthropic request's fields besides model/max_tokens, the OpenAI body besides BASE)

REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("a string turn", {"messages": USER}, {"messages": USER}),
    (
        "system string first",
        {"system": "Be brief.", "messages": USER},
        {"messages": [{"role": "system", "content": "Be brief."}, *USER]},
    ),
    (
        "system text blocks joined, cache_control ignored",
        {
            "system": [
                {"type": "text", "text": "You are Claude Code."},
                {"type": "text", "text": "Use tools.", "cache_control": {"type": "ephemeral"}},
            ],
            "messages": USER,
        },
        {"messages": [{"role": "system", "content": "You are Claude Code.\n\nUse tools."}, *USER]},
    ),
    ("an empty system is left out", {"system": [], "messages": USER}, {"messages": USER}),
    (
        "a system turn inside messages",
        {"messages": [{"role": "system", "content": [{"type": "text", "text": "Mind the tests."}]}, *USER]},
        {"messages": [{"role": "system", "content": "Mind the tests."}, *USER]},
    ),
    (
        "user text blocks joined",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "<system-reminder>cwd is /w</system-reminder>"},
                        {"type": "text", "text": "fix it", "cache_control": {"type": "ephemeral"}},
                    ],
                }
            ]
        },
        {"messages": [{"role": "user", "content": "<system-reminder>cwd is /w</system-reminder>\n\nfix it"}]},
    ),
    (
        "images: base64 becomes a data URL, url stays a URL",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "compare"},
                        {"type": "image", "source": PNG},
                        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
                    ],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "compare"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                    ],
                }
            ]
        },
    ),
    (
        "plain-text documents are text",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                        },
                        {
                            "type": "document",
                            "source": {"type": "content", "content": [{"type": "text", "text": "more"}]},
                        },
                        {"type": "text", "text": "summarise"},
                    ],
                }
            ]
        },
        {"messages": [{"role": "user", "content": "notes\n\nmore\n\nsummarise"}]},
    ),
    (
        "assistant thinking, text and tool_use; redacted thinking dropped",
        {
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Need the file.", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "Reading it."},
                        {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a.py"}},
                        {"type": "tool_use", "id": "call_2", "name": "Read", "input": {"path": "文件.md"}},
                    ],
                },
            ]
        },
        {
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "content": "Reading it.",
                    "reasoning_content": "Need the file.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "Read", "arguments": '{"path":"a.py"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "Read", "arguments": '{"path":"文件.md"}'},
                        },
                    ],
                },
            ]
        },
    ),
    (
        "assistant pieces joined as one answer; only tool calls means null content",
        {
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "a", "signature": ""},
                        {"type": "text", "text": "one "},
                        {"type": "thinking", "thinking": "b", "signature": ""},
                        {"type": "text", "text": "two"},
                    ],
                },
                {"role": "user", "content": "and?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "c", "name": "Ls", "input": {}}],
                },
            ]
        },
        {
            "messages": [
                *USER,
                {"role": "assistant", "content": "one two", "reasoning_content": "ab"},
                {"role": "user", "content": "and?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "Ls", "arguments": "{}"}}
                    ],
                },
            ]
        },
    ),
    (
        "consecutive turns of one role are one turn, as Anthropic combines them",
        {
            "messages": [
                {"role": "user", "content": "list"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "ls", "signature": ""}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Listing."}]},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "a", "name": "Ls", "input": {}}],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "b", "name": "Ls", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "x.py"}]},
                {"role": "user", "content": "and b?"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "b", "content": "y.py"}]},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "list"},
                {
                    "role": "assistant",
                    "content": "Listing.",
                    "reasoning_content": "ls",
                    "tool_calls": [
                        {"id": "a", "type": "function", "function": {"name": "Ls", "arguments": "{}"}},
                        {"id": "b", "type": "function", "function": {"name": "Ls", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "a", "content": "x.py"},
                {"role": "tool", "tool_call_id": "b", "content": "y.py"},
                {"role": "user", "content": "and b?"},
            ]
        },
    ),
    (
        "tool results become tool messages before the turn's text, errors marked",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "both done?"},
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "print('a')"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": "No such file",
                            "is_error": True,
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_3",
                            "content": [
                                {"type": "text", "text": "line 1"},
                                {"type": "text", "text": "line 2"},
                            ],
                            "is_error": False,
                        },
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_4",
                            "content": "Error: exit 1",
                            "is_error": True,
                        },
                        {"type": "tool_result", "tool_use_id": "call_5", "is_error": True},
                        {"type": "tool_result", "tool_use_id": "call_6"},
                    ],
                }
            ]
        },
        {
            "messages": [
                {"role": "tool", "tool_call_id": "call_1", "content": "print('a')"},
                {"role": "tool", "tool_call_id": "call_2", "content": "Error: No such file"},
                {"role": "tool", "tool_call_id": "call_3", "content": "line 1\n\nline 2"},
                {"role": "tool", "tool_call_id": "call_4", "content": "Error: exit 1"},
                {"role": "tool", "tool_call_id": "call_5", "content": "Error"},
                {"role": "tool", "tool_call_id": "call_6", "content": ""},
                {"role": "user", "content": "both done?"},
            ]
        },
    ),
    (
        "an image in a tool result follows in a user message",
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_1",
                            "content": [
                                {"type": "text", "text": "screenshot:"},
                                {"type": "image", "source": PNG},
                            ],
                        }
                    ],
                }
            ]
        },
        {
            "messages": [
                {"role": "tool", "tool_call_id": "call_1", "content": "screenshot:"},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
                    ],
                },
            ]
        },
    ),
    ("tools", {"messages": USER, "tools": [READ_TOOL]}, {"messages": USER, "tools": [READ_FUNCTION]}),
    (
        "a tool without description",
        {"messages": USER, "tools": [{"name": "Ls", "input_schema": {"type": "object"}, "type": "custom"}]},
        {
            "messages": USER,
            "tools": [{"type": "function", "function": {"name": "Ls", "parameters": {"type": "object"}}}],
        },
    ),
    (
        "tool_choice auto",
        {"messages": USER, "tools": [READ_TOOL], "tool_choice": {"type": "auto"}},
        {"messages": USER, "tools": [READ_FUNCTION], "tool_choice": "auto"},
    ),
    (
        "tool_choice any, one call at a time",
        {
            "messages": USER,
            "tools": [READ_TOOL],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        },
        {"messages": USER, "tools": [READ_FUNCTION], "tool_choice": "required", "parallel_tool_calls": False},
    ),
    (
        "tool_choice tool",
        {"messages": USER, "tools": [READ_TOOL], "tool_choice": {"type": "tool", "name": "Read"}},
        {
            "messages": USER,
            "tools": [READ_FUNCTION],
            "tool_choice": {"type": "function", "function": {"name": "Read"}},
        },
    ),
    (
        "tool_choice none",
        {"messages": USER, "tools": [READ_TOOL], "tool_choice": {"type": "none"}},
        {"messages": USER, "tools": [READ_FUNCTION], "tool_choice": "none"},
    ),
    (
        "tool_choice without tools is left out",
        {"messages": USER, "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
        {"messages": USER},
    ),
    (
        "thinking budget under 4000 is low",
        {"messages": USER, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"messages": USER, "reasoning_effort": "low"},
    ),
    (
        "thinking budget 4000 is medium",
        {"messages": USER, "thinking": {"type": "enabled", "budget_tokens": 4000}},
        {"messages": USER, "reasoning_effort": "medium"},
    ),
    (
        "thinking budget 16000 is high",
        {"messages": USER, "thinking": {"type": "enabled", "budget_tokens": 16000}},
        {"messages": USER, "reasoning_effort": "high"},
    ),
    (
        "thinking budget 15999 is medium",
        {"messages": USER, "thinking": {"type": "enabled", "budget_tokens": 15999}},
        {"messages": USER, "reasoning_effort": "medium"},
    ),
    (
        "thinking budget 31999 is high, and wins over an effort",
        {
            "messages": USER,
            "thinking": {"type": "enabled", "budget_tokens": 31999},
            "output_config": {"effort": "low"},
        },
        {"messages": USER, "reasoning_effort": "high"},
    ),
    (
        "thinking disabled is none",
        {"messages": USER, "thinking": {"type": "disabled"}, "output_config": {"effort": "high"}},
        {"messages": USER, "reasoning_effort": "none"},
    ),
    (
        "adaptive thinking leaves it to the upstream",
        {"messages": USER, "thinking": {"type": "adaptive"}},
        {"messages": USER},
    ),
    (
        "adaptive thinking with an effort",
        {"messages": USER, "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
        {"messages": USER, "reasoning_effort": "max"},
    ),
    (
        "sampling, stop sequences, metadata",
        {
            "messages": USER,
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["\n\nHuman:", "END"],
            "metadata": {"user_id": "user_abc_session_1"},
        },
        {
            "messages": USER,
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop": ["\n\nHuman:", "END"],
            "user": "user_abc_session_1",
        },
    ),
    (
        "empty stop sequences and a null user are left out",
        {"messages": USER, "stop_sequences": [], "metadata": {"user_id": None}},
        {"messages": USER},
    ),
    (
        "stream asks for usage",
        {"messages": USER, "stream": True},
        {"messages": USER, "stream": True, "stream_options": {"include_usage": True}},
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [row[1:] for row in REQUESTS], ids=[row[0] for row in REQUESTS]
)
def test_request(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    body = translated({"model": "claude-sonnet-4-5", "max_tokens": 1024, **fields})
    assert body == {**BASE, **expected}


def test_translation_leaves_the_request_as_it_was() -> None:
    raw = {
        "model": "claude-opus-4-1",
        "max_tokens": 9,
        "messages": USER,
        "tools": [READ_TOOL],
        "stream": True,
    }
    request = parse_request(orjson.dumps(raw))
    body = to_chat_request(request, model="glm-5")
    assert request == raw and body["model"] == "glm-5" and body["max_tokens"] == 9


# (id, body, the parameter named)
BAD: list[tuple[str, bytes, str | None]] = [
    ("not JSON", b"{", None),
    ("not an object", b"[]", None),
    ("no model", b'{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}', "model"),
    ("blank model", b'{"model":" ","max_tokens":1,"messages":[{"role":"user","content":"x"}]}', "model"),
    ("no max_tokens", b'{"model":"m","messages":[{"role":"user","content":"x"}]}', "max_tokens"),
    (
        "max_tokens 0",
        b'{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}',
        "max_tokens",
    ),
    (
        "max_tokens true",
        b'{"model":"m","max_tokens":true,"messages":[{"role":"user","content":"x"}]}',
        "max_tokens",
    ),
    (
        "max_tokens text",
        b'{"model":"m","max_tokens":"9","messages":[{"role":"user","content":"x"}]}',
        "max_tokens",
    ),
    ("no messages", b'{"model":"m","max_tokens":1}', "messages"),
    ("empty messages", b'{"model":"m","max_tokens":1,"messages":[]}', "messages"),
    ("messages object", b'{"model":"m","max_tokens":1,"messages":{}}', "messages"),
    (
        "bad role",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"tool","content":"x"}]}',
        "messages[0].role",
    ),
    ("no content", b'{"model":"m","max_tokens":1,"messages":[{"role":"user"}]}', "messages[0].content"),
    (
        "content number",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":1}]}',
        "messages[0].content",
    ),
    (
        "block without type",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"text":"x"}]}]}',
        "messages[0].content[0]",
    ),
    (
        "text without text",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text"}]}]}',
        "messages[0].content[0].text",
    ),
    (
        "tool_use from the user",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":'
        b'[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}',
        "messages[0].content[0].type",
    ),
    (
        "tool_result from the assistant",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":'
        b'[{"type":"tool_result","tool_use_id":"a"}]}]}',
        "messages[0].content[0].type",
    ),
    (
        "tool_use input not an object",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":'
        b'[{"type":"tool_use","id":"a","name":"b","input":"{}"}]}]}',
        "messages[0].content[0].input",
    ),
    (
        "tool_result without id",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}',
        "messages[0].content[0].tool_use_id",
    ),
    (
        "tool_result is_error not boolean",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":'
        b'[{"type":"tool_result","tool_use_id":"a","is_error":"yes"}]}]}',
        "messages[0].content[0].is_error",
    ),
    (
        "tool_result holding a tool_use",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result",'
        b'"tool_use_id":"a","content":[{"type":"tool_use","id":"a","name":"b","input":{}}]}]}]}',
        "messages[0].content[0].content[0].type",
    ),
    (
        "image from a file id",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":'
        b'[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}',
        "messages[0].content[0].source",
    ),
    (
        "base64 image without data",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":'
        b'[{"type":"image","source":{"type":"base64","media_type":"image/png"}}]}]}',
        "messages[0].content[0].source",
    ),
    (
        "a PDF",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"user","content":'
        b'[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"}}]}]}',
        "messages[0].content[0].source",
    ),
    (
        "server tool blocks",
        b'{"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":'
        b'[{"type":"server_tool_use","id":"a","name":"web_search","input":{}}]}]}',
        "messages[0].content[0].type",
    ),
    (
        "system number",
        b'{"model":"m","max_tokens":1,"system":5,"messages":[{"role":"user","content":"x"}]}',
        "system",
    ),
    (
        "system image",
        b'{"model":"m","max_tokens":1,"system":[{"type":"image","source":{}}],"messages":[{"role":"user","content":"x"}]}',
        "system[0].type",
    ),
    (
        "stream string",
        b'{"model":"m","max_tokens":1,"stream":"yes","messages":[{"role":"user","content":"x"}]}',
        "stream",
    ),
    (
        "top_k float",
        b'{"model":"m","max_tokens":1,"top_k":0.5,"messages":[{"role":"user","content":"x"}]}',
        "top_k",
    ),
    (
        "temperature text",
        b'{"model":"m","max_tokens":1,"temperature":"hot","messages":[{"role":"user","content":"x"}]}',
        "temperature",
    ),
    (
        "stop_sequences string",
        b'{"model":"m","max_tokens":1,"stop_sequences":"END","messages":[{"role":"user","content":"x"}]}',
        "stop_sequences",
    ),
    (
        "stop_sequences number",
        b'{"model":"m","max_tokens":1,"stop_sequences":[1],"messages":[{"role":"user","content":"x"}]}',
        "stop_sequences[0]",
    ),
    (
        "tool without schema",
        b'{"model":"m","max_tokens":1,"tools":[{"name":"Ls"}],"messages":[{"role":"user","content":"x"}]}',
        "tools[0].input_schema",
    ),
    (
        "a server tool",
        b'{"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search"}],'
        b'"messages":[{"role":"user","content":"x"}]}',
        "tools[0].type",
    ),
    (
        "tool without name",
        b'{"model":"m","max_tokens":1,"tools":[{"input_schema":{}}],"messages":[{"role":"user","content":"x"}]}',
        "tools[0].name",
    ),
    (
        "tool_choice unknown",
        b'{"model":"m","max_tokens":1,"tool_choice":{"type":"required"},"messages":[{"role":"user","content":"x"}]}',
        "tool_choice.type",
    ),
    (
        "tool_choice tool without name",
        b'{"model":"m","max_tokens":1,"tool_choice":{"type":"tool"},"messages":[{"role":"user","content":"x"}]}',
        "tool_choice.name",
    ),
    (
        "tool_choice string",
        b'{"model":"m","max_tokens":1,"tool_choice":"auto","messages":[{"role":"user","content":"x"}]}',
        "tool_choice",
    ),
    (
        "thinking unknown",
        b'{"model":"m","max_tokens":1,"thinking":{"type":"on"},"messages":[{"role":"user","content":"x"}]}',
        "thinking.type",
    ),
    (
        "thinking without budget",
        b'{"model":"m","max_tokens":1,"thinking":{"type":"enabled"},"messages":[{"role":"user","content":"x"}]}',
        "thinking.budget_tokens",
    ),
    (
        "user_id number",
        b'{"model":"m","max_tokens":1,"metadata":{"user_id":7},"messages":[{"role":"user","content":"x"}]}',
        "metadata.user_id",
    ),
    (
        "unknown effort",
        b'{"model":"m","max_tokens":1,"output_config":{"effort":"ultra"},"messages":[{"role":"user","content":"x"}]}',
        "output_config.effort",
    ),
]


@pytest.mark.parametrize(("body", "param"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_request(body: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body)
    assert caught.value.param == param
    assert caught.value.status == 400 and caught.value.message


def test_unknown_fields_and_nulls_are_accepted() -> None:
    body = (
        b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"service_tier":"auto",'
        b'"system":null,"temperature":null,"tools":null,"context_management":{"edits":[]}}'
    )
    assert to_chat_request(parse_request(body), model="glm-4.7") == {
        **BASE,
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    }


# ---------------------------------------------------------------------------------------------
# Answers: (id, the OpenAI completion's message, finish_reason, usage, the Anthropic content, stop_reason,
# usage)

NO_USAGE = {
    "input_tokens": 0,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
    "output_tokens": 0,
}
RESPONSES: list[tuple[str, dict[str, Any], str | None, Any, list[dict[str, Any]], str, dict[str, int]]] = [
    (
        "text",
        {"role": "assistant", "content": "Hello!"},
        "stop",
        {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        [{"type": "text", "text": "Hello!"}],
        "end_turn",
        {**NO_USAGE, "input_tokens": 12, "output_tokens": 3},
    ),
    (
        "thinking and text, cached prompt",
        {"role": "assistant", "content": "4", "reasoning_content": "2+2"},
        "stop",
        {"prompt_tokens": 2000, "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 1536}},
        [{"type": "thinking", "thinking": "2+2", "signature": ""}, {"type": "text", "text": "4"}],
        "end_turn",
        {**NO_USAGE, "input_tokens": 464, "cache_read_input_tokens": 1536, "output_tokens": 9},
    ),
    (
        "the upstream's signature is kept",
        {"role": "assistant", "content": "ok", "reasoning_content": "hm", "signature": "sig-1"},
        "stop",
        None,
        [{"type": "thinking", "thinking": "hm", "signature": "sig-1"}, {"type": "text", "text": "ok"}],
        "end_turn",
        NO_USAGE,
    ),
    (
        "tool calls, no text",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "Read", "arguments": '{"path": "a.py"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "Ls", "arguments": ""}},
                {
                    "id": "call_3",
                    "type": "function",
                    "function": {"name": "Grep", "arguments": '{"pattern": "x'},
                },
                {"id": "call_4", "type": "function", "function": {"name": "Echo", "arguments": "[1]"}},
            ],
        },
        "tool_calls",
        {"prompt_tokens": 50, "completion_tokens": 20},
        [
            {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a.py"}},
            {"type": "tool_use", "id": "call_2", "name": "Ls", "input": {}},
            {"type": "tool_use", "id": "call_3", "name": "Grep", "input": {}},
            {"type": "tool_use", "id": "call_4", "name": "Echo", "input": {}},
        ],
        "tool_use",
        {**NO_USAGE, "input_tokens": 50, "output_tokens": 20},
    ),
    (
        "text and a tool call that finished with stop",
        {
            "role": "assistant",
            "content": "Listing.",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "Ls", "arguments": "{}"}}],
        },
        "stop",
        None,
        [{"type": "text", "text": "Listing."}, {"type": "tool_use", "id": "c", "name": "Ls", "input": {}}],
        "tool_use",
        NO_USAGE,
    ),
    (
        "cut off while calling a tool",
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "W", "arguments": "{"}}],
        },
        "length",
        None,
        [{"type": "tool_use", "id": "c", "name": "W", "input": {}}],
        "max_tokens",
        NO_USAGE,
    ),
    (
        "length",
        {"role": "assistant", "content": "Once"},
        "length",
        None,
        [{"type": "text", "text": "Once"}],
        "max_tokens",
        NO_USAGE,
    ),
    ("content filter", {"role": "assistant", "content": ""}, "content_filter", None, [], "refusal", NO_USAGE),
    (
        "no finish reason",
        {"role": "assistant", "content": "x"},
        None,
        None,
        [{"type": "text", "text": "x"}],
        "end_turn",
        NO_USAGE,
    ),
    (
        "tool_calls without calls",
        {"role": "assistant", "content": "x"},
        "tool_calls",
        None,
        [{"type": "text", "text": "x"}],
        "end_turn",
        NO_USAGE,
    ),
]


def completion(message: dict[str, Any], finish_reason: str | None, usage: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-42",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "glm-4.7",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


@pytest.mark.parametrize(
    ("message", "finish_reason", "usage", "content", "stop_reason", "anthropic_usage"),
    [row[1:] for row in RESPONSES],
    ids=[row[0] for row in RESPONSES],
)
def test_response(
    message: dict[str, Any],
    finish_reason: str | None,
    usage: Any,
    content: list[dict[str, Any]],
    stop_reason: str,
    anthropic_usage: dict[str, int],
) -> None:
    answer = from_chat_completion(completion(message, finish_reason, usage), model="claude-sonnet-4-5")
    assert answer == {
        "id": "msg_chatcmpl-42",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": anthropic_usage,
    }
    assert Message.model_validate(answer).to_dict(exclude_unset=True) == answer


def test_response_without_ids_gets_fresh_ones() -> None:
    call = {"type": "function", "function": {"name": "Ls", "arguments": {"all": True}}}
    answer = from_chat_completion({"choices": [{"message": {"tool_calls": [call]}}]}, model="claude-x")
    assert answer["id"].startswith("msg_") and len(answer["id"]) > 10
    (block,) = answer["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_") and block["input"] == {"all": True}
    assert from_chat_completion({}, model="m")["content"] == []


def sdk(status: int, body: bytes, content_type: str = "application/json") -> anthropic.Anthropic:
    """The real SDK, strict about what it reads, answered by ``body`` for any request."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, content=body)

    return anthropic.Anthropic(
        api_key="test",
        base_url="http://gateway.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
        _strict_response_validation=True,
    )


def test_the_sdk_reads_an_answer() -> None:
    message = {"role": "assistant", "content": "Hi", "reasoning_content": "greet"}
    body = orjson.dumps(from_chat_completion(completion(message, "stop", None), model="claude-opus-4-1"))
    with sdk(200, body) as client:
        answer = client.messages.create(
            model="gateway-test", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert [block.type for block in answer.content] == ["thinking", "text"]
    assert answer.model == "claude-opus-4-1" and answer.stop_reason == "end_turn"


# ---------------------------------------------------------------------------------------------
# Streams, from tests/data/anthropic/streams.json: OpenAI chunks in, the exact Anthropic events out, and
# the message the SDK assembles from them.

STREAMS: list[dict[str, Any]] = json.loads((DATA / "streams.json").read_text())
EVENT_MODELS: dict[str, type[anthropic.BaseModel]] = {
    "message_start": RawMessageStartEvent,
    "message_delta": RawMessageDeltaEvent,
    "message_stop": RawMessageStopEvent,
    "content_block_start": RawContentBlockStartEvent,
    "content_block_delta": RawContentBlockDeltaEvent,
    "content_block_stop": RawContentBlockStopEvent,
}


def translate(case: dict[str, Any]) -> list[bytes]:
    translator = StreamTranslator(model=case["model"], message_id=case.get("message_id"))
    frames = [frame for chunk in case["chunks"] for frame in translator.feed(chunk)]
    return frames + translator.finish()


def events(frames: list[bytes]) -> Iterator[dict[str, Any]]:
    for frame in frames:
        head, data = frame.split(b"\n", 1)
        assert head.startswith(b"event: ") and data.startswith(b"data: ") and data.endswith(b"\n\n")
        event: dict[str, Any] = orjson.loads(data[6:])
        assert event["type"] == head[7:].decode()
        yield event


@pytest.mark.parametrize("case", STREAMS, ids=[case["name"] for case in STREAMS])
def test_stream_events(case: dict[str, Any]) -> None:
    translated_events = list(events(translate(case)))
    assert translated_events == case["events"]
    for event in translated_events:
        if event["type"] == "ping":
            assert event == {"type": "ping"}
        else:
            assert EVENT_MODELS[event["type"]].model_validate(event).to_dict() == event


@pytest.mark.parametrize("case", STREAMS, ids=[case["name"] for case in STREAMS])
def test_the_sdk_assembles_the_stream(case: dict[str, Any]) -> None:
    with (
        sdk(200, b"".join(translate(case)), "text/event-stream") as client,
        client.messages.stream(
            model="gateway-test", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        message = stream.get_final_message()
    assert message.to_dict(exclude_unset=True) == case["message"]


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}


def test_network_error_ends_the_stream_with_an_error_event() -> None:
    translator = StreamTranslator(model="claude-x", message_id="msg_1")
    translator.feed(chunk({"content": "par"}))
    (error,) = events(translator.feed(chunk({}, "network_error")))
    assert error == {
        "type": "error",
        "error": {"type": "api_error", "message": "The upstream stream broke off (network_error)."},
    }
    assert isinstance(translator.failure, UpstreamError)
    assert translator.finish() == [] and translator.feed(chunk({"content": "x"})) == []


def test_an_error_mid_stream_reaches_the_sdk_as_an_error() -> None:
    translator = StreamTranslator(model="claude-x")
    frames = translator.feed(chunk({"content": "Hel"}))
    frames += translator.error(UpstreamConcurrencyLimited("Too many requests at once."))
    assert translator.error(UpstreamTimeout("late")) == [] and translator.finish() == []
    with (
        sdk(200, b"".join(frames), "text/event-stream") as client,
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(
            model="gateway-test", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        ) as stream,
    ):
        stream.get_final_message()
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Too many requests at once."},
    }


def test_other_choices_and_empty_deltas_are_ignored() -> None:
    translator = StreamTranslator(model="claude-x", message_id="msg_1")
    frames = translator.feed({"choices": [{"index": 1, "delta": {"content": "other"}}]})
    frames += translator.feed(chunk({"role": "assistant", "content": "", "reasoning_content": ""}))
    assert [event["type"] for event in events(frames)] == ["message_start", "ping"]
    assert translator.finish()[-1] == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


# ---------------------------------------------------------------------------------------------
# Errors: (error, Anthropic status, Anthropic type, the SDK's exception)

ERRORS: list[tuple[GatewayError, int, str, type[anthropic.APIStatusError]]] = [
    (InvalidRequest("bad"), 400, "invalid_request_error", anthropic.BadRequestError),
    (ContextTooLong("long"), 400, "invalid_request_error", anthropic.BadRequestError),
    (PayloadTooLarge("big"), 413, "request_too_large", anthropic.ContentTooLargeError),
    (NotLoggedIn("log in"), 401, "authentication_error", anthropic.AuthenticationError),
    (UpstreamAuthError("expired"), 401, "authentication_error", anthropic.AuthenticationError),
    (AccountBlocked("blocked"), 403, "permission_error", anthropic.PermissionDeniedError),
    (ModelNotFound("no such model"), 404, "not_found_error", anthropic.NotFoundError),
    (MethodNotAllowed("GET"), 405, "invalid_request_error", anthropic.APIStatusError),
    (QueueFull("queue", retry_after=2), 429, "rate_limit_error", anthropic.RateLimitError),
    (UpstreamConcurrencyLimited("busy"), 429, "rate_limit_error", anthropic.RateLimitError),
    (GatewayError("bug"), 500, "api_error", anthropic.InternalServerError),
    (UpstreamError("odd"), 500, "api_error", anthropic.InternalServerError),
    (UpstreamRejected("406"), 500, "api_error", anthropic.InternalServerError),
    (UpstreamModelError("514"), 529, "overloaded_error", anthropic.OverloadedError),
    (UpstreamUnavailable("down"), 529, "overloaded_error", anthropic.OverloadedError),
    (UpstreamTimeout("slow"), 504, "timeout_error", anthropic.GatewayTimeoutError),
]


@pytest.mark.parametrize(
    ("error", "status", "kind", "exception"), ERRORS, ids=[type(row[0]).__name__ for row in ERRORS]
)
def test_error(
    error: GatewayError, status: int, kind: str, exception: type[anthropic.APIStatusError]
) -> None:
    assert error_status(error) == status
    body = error_body(error)
    assert orjson.loads(body) == {"type": "error", "error": {"type": kind, "message": error.message}}
    if kind != "request_too_large":  # documented for 413, though the SDK's error union lacks it
        ErrorResponse.model_validate_json(body)
    with sdk(status, body) as client, pytest.raises(exception) as caught:
        client.messages.create(
            model="gateway-test", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == status and caught.value.body == orjson.loads(body)


# ---------------------------------------------------------------------------------------------
# Model names

ALIASES: list[tuple[str, str]] = [
    ("claude-opus-4-1-20250805", "glm-5"),
    ("claude-3-opus-20240229", "glm-5"),
    ("claude-sonnet-4-5-20250929", "glm-4.7"),
    ("claude-3-5-sonnet-latest", "glm-4.7"),
    ("claude-3-7-sonnet-20250219", "glm-4.7"),
    ("claude-haiku-4-5", "qwen3-coder-plus"),
    ("claude-3-5-haiku-20241022", "qwen3-coder-plus"),
    ("Claude-Haiku-4-5", "qwen3-coder-plus"),
    ("claude-mythos-preview", "glm-4.7"),
    ("glm-4.7", "glm-4.7"),
    ("kimi-k2.5", "kimi-k2.5"),
]


@pytest.mark.parametrize(("name", "target"), ALIASES)
def test_default_aliases(name: str, target: str) -> None:
    assert resolve_model(name, DEFAULT_ALIASES) == target


def test_first_matching_alias_wins() -> None:
    aliases = {"claude-sonnet-4-5*": "kimi-k2.5", "CLAUDE-*": "glm-5", "gpt-?": "qwen3-max"}
    assert resolve_model("claude-sonnet-4-5-20250929", aliases) == "kimi-k2.5"
    assert resolve_model("claude-sonnet-4", aliases) == "glm-5"
    assert resolve_model("gpt-5", aliases) == "qwen3-max"
    assert resolve_model("gpt-55", aliases) == "gpt-55"
    assert resolve_model("claude-opus-4-1", {}) == "claude-opus-4-1"

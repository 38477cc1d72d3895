"""The Chat Completions shapes the other dialects translate into: messages and their parts.

What comes back from the upstream (completions, chunks) stays ``dict[str, Any]``: it is untrusted
JSON, read field by field with ``checks.as_object``/``as_text``, never assumed to have a shape.
"""

from __future__ import annotations

from typing import Literal, NotRequired, Required, TypedDict


class ChatFunctionCall(TypedDict):
    name: str
    arguments: str  # JSON text


class ChatToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: ChatFunctionCall


class ChatTextPart(TypedDict):
    type: Literal["text"]
    text: str


class ChatImageURL(TypedDict):
    url: str
    detail: NotRequired[str]


class ChatImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: ChatImageURL


class ChatFile(TypedDict):
    file_data: str
    filename: NotRequired[str]


class ChatFilePart(TypedDict):
    type: Literal["file"]
    file: ChatFile


ChatPart = ChatTextPart | ChatImagePart | ChatFilePart


class ChatMessage(TypedDict, total=False):
    role: Required[str]
    content: Required[str | list[ChatPart] | None]
    reasoning_content: str
    tool_calls: list[ChatToolCall]
    tool_call_id: str


class ChatFunction(TypedDict, total=False):
    name: Required[str]
    description: str
    parameters: dict[str, object]
    strict: bool


class ChatTool(TypedDict):
    type: Literal["function"]
    function: ChatFunction

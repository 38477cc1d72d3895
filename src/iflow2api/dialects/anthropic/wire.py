"""Anthropic Messages on the wire: the request as ``request.check_request`` accepts it, the Message
answered, and the payloads of the stream's events and of errors.

A checked request may carry more fields than listed (``cache_control``, ``service_tier``, ...):
they are accepted and ignored.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# --- the request ------------------------------------------------------------------------------


class TextBlock(TypedDict):
    type: Literal["text"]
    text: str


class ImageSource(TypedDict):
    type: Literal["base64", "url"]
    media_type: NotRequired[str]
    data: NotRequired[str]
    url: NotRequired[str]


class ImageBlock(TypedDict):
    type: Literal["image"]
    source: ImageSource


class DocumentBlock(TypedDict):
    type: Literal["document"]
    #: ``text`` with ``data``, or ``content`` with a string or text blocks; others are refused.
    source: dict[str, Any]


class ThinkingBlock(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: NotRequired[str]


class RedactedThinkingBlock(TypedDict):
    type: Literal["redacted_thinking"]
    data: NotRequired[str]


class ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


ResultBlock = TextBlock | ImageBlock | DocumentBlock


class ToolResultBlock(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: str
    content: NotRequired[str | list[ResultBlock] | None]
    is_error: NotRequired[bool | None]


UserBlock = TextBlock | ImageBlock | DocumentBlock | ToolResultBlock
AssistantBlock = TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock
Block = UserBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock


class InputMessage(TypedDict):
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class Tool(TypedDict):
    name: str
    input_schema: dict[str, Any]
    description: NotRequired[str | None]
    type: NotRequired[Literal["custom"] | None]


class ToolChoice(TypedDict):
    type: Literal["auto", "any", "tool", "none"]
    name: NotRequired[str]
    disable_parallel_tool_use: NotRequired[bool]


class Thinking(TypedDict):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: NotRequired[int]


class Metadata(TypedDict, total=False):
    user_id: str | None


class OutputConfig(TypedDict, total=False):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None


class MessagesRequest(TypedDict):
    model: str
    max_tokens: int
    messages: list[InputMessage]
    system: NotRequired[str | list[TextBlock] | None]
    stream: NotRequired[bool | None]
    temperature: NotRequired[float | None]
    top_p: NotRequired[float | None]
    top_k: NotRequired[int | None]
    stop_sequences: NotRequired[list[str] | None]
    metadata: NotRequired[Metadata | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[ToolChoice | None]
    thinking: NotRequired[Thinking | None]
    output_config: NotRequired[OutputConfig | None]


# --- the answer -------------------------------------------------------------------------------

StopReason = Literal["end_turn", "max_tokens", "tool_use", "refusal"]


class AnswerThinking(TypedDict):
    type: Literal["thinking"]
    thinking: str
    signature: str


ContentBlock = TextBlock | AnswerThinking | ToolUseBlock


class Usage(TypedDict):
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int


class Message(TypedDict):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None
    stop_sequence: None
    usage: Usage


# --- errors -----------------------------------------------------------------------------------


class ErrorDetail(TypedDict):
    type: str
    message: str


class ErrorBody(TypedDict):
    type: Literal["error"]
    error: ErrorDetail


# --- stream events (each event's ``type`` is added by ``sse.event``) ----------------------------


class MessageStart(TypedDict):
    message: Message


class ContentBlockStart(TypedDict):
    index: int
    content_block: ContentBlock


class TextDelta(TypedDict):
    type: Literal["text_delta"]
    text: str


class ThinkingDelta(TypedDict):
    type: Literal["thinking_delta"]
    thinking: str


class SignatureDelta(TypedDict):
    type: Literal["signature_delta"]
    signature: str


class InputJsonDelta(TypedDict):
    type: Literal["input_json_delta"]
    partial_json: str


class ContentBlockDelta(TypedDict):
    index: int
    delta: TextDelta | ThinkingDelta | SignatureDelta | InputJsonDelta


class ContentBlockStop(TypedDict):
    index: int


class StopDelta(TypedDict):
    stop_reason: StopReason
    stop_sequence: None


class StreamUsage(TypedDict, total=False):
    """The final count: input tokens only when the upstream reported usage."""

    input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int


class MessageDelta(TypedDict):
    delta: StopDelta
    usage: StreamUsage


class ErrorEvent(TypedDict):
    error: ErrorDetail

"""OpenAI Responses on the wire: the request as ``request.parse_request`` accepts it, the Response
answered with its output items, the payloads of the stream's events, and errors.

A checked request may carry more fields than listed: they are accepted and ignored.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

# --- the request ------------------------------------------------------------------------------


class TextPart(TypedDict):
    type: Literal["input_text", "output_text", "summary_text", "reasoning_text"]
    text: str


class RefusalPart(TypedDict):
    type: Literal["refusal"]
    refusal: str


class ImagePart(TypedDict):
    type: Literal["input_image"]
    image_url: str
    detail: NotRequired[str | None]


class FilePart(TypedDict):
    type: Literal["input_file"]
    file_data: str
    filename: NotRequired[str | None]


ContentPart = TextPart | RefusalPart | ImagePart | FilePart
Role = Literal["assistant", "developer", "system", "user"]


class MessageItem(TypedDict):
    type: NotRequired[Literal["message"]]  # the default item type
    role: Role
    content: str | list[ContentPart]


class FunctionCallItem(TypedDict):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str  # JSON text


class FunctionCallOutputItem(TypedDict):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ContentPart]


class ReasoningItem(TypedDict):
    type: Literal["reasoning"]
    summary: NotRequired[list[TextPart] | None]
    content: NotRequired[list[TextPart] | None]


InputItem = MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem


class Tool(TypedDict):
    """A ``function`` tool, or a hosted one (any other ``type``), which reaches no model."""

    type: str
    name: NotRequired[str]
    description: NotRequired[str | None]
    parameters: NotRequired[dict[str, Any] | None]
    strict: NotRequired[bool | None]


class ToolChoiceObject(TypedDict):
    type: str  # function, allowed_tools, or a hosted tool's type
    name: NotRequired[str]
    mode: NotRequired[Literal["auto", "required"]]
    tools: NotRequired[list[dict[str, Any]]]


ToolChoice = Literal["auto", "none", "required"] | ToolChoiceObject


class TextFormat(TypedDict):
    type: Literal["text", "json_object", "json_schema"]
    name: NotRequired[str]
    description: NotRequired[str | None]
    schema: NotRequired[dict[str, Any]]
    strict: NotRequired[bool | None]


class TextConfig(TypedDict, total=False):
    format: TextFormat | None


class Reasoning(TypedDict, total=False):
    effort: str | None


class ResponsesRequest(TypedDict):
    model: str
    input: str | list[InputItem]
    instructions: NotRequired[str | None]
    tools: NotRequired[list[Tool] | None]
    tool_choice: NotRequired[ToolChoice | None]
    max_output_tokens: NotRequired[int | None]
    reasoning: NotRequired[Reasoning | None]
    text: NotRequired[TextConfig | None]
    stream: NotRequired[bool | None]
    store: NotRequired[bool | None]
    parallel_tool_calls: NotRequired[bool | None]
    previous_response_id: NotRequired[str | None]
    temperature: NotRequired[float | None]
    top_p: NotRequired[float | None]
    metadata: NotRequired[dict[str, str] | None]
    user: NotRequired[str | None]


# --- the Response -----------------------------------------------------------------------------

Status = Literal["in_progress", "completed", "incomplete"]
ResponseStatus = Literal["in_progress", "completed", "incomplete", "failed"]


class OutputText(TypedDict):
    type: Literal["output_text"]
    text: str
    annotations: list[object]
    logprobs: list[object]


class SummaryText(TypedDict):
    type: Literal["summary_text"]
    text: str


class OutputReasoning(TypedDict):
    id: str
    type: Literal["reasoning"]
    summary: list[SummaryText]
    status: Status


class OutputMessage(TypedDict):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    status: Status
    content: list[OutputText]


class OutputFunctionCall(TypedDict):
    id: str
    type: Literal["function_call"]
    status: Status
    call_id: str
    name: str
    arguments: str


OutputItem = OutputReasoning | OutputMessage | OutputFunctionCall


class InputTokensDetails(TypedDict):
    cached_tokens: int
    cache_write_tokens: int


class OutputTokensDetails(TypedDict):
    reasoning_tokens: int


class ResponseUsage(TypedDict):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(TypedDict):
    code: str
    message: str


class IncompleteDetails(TypedDict):
    reason: str


class ResponseTool(TypedDict):
    type: Literal["function"]
    name: str
    description: str | None
    parameters: dict[str, Any] | None
    strict: bool | None


class Response(TypedDict):
    id: str
    object: Literal["response"]
    created_at: int
    status: ResponseStatus
    error: ResponseError | None
    incomplete_details: IncompleteDetails | None
    instructions: str | None
    max_output_tokens: int | None
    metadata: dict[str, str]
    model: str
    output: list[OutputItem]
    parallel_tool_calls: bool
    previous_response_id: str | None
    reasoning: Reasoning | None
    store: bool
    temperature: float | None
    text: TextConfig
    tool_choice: ToolChoice
    tools: list[ResponseTool]
    top_p: float | None
    truncation: Literal["disabled"]
    usage: NotRequired[ResponseUsage]
    user: NotRequired[str]


# --- stream events (``type`` and ``sequence_number`` are added when each is written) ------------


class ResponseEvent(TypedDict):
    response: Response


class ItemEvent(TypedDict):
    output_index: int
    item: OutputItem


class Place(TypedDict):
    """Where in the output an event's delta or part goes."""

    item_id: str
    output_index: int


class SummaryPartEvent(Place):
    summary_index: int
    part: SummaryText


class ContentPartEvent(Place):
    content_index: int
    part: OutputText


class SummaryDeltaEvent(Place):
    summary_index: int
    delta: str


class SummaryDoneEvent(Place):
    summary_index: int
    text: str


class TextDeltaEvent(Place):
    content_index: int
    delta: str
    logprobs: list[object]


class TextDoneEvent(Place):
    content_index: int
    text: str
    logprobs: list[object]


class ArgumentsDeltaEvent(Place):
    delta: str


class ArgumentsDoneEvent(Place):
    name: str
    arguments: str


class ErrorEvent(TypedDict):
    code: str | None
    message: str
    param: str | None


Event = (
    ResponseEvent
    | ItemEvent
    | SummaryPartEvent
    | ContentPartEvent
    | SummaryDeltaEvent
    | SummaryDoneEvent
    | TextDeltaEvent
    | TextDoneEvent
    | ArgumentsDeltaEvent
    | ErrorEvent
    | ArgumentsDoneEvent
)

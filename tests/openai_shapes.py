"""The OpenAI shapes the gateway answers with, as one JSON Schema 2020-12 document kept in the repo.

Written by the team from OpenAI's API reference (its published OpenAPI document, 2.3.0), for exactly
the bodies the gateway sends: chat completions and their chunks, the model list, error bodies, and
Responses with their stream events. Each rule the reference states for a field we send is here: which
fields are required (including the ones that must be present even when null, such as a choice's
``logprobs`` or a message's ``refusal``), their types, enums and nulls, and numeric bounds.

The layout copies the reference's (``#/components/schemas/<Name>``, the same names), so a failure
points where the reference's rule is. Like the reference, no object says ``additionalProperties:
false``: extras such as ``reasoning_content`` pass. A shape the gateway does not send (audio,
annotations, moderation, the other tool and output-item kinds) is left out on purpose, so a new kind
of body fails here until someone writes its rules down.

>>> sorted(DOCUMENT["components"]["schemas"])[:3]
['ChatCompletionMessageToolCall', 'ChatCompletionMessageToolCallChunk', 'ChatCompletionResponseMessage']
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """ "This or null"; as an ``anyOf`` so that a failure says which branch broke (``anyOf/0/enum``)."""
    return {"anyOf": [schema, {"type": "null"}]}


def one_of(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def obj(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def event(kind: str, required: tuple[str, ...], **properties: Schema) -> Schema:
    """A Responses stream event: its ``type`` and a ``sequence_number``, both always required."""
    return obj(
        ("type", *required, "sequence_number"), type=one_of(kind), sequence_number=INTEGER, **properties
    )


FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")
ITEM_STATUS = one_of("in_progress", "completed", "incomplete")
TOKEN_LOGPROBS = nullable(array(ref("ChatCompletionTokenLogprob")))
BYTES = nullable(array(INTEGER))

CHOICE_LOGPROBS = nullable(obj(("content", "refusal"), content=TOKEN_LOGPROBS, refusal=TOKEN_LOGPROBS))


def chat_answer(kind: str, choice: Schema, usage: Schema) -> Schema:
    """A whole completion or one chunk of it: they differ in ``object``, the choice and the usage."""
    return obj(
        ("choices", "created", "id", "model", "object"),
        id=STRING,
        object=one_of(kind),
        created=INTEGER,
        model=STRING,
        choices=array(choice),
        usage=usage,
        service_tier=ref("ServiceTier"),
        system_fingerprint=STRING,
    )


CHAT: dict[str, Schema] = {
    "CreateChatCompletionResponse": chat_answer(
        "chat.completion",
        obj(
            ("finish_reason", "index", "message", "logprobs"),
            finish_reason=one_of(*FINISH_REASONS),
            index=INTEGER,
            message=ref("ChatCompletionResponseMessage"),
            logprobs=CHOICE_LOGPROBS,
        ),
        usage=ref("CompletionUsage"),
    ),
    "CreateChatCompletionStreamResponse": chat_answer(
        "chat.completion.chunk",
        obj(
            ("delta", "finish_reason", "index"),
            delta=ref("ChatCompletionStreamResponseDelta"),
            # Null on every chunk but the one that ends the choice.
            finish_reason=nullable(one_of(*FINISH_REASONS)),
            index=INTEGER,
            logprobs=CHOICE_LOGPROBS,
        ),
        # Only the last chunk of an ``include_usage`` stream carries counts; the others may say null.
        usage=nullable(ref("CompletionUsage")),
    ),
    "ChatCompletionResponseMessage": obj(
        ("role", "content", "refusal"),
        role=one_of("assistant"),
        content=nullable(STRING),
        refusal=nullable(STRING),
        tool_calls=array(ref("ChatCompletionMessageToolCall")),
    ),
    "ChatCompletionStreamResponseDelta": obj(
        role=one_of("developer", "system", "user", "assistant", "tool"),
        content=nullable(STRING),
        refusal=nullable(STRING),
        tool_calls=array(ref("ChatCompletionMessageToolCallChunk")),
    ),
    "ChatCompletionMessageToolCall": obj(
        ("id", "type", "function"),
        id=STRING,
        type=one_of("function"),
        function=obj(("name", "arguments"), name=STRING, arguments=STRING),
    ),
    # A fragment: only its position is certain; the id, name and arguments come when they come.
    "ChatCompletionMessageToolCallChunk": obj(
        ("index",),
        index=INTEGER,
        id=STRING,
        type=one_of("function"),
        function=obj(name=STRING, arguments=STRING),
    ),
    "ChatCompletionTokenLogprob": obj(
        ("token", "logprob", "bytes", "top_logprobs"),
        token=STRING,
        logprob={"type": "number"},
        bytes=BYTES,
        top_logprobs=array(
            obj(("token", "logprob", "bytes"), token=STRING, logprob={"type": "number"}, bytes=BYTES)
        ),
    ),
    "CompletionUsage": obj(
        ("prompt_tokens", "completion_tokens", "total_tokens"),
        prompt_tokens=INTEGER,
        completion_tokens=INTEGER,
        total_tokens=INTEGER,
        prompt_tokens_details=obj(cached_tokens=INTEGER, audio_tokens=INTEGER, cache_write_tokens=INTEGER),
        completion_tokens_details=obj(reasoning_tokens=INTEGER, audio_tokens=INTEGER),
    ),
    "ServiceTier": nullable(one_of("auto", "default", "flex", "scale", "priority", "fast")),
}

MODEL_REQUIRED = ("id", "object", "created", "owned_by")

MODELS_AND_ERRORS: dict[str, Schema] = {
    "ListModelsResponse": obj(("object", "data"), object=one_of("list"), data=array(ref("Model"))),
    "Model": obj(MODEL_REQUIRED, id=STRING, object=one_of("model"), created=INTEGER, owned_by=STRING),
    "ErrorResponse": obj(("error",), error=ref("Error")),
    # ``param`` and ``code`` must be there even when they have nothing to say (null).
    "Error": obj(
        ("type", "message", "param", "code"),
        type=STRING,
        message=STRING,
        param=nullable(STRING),
        code=nullable(STRING),
    ),
}

RESPONSE_ERROR_CODES = ("server_error", "rate_limit_exceeded", "invalid_prompt")

RESPONSES: dict[str, Schema] = {
    "Response": obj(
        (
            "id",
            "object",
            "created_at",
            "error",
            "incomplete_details",
            "instructions",
            "model",
            "tools",
            "output",
            "parallel_tool_calls",
            "metadata",
            "tool_choice",
            "temperature",
            "top_p",
        ),
        id=STRING,
        object=one_of("response"),
        created_at={"type": "number"},
        status=one_of("completed", "failed", "in_progress", "cancelled", "queued", "incomplete"),
        error=ref("ResponseError"),
        incomplete_details=nullable(obj(reason=one_of("max_output_tokens", "content_filter"))),
        instructions=nullable(STRING),
        model=STRING,
        output=array(ref("OutputItem")),
        parallel_tool_calls=BOOLEAN,
        metadata=nullable({"type": "object", "additionalProperties": STRING}),
        tool_choice=ref("ToolChoiceParam"),
        temperature=nullable({"type": "number", "minimum": 0, "maximum": 2}),
        top_p=nullable({"type": "number", "minimum": 0, "maximum": 1}),
        tools=array(ref("FunctionTool")),
        previous_response_id=nullable(STRING),
        reasoning=nullable(ref("Reasoning")),
        max_output_tokens=nullable(INTEGER),
        text=ref("ResponseTextParam"),
        truncation=nullable(one_of("auto", "disabled")),
        usage=ref("ResponseUsage"),
        user=STRING,
    ),
    # The reference lists about twenty codes; these are the ones a gateway can honestly give.
    "ResponseError": nullable(obj(("code", "message"), code=one_of(*RESPONSE_ERROR_CODES), message=STRING)),
    "ResponseUsage": obj(
        ("input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"),
        input_tokens=INTEGER,
        input_tokens_details=obj(
            ("cached_tokens", "cache_write_tokens"), cached_tokens=INTEGER, cache_write_tokens=INTEGER
        ),
        output_tokens=INTEGER,
        output_tokens_details=obj(("reasoning_tokens",), reasoning_tokens=INTEGER),
        total_tokens=INTEGER,
    ),
    "FunctionTool": obj(
        ("type", "name", "strict", "parameters"),
        type=one_of("function"),
        name=STRING,
        description=nullable(STRING),
        parameters=nullable({"type": "object"}),
        strict=nullable(BOOLEAN),
    ),
    "ToolChoiceParam": {
        "oneOf": [
            one_of("none", "auto", "required"),
            obj(("type", "name"), type=one_of("function"), name=STRING),
        ]
    },
    "Reasoning": obj(
        effort=nullable(one_of("none", "minimal", "low", "medium", "high", "xhigh", "max")),
        summary=nullable(one_of("auto", "concise", "detailed")),
    ),
    "ResponseTextParam": obj(
        format={
            "oneOf": [
                obj(("type",), type=one_of("text")),
                obj(("type",), type=one_of("json_object")),
                obj(
                    ("type", "name", "schema"),
                    type=one_of("json_schema"),
                    name=STRING,
                    description=STRING,
                    schema={"type": "object"},
                    strict=nullable(BOOLEAN),
                ),
            ]
        },
        verbosity=nullable(one_of("low", "medium", "high")),
    ),
    "OutputItem": {"anyOf": [ref("OutputMessage"), ref("FunctionToolCall"), ref("ReasoningItem")]},
    "OutputMessage": obj(
        ("id", "type", "role", "content", "status"),
        id=STRING,
        type=one_of("message"),
        role=one_of("assistant"),
        content=array(ref("OutputTextContent")),
        status=ITEM_STATUS,
    ),
    "OutputTextContent": obj(
        ("type", "text", "annotations", "logprobs"),
        type=one_of("output_text"),
        text=STRING,
        annotations=array({"type": "object"}),
        logprobs=array({"type": "object"}),
    ),
    "FunctionToolCall": obj(
        ("type", "call_id", "name", "arguments"),
        id=STRING,
        type=one_of("function_call"),
        call_id=STRING,
        name=STRING,
        arguments=STRING,
        status=ITEM_STATUS,
    ),
    "ReasoningItem": obj(
        ("id", "summary", "type"),
        id=STRING,
        type=one_of("reasoning"),
        summary=array(ref("SummaryTextContent")),
        encrypted_content=nullable(STRING),
        status=ITEM_STATUS,
    ),
    "SummaryTextContent": obj(("type", "text"), type=one_of("summary_text"), text=STRING),
}

_WHOLE = {"response": ref("Response")}
_PLACE = {"item_id": STRING, "output_index": INTEGER}
_PART = {**_PLACE, "content_index": INTEGER, "part": ref("OutputTextContent")}
_SUMMARY = {**_PLACE, "summary_index": INTEGER}
_TEXT = {**_PLACE, "content_index": INTEGER, "logprobs": array({"type": "object"})}
_ITEM = {"output_index": INTEGER, "item": ref("OutputItem")}

EVENTS: dict[str, Schema] = {
    "ResponseCreatedEvent": event("response.created", ("response",), **_WHOLE),
    "ResponseInProgressEvent": event("response.in_progress", ("response",), **_WHOLE),
    "ResponseCompletedEvent": event("response.completed", ("response",), **_WHOLE),
    "ResponseIncompleteEvent": event("response.incomplete", ("response",), **_WHOLE),
    "ResponseFailedEvent": event("response.failed", ("response",), **_WHOLE),
    "ResponseOutputItemAddedEvent": event("response.output_item.added", ("output_index", "item"), **_ITEM),
    "ResponseOutputItemDoneEvent": event("response.output_item.done", ("output_index", "item"), **_ITEM),
    "ResponseContentPartAddedEvent": event(
        "response.content_part.added", ("item_id", "output_index", "content_index", "part"), **_PART
    ),
    "ResponseContentPartDoneEvent": event(
        "response.content_part.done", ("item_id", "output_index", "content_index", "part"), **_PART
    ),
    "ResponseTextDeltaEvent": event(
        "response.output_text.delta",
        ("item_id", "output_index", "content_index", "delta", "logprobs"),
        delta=STRING,
        **_TEXT,
    ),
    "ResponseTextDoneEvent": event(
        "response.output_text.done",
        ("item_id", "output_index", "content_index", "text", "logprobs"),
        text=STRING,
        **_TEXT,
    ),
    "ResponseFunctionCallArgumentsDeltaEvent": event(
        "response.function_call_arguments.delta", ("item_id", "output_index", "delta"), delta=STRING, **_PLACE
    ),
    "ResponseFunctionCallArgumentsDoneEvent": event(
        "response.function_call_arguments.done",
        ("item_id", "name", "output_index", "arguments"),
        name=STRING,
        arguments=STRING,
        **_PLACE,
    ),
    "ResponseReasoningSummaryPartAddedEvent": event(
        "response.reasoning_summary_part.added",
        ("item_id", "output_index", "summary_index", "part"),
        part=ref("SummaryTextContent"),
        **_SUMMARY,
    ),
    "ResponseReasoningSummaryPartDoneEvent": event(
        "response.reasoning_summary_part.done",
        ("item_id", "output_index", "summary_index", "part"),
        part=ref("SummaryTextContent"),
        **_SUMMARY,
    ),
    "ResponseReasoningSummaryTextDeltaEvent": event(
        "response.reasoning_summary_text.delta",
        ("item_id", "output_index", "summary_index", "delta"),
        delta=STRING,
        **_SUMMARY,
    ),
    "ResponseReasoningSummaryTextDoneEvent": event(
        "response.reasoning_summary_text.done",
        ("item_id", "output_index", "summary_index", "text"),
        text=STRING,
        **_SUMMARY,
    ),
    "ResponseErrorEvent": event(
        "error", ("code", "message", "param"), code=nullable(STRING), message=STRING, param=nullable(STRING)
    ),
}
EVENTS["ResponseStreamEvent"] = {"anyOf": [ref(name) for name in EVENTS]}

DOCUMENT: Schema = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "components": {"schemas": {**CHAT, **MODELS_AND_ERRORS, **RESPONSES, **EVENTS}},
}

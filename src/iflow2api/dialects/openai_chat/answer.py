"""A whole ``chat.completion`` from the upstream: checked, normalised, or replayed as stream chunks."""

from __future__ import annotations

from typing import Any

from iflow2api.dialects.openai_chat.stream import ChunkEncoder


def normalize_completion(completion: dict[str, Any]) -> bool:
    """Fill in what OpenAI's schema requires and iFlow leaves out; True if anything was added.

    ``usage`` (the original iflow2api found it missing at times), and the nullable but required
    ``logprobs`` of each choice and ``refusal`` of each message, which strictly typed clients
    insist on.
    """
    changed = False
    if not isinstance(completion.get("usage"), dict):
        completion["usage"] = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        changed = True
    for choice in completion.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if "logprobs" not in choice:
            choice["logprobs"] = None
            changed = True
        message = choice.get("message")
        if isinstance(message, dict) and "refusal" not in message:
            message["refusal"] = None
            changed = True
    return changed


def completion_as_chunks(completion: dict[str, Any], *, include_usage: bool) -> list[bytes]:
    """SSE frames carrying a whole completion, for an upstream that answered a stream with JSON
    (see ``ChunkEncoder``)."""
    encoder = ChunkEncoder(include_usage=include_usage)
    frames = [data for chunk in completion_as_chunk_dicts(completion) for data in encoder.feed(chunk)]
    return frames + encoder.finish()


def completion_as_chunk_dicts(completion: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole completion as the chunks a stream would have carried (usage last, if known)."""
    base = {
        "id": completion.get("id", "chatcmpl-iflow2api"),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    chunks: list[dict[str, Any]] = []
    for choice in completion.get("choices") or []:
        message = dict(choice.get("message") or {})
        tool_calls = message.get("tool_calls")
        if tool_calls:
            message["tool_calls"] = [{"index": i, **call} for i, call in enumerate(tool_calls)]
        delta = {k: v for k, v in message.items() if v is not None}
        index = choice.get("index", 0)
        chunks.append({**base, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}
        chunks.append({**base, "choices": [finish]})
    if isinstance(completion.get("usage"), dict):
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return chunks


def malformed(completion: dict[str, Any]) -> str | None:
    """What is wrong with a ``chat.completion``'s choices, or None if nothing is.

    Relayed as they are, wrongly typed choices would break the client instead (or our own
    translation to another dialect), so they are the upstream's error: a 502.

    >>> malformed({"choices": [{"message": 5}, 7]})
    'choice 0 has no message object'
    """
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return "it has no choices"
    for index, choice in enumerate(choices):
        if not isinstance(choice, dict):
            return f"choice {index} is not an object"
        message = choice.get("message")
        if not isinstance(message, dict):
            return f"choice {index} has no message object"
        if not isinstance(message.get("content"), str | list | None):
            return f"the content of choice {index} is neither text nor a list of parts"
        if not isinstance(message.get("tool_calls"), list | None):
            return f"the tool_calls of choice {index} are not a list"
    return None

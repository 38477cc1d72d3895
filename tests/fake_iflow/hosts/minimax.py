"""MiniMax's ``/v1/chat/completions`` as the fake plays it (facts §B, checked 2026-12-03).

It refuses what MiniMax refuses, in its error shape (``{"type": "error", "error": {..., "message":
"… (NNNN)"}}``): a wrong key (401, 1004), an unknown model (400, 2013), ``thinking.type`` other than
adaptive/disabled (2013), ``max_completion_tokens`` beyond M3's 524,288 (2013), temperature or top_p
outside (0, 1] (2013). Stricter than the host where the host only frowns: it refuses the deprecated
``max_tokens`` and a tool's ``strict``, so a gateway that sends them fails a test.

Reasoning comes as the host writes it: with ``reasoning_split`` in ``reasoning_details`` (and, for
M3, ``reasoning_content`` too), else as ``<think>…</think>`` at the start of the content, cut into
small pieces on a stream so that the tags fall across chunks. A history whose assistant turn lost
its reasoning is accepted, as MiniMax accepts it; ``replayed`` tells a test what came back.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from tests.fake_iflow import checks
from tests.fake_iflow.hosts import Host
from tests.fake_iflow.replies import HttpError

Headers = Mapping[str, str]
Body = dict[str, Any] | None
Verdict = checks.Rejection | None

DETAIL = {"type": "reasoning.text", "id": "reasoning-text-1", "format": "MiniMax-response-v1", "index": 0}
M3_MAX_OUTPUT = 524_288


def error_body(kind: str, message: str, status: int) -> dict[str, Any]:
    """MiniMax's error body on ``/v1`` (errors-and-responses.md, 2026-04-29)."""
    error = {"type": kind, "message": message, "http_code": str(status)}
    return {"type": "error", "error": error, "request_id": secrets.token_hex(16)}


def http_error(status: int, kind: str, message: str) -> HttpError:
    """A scripted MiniMax HTTP error: ``http_error(402, "insufficient_balance_error", "… (1008)")``."""
    return HttpError(status, error_body(kind, message, status))


def base_resp_error(code: int, message: str, choices: list[Any] | None = None) -> dict[str, Any]:
    """An error inside an HTTP 200 (a ``RawJson`` body, or a stream chunk), its choices null or empty."""
    return {"id": "", "choices": choices, "base_resp": {"status_code": code, "status_msg": message}}


def _invalid(reason: str, message: str) -> checks.Rejection:
    return checks.Rejection(
        reason, 400, error_body("bad_request_error", f"invalid params, {message} (2013)", 400)
    )


def replayed(body: Mapping[str, Any]) -> list[str | None]:
    """The reasoning each assistant turn of a request carried back, as MiniMax would read it: the
    text of its ``reasoning_details``, else its ``<think>`` block (tags included), else None."""
    found: list[str | None] = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") != "assistant":
            continue
        details = message.get("reasoning_details")
        content = message.get("content")
        if isinstance(details, list):
            found.append("".join(str(item.get("text", "")) for item in details if isinstance(item, dict)))
        elif isinstance(content, str) and content.startswith("<think>") and "</think>" in content:
            found.append(content[: content.index("</think>") + len("</think>")])
        else:
            found.append(None)
    return found


def is_m3(model: str) -> bool:
    return model.lower().startswith("minimax-m3")


class Minimax(Host):
    """MiniMax's host; usage rides on a stream's last chunk."""

    name = "minimax"
    separate_usage = False

    def shape_completion(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        split = request.get("reasoning_split") is True
        shaped = {**body, "base_resp": {"status_code": 0, "status_msg": ""}, "input_sensitive": False}
        choices = []
        for choice in body["choices"]:
            message = {**choice["message"], "name": "MiniMax AI", "audio_content": ""}
            reasoning = message.pop("reasoning_content", None)
            if reasoning is not None and split:
                message["reasoning_details"] = [{**DETAIL, "text": reasoning}]
                if is_m3(body["model"]):
                    message["reasoning_content"] = reasoning
            elif reasoning is not None:
                message["content"] = f"<think>\n{reasoning}\n</think>\n\n{message.get('content') or ''}"
            choices.append({**choice, "message": message})
        shaped["choices"] = choices
        if isinstance(body.get("usage"), dict):
            shaped["usage"] = {**body["usage"], "total_characters": 0}
        return shaped

    def shape_chunks(self, chunks: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        shaped = (
            [self._split_chunk(chunk) for chunk in chunks]
            if request.get("reasoning_split")
            else _tagged(chunks)
        )
        # The last chunk says all went well, as every MiniMax answer does (TC).
        return [*shaped[:-1], {**shaped[-1], "base_resp": {"status_code": 0, "status_msg": ""}}]

    def _split_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        choices = []
        for choice in chunk["choices"]:
            delta = dict(choice["delta"])
            reasoning = delta.pop("reasoning_content", None)
            if reasoning is not None:
                delta["reasoning_details"] = [{**DETAIL, "text": reasoning}]
                if is_m3(chunk["model"]):
                    delta["reasoning_content"] = reasoning
            choices.append({**choice, "delta": delta})
        return {**chunk, "choices": choices}

    def judge(
        self, headers: Headers, body: Body, *, api_keys: Iterable[str], models: Iterable[str]
    ) -> Verdict:
        if checks.bearer_key(headers) not in set(api_keys):
            message = "login fail: Please carry the API secret key in the 'Authorization' field (1004)"
            return checks.Rejection(
                "missing or unknown Bearer key", 401, error_body("authorized_error", message, 401)
            )
        if (
            body is None
            or not isinstance(body.get("model"), str)
            or not isinstance(body.get("messages"), list)
        ):
            return _invalid(
                "no model or messages", "binding: expr_path=messages, cause=missing required parameter"
            )
        model = body["model"]
        if model not in models:
            return _invalid(f"model {model!r} is not served", f"unknown model '{model.lower()}'")
        return self._params(body)

    def _params(self, body: dict[str, Any]) -> checks.Rejection | None:
        thinking = body.get("thinking")
        if thinking is not None:
            kind = thinking.get("type") if isinstance(thinking, dict) else None
            if kind not in ("adaptive", "disabled"):
                message = f'invalid thinking.type: "{kind}" (allowed: adaptive, disabled)'
                return _invalid(f"thinking {thinking!r}", message)
        if "max_tokens" in body:
            return _invalid("max_tokens is deprecated", "max_tokens is deprecated, use max_completion_tokens")
        length = body.get("max_completion_tokens")
        if is_m3(body["model"]) and isinstance(length, int) and length > M3_MAX_OUTPUT:
            return _invalid(
                f"max_completion_tokens {length}", f"does not support max tokens > {M3_MAX_OUTPUT}"
            )
        for name in ("temperature", "top_p"):
            value = body.get(name)
            if value is not None and not (isinstance(value, int | float) and 0 < value <= 1):
                return _invalid(f"{name} {value!r}", f"{name} must be in (0, 1]")
        for tool in body.get("tools") or ():
            if isinstance(tool, dict) and "strict" in (tool.get("function") or {}):
                return _invalid("a tool with strict", "unknown field tools.function.strict")
        return None


def _tagged(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reasoning and text of a stream as one ``<think>`` text, re-cut into three-character
    pieces (so both tags fall across chunks), followed by the other chunks as they were."""
    text = ""
    reasoning = ""
    rest = []
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
        if "reasoning_content" in delta or "content" in delta:
            reasoning += delta.get("reasoning_content", "")
            text += delta.get("content", "")
        else:
            rest.append(chunk)
    if reasoning:
        text = f"<think>\n{reasoning}\n</think>\n\n{text}"
    template = chunks[0]
    pieces = [
        {
            **template,
            "choices": [{"index": 0, "delta": {"content": text[at : at + 3]}, "finish_reason": None}],
        }
        for at in range(0, len(text), 3)
    ]
    return pieces + rest


HOST = Minimax

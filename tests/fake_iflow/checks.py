"""What the fake checks on each request, as pure functions over headers, query and parsed body.

The checks follow ``docs/protocol/iflow.md`` (§2 headers and signature, §3 body rules, §6
model ids, §4 OAuth requests). Where the real server's behaviour is unknown the fake is *stricter*:
it insists on what the iFlow CLI 0.5.19 sends, so a gateway that deviates from the CLI fails a test
instead of passing by luck. A check returns ``None`` when the request passes, or a
:class:`Rejection` (or, for the authorize page, the problem as text).

>>> signature(DEFAULT_KEY, "session-00000000-0000-4000-8000-000000000000", 1700000000000)[:8]
'1d5a5e8d'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

DEFAULT_KEY = "sk-0123456789abcdef0123456789abcdef"
CLI_USER_AGENT = "iFlow-Cli"

# §6: the CLI's picker list, in order.
CATALOGUE_IDS = (
    "glm-4.7",
    "iFlow-ROME-30BA3B",
    "deepseek-v3.2-chat",
    "glm-5",
    "qwen3-coder-plus",
    "kimi-k2-thinking",
    "minimax-m2.5",
    "kimi-k2.5",
    "kimi-k2-0905",
)
# §6: ids the CLI sends without listing them (helpers, renames, the 429 fallback).
HIDDEN_IDS = ("QWen3-4B", "qwen3-vl-plus", "glm-4.6-exp", "deepseek-v3.2-reasoner", "Qwen3-Coder-Plus")
# §6: CLIProxyAPI's registry for the same endpoint before 2026-02-26, case as it sent them.
CPA_IDS = (
    "tstars2.0",
    "qwen3-coder-plus",
    "qwen3-max",
    "qwen3-vl-plus",
    "qwen3-max-preview",
    "kimi-k2-0905",
    "glm-4.6",
    "glm-4.7",
    "glm-5",
    "kimi-k2",
    "kimi-k2-thinking",
    "deepseek-v3.2-chat",
    "deepseek-v3.2-reasoner",
    "deepseek-v3.2",
    "deepseek-v3.1",
    "deepseek-r1",
    "deepseek-v3",
    "qwen3-32b",
    "qwen3-235b-a22b-thinking-2507",
    "qwen3-235b-a22b-instruct",
    "qwen3-235b",
    "minimax-m2",
    "minimax-m2.1",
    "minimax-m2.5",
    "iflow-rome-30ba3b",
    "kimi-k2.5",
)
IFLOW_MODEL_IDS = tuple(dict.fromkeys(CATALOGUE_IDS + HIDDEN_IDS + CPA_IDS))
OPENAI_MODEL_IDS = ("gpt-4o-mini", "deepseek-chat")

# §4.2: the CLI's public client credentials.
CLIENT_ID = "10009311001"
CLIENT_SECRET = "4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW"
BASIC_AUTH = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
INVALID_CLIENT_BODY = {"error": "invalid_client", "error_description": "Bad client credentials"}
AUTHORIZE_PARAMS = ("loginMethod", "type", "redirect", "state", "client_id")

IFLOW_HEADERS = ("x-iflow-signature", "x-iflow-timestamp", "session-id", "conversation-id")
TIMESTAMP_WINDOW_MS = 5 * 60 * 1000

_UUID4 = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_SESSION_ID = re.compile(f"session-{_UUID4}")
_CONVERSATION_ID = re.compile(f"(?:{_UUID4})?")
_TIMESTAMP = re.compile(r"[0-9]{1,16}")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why the fake refused a request (recorded in ``ReceivedRequest.rejected``) and what it answers."""

    reason: str
    status: int
    body: dict[str, Any]


def signature(api_key: str, session_id: str, timestamp_ms: int | str) -> str:
    """§2: lowercase hex HMAC-SHA256, keyed by the api key, over ``iFlow-Cli:<session-id>:<ms>``."""
    message = f"{CLI_USER_AGENT}:{session_id}:{timestamp_ms}".encode()
    return hmac.new(api_key.encode(), message, hashlib.sha256).hexdigest()


def parse_body(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def bearer_key(headers: Mapping[str, str]) -> str | None:
    scheme, _, key = headers.get("authorization", "").partition(" ")
    return key if scheme == "Bearer" and key else None


def wants_stream(body: Mapping[str, Any] | None) -> bool:
    return body is not None and body.get("stream") is True


# --- iFlow mode ---------------------------------------------------------------------------------


def invalid_api_key(reason: str) -> Rejection:
    # §7.3 B: HTTP 200 with a business error; the CLI keys on the "Invalid apiKey" text.
    return Rejection(reason, 200, {"status": "434", "msg": "Invalid apiKey", "body": None})


def expired_api_key(reason: str) -> Rejection:
    # §7.3 B: the CLI keys on status "439" ("API Tokens have a validity period of 7 days"); the
    # real msg is unknown (§9.3).
    return Rejection(reason, 200, {"status": "439", "msg": "API Token expired", "body": None})


def rejected_signature(reason: str) -> Rejection:
    # §2: what the service answered unsigned "third-party model" requests from 2026-02.
    return Rejection(reason, 406, {"error": {"message": "status 406", "type": "invalid_request_error"}})


def bad_body(reason: str) -> Rejection:
    error = {"message": f"fake iFlow: {reason}", "type": "invalid_request_error"}
    return Rejection(reason, 400, {"error": error})


def unsupported_model(model: str) -> Rejection:
    body = {"status": "435", "msg": "Model not support", "body": None}
    return Rejection(f"model {model!r} is not served", 200, body)


def busy(key: str) -> Rejection:
    # §8: one request at a time per account; the body is CPA-fork's fixture.
    body = {"status": "449", "msg": "You exceeded your current rate limit", "body": None}
    return Rejection(f"another request with key ...{key[-4:]} is still being served", 200, body)


def check_cli_headers(headers: Mapping[str, str], api_key: str, now_ms: int) -> str | None:
    """§2: the headers the CLI sets on a chat request, signature included."""
    user_agent = headers.get("user-agent")
    if user_agent != CLI_USER_AGENT:
        return f"user-agent is {user_agent!r}, not {CLI_USER_AGENT!r}"
    session_id = headers.get("session-id")
    if session_id is None or not _SESSION_ID.fullmatch(session_id):
        return f"session-id {session_id!r} is not 'session-' + a uuid4"
    conversation_id = headers.get("conversation-id")
    if conversation_id is None or not _CONVERSATION_ID.fullmatch(conversation_id):
        return f"conversation-id {conversation_id!r} is neither a uuid4 nor empty"
    timestamp = headers.get("x-iflow-timestamp")
    if timestamp is None or not _TIMESTAMP.fullmatch(timestamp):
        return f"x-iflow-timestamp {timestamp!r} is not a millisecond timestamp"
    if abs(int(timestamp) - now_ms) > TIMESTAMP_WINDOW_MS:
        return f"x-iflow-timestamp {timestamp} is more than 5 minutes away from now ({now_ms})"
    expected = signature(api_key, session_id, timestamp)
    if not hmac.compare_digest(headers.get("x-iflow-signature", ""), expected):
        return "x-iflow-signature does not match HMAC-SHA256(key, 'iFlow-Cli:<session-id>:<timestamp>')"
    return None


def judge_iflow(
    headers: Mapping[str, str],
    body: dict[str, Any] | None,
    *,
    api_keys: Iterable[str],
    require_signature: bool,
    models: Iterable[str],
    now_ms: int,
) -> Rejection | None:
    """Everything but single flight, in the order a gateway would meet them."""
    key = bearer_key(headers)
    if key is None or key not in api_keys:
        return invalid_api_key("missing or unknown Bearer key")
    if require_signature:
        problem = check_cli_headers(headers, key, now_ms)
        if problem is not None:
            return rejected_signature(problem)
    if body is None:
        return bad_body("the body is not a JSON object")
    for rule in IFLOW_BODY_RULES:
        problem = rule(body)
        if problem is not None:
            return bad_body(problem)
    if body["model"] not in models:
        return unsupported_model(body["model"])
    return None


def _shape(body: Mapping[str, Any]) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model must be a non-empty string"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    if not all(isinstance(message, dict) for message in messages):
        return "every message must be an object"
    return None


def _max_new_tokens(body: Mapping[str, Any]) -> str | None:
    # §3.1: the CLI always sends it.
    value: object = body.get("max_new_tokens")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return f"max_new_tokens must be a positive integer, got {value!r}"
    return None


def _needs_max_tokens(model: str) -> bool:
    # §3.1 (CLI:_ln L2139-2151): deepseek models but the reasoner, and kimi-k2.5*.
    deepseek = re.search("deepseek", model, re.IGNORECASE) is not None and model != "deepseek-v3.2-reasoner"
    return deepseek or model.lower().startswith("kimi-k2.5")


def _max_tokens(body: Mapping[str, Any]) -> str | None:
    model = body["model"]
    if "max_completion_tokens" in body:
        return "max_completion_tokens is never sent by the CLI"
    if not _needs_max_tokens(model):
        return f"max_tokens must not be sent for {model}" if "max_tokens" in body else None
    if body.get("max_tokens") != body["max_new_tokens"] or not _is_int(body.get("max_tokens")):
        return f"{model} needs max_tokens equal to max_new_tokens, got {body.get('max_tokens')!r}"
    return None


def _stream_fields(body: Mapping[str, Any]) -> str | None:
    # §3.1: a stream request carries both fields exactly so; a non-stream request neither.
    if "stream" not in body:
        return "stream_options without stream: true" if "stream_options" in body else None
    if body["stream"] is not True:
        return f"stream must be true or absent, got {body['stream']!r}"
    options = body.get("stream_options")
    if options != {"include_usage": True}:
        return f"a stream request needs stream_options {{'include_usage': true}}, got {options!r}"
    return None


def _tools(body: Mapping[str, Any]) -> str | None:
    # §3.1: the CLI sends tools only when it has some.
    if "tools" in body and (not isinstance(body["tools"], list) or not body["tools"]):
        return f"tools must be a non-empty list when present, got {body['tools']!r}"
    return None


def _no_reasoning_effort(body: Mapping[str, Any]) -> str | None:
    # The gateway turns reasoning_effort into the per-family thinking fields (§3.3).
    return "reasoning_effort must be translated, not forwarded" if "reasoning_effort" in body else None


def _sampling(body: Mapping[str, Any]) -> str | None:
    # §3.2: values the CLI forces per model family.
    model = body["model"]
    lower = model.lower()
    required: dict[str, float] = {}
    if "glm-4.7" in lower or "glm-5" in lower:
        required = {"temperature": 1, "top_p": 0.95}
    elif lower.startswith("kimi-k2.5"):
        if "temperature" in body:
            return f"{model} must be sent without temperature"
        required = {"top_p": 0.95, "n": 1}
    elif lower == "iflow-rome-30ba3b":
        required = {"temperature": 0.7, "top_p": 0.8, "top_k": 20}
    for name, expected in required.items():
        value = body.get(name)
        if not _is_number(value) or value != expected:
            return f"{model} needs {name} = {expected}, got {value!r}"
    return None


def _renames(body: Mapping[str, Any]) -> str | None:
    model = body["model"]
    if model.lower() == "glm-4.6":
        return "glm-4.6 must be sent as glm-4.6-exp"
    if model == "deepseek-v3.2-chat" and body.get("thinking_mode") is True:
        return "deepseek-v3.2-chat with thinking_mode must be sent as deepseek-v3.2-reasoner"
    return None


def _kimi_tool_choice(body: Mapping[str, Any]) -> str | None:
    # §3.2 (CLI:_ln L2153-2163): with thinking and tools, "The API will reject this request" otherwise.
    thinking = body.get("thinking")
    thinking_on = isinstance(thinking, dict) and thinking.get("type") == "enabled"
    kimi = body["model"].lower().startswith("kimi-k2.5")
    choice = body.get("tool_choice", "auto")
    if kimi and thinking_on and "tools" in body and choice not in ("auto", "none"):
        return f"kimi-k2.5 with thinking and tools needs tool_choice auto or none, got {choice!r}"
    return None


IFLOW_BODY_RULES: tuple[Callable[[Mapping[str, Any]], str | None], ...] = (
    _shape,
    _max_new_tokens,
    _max_tokens,
    _stream_fields,
    _tools,
    _no_reasoning_effort,
    _sampling,
    _renames,
    _kimi_tool_choice,
)


# --- OAuth (§4) ---------------------------------------------------------------------------------


def check_authorize(query: Sequence[tuple[str, str]]) -> str | None:
    """§4.3 step 4: exactly the CLI's parameters. ``None`` when they pass, else the problem.

    >>> check_authorize([("redirect_uri", "http://localhost:1/cb")])
    'the redirect URI goes in "redirect", not "redirect_uri"'
    """
    names = [name for name, _ in query]
    if "redirect_uri" in names:
        return 'the redirect URI goes in "redirect", not "redirect_uri"'
    unexpected = sorted(set(names) - set(AUTHORIZE_PARAMS))
    if unexpected:
        return f"unexpected parameters {', '.join(unexpected)}; the CLI sends only {AUTHORIZE_PARAMS}"
    for name in AUTHORIZE_PARAMS:
        if names.count(name) != 1:
            return f"{name} must be given once, got it {names.count(name)} times"
    params = dict(query)
    for name in ("loginMethod", "type"):
        if params[name] != "phone":
            return f"{name} must be 'phone', got {params[name]!r}"
    if params["client_id"] != CLIENT_ID:
        return f"unknown client_id {params['client_id']!r}"
    if not params["state"]:
        return "state must not be empty"
    redirect = urlsplit(params["redirect"])
    if redirect.scheme not in ("http", "https") or not redirect.netloc:
        return f"redirect must be an absolute http(s) URL, got {params['redirect']!r}"
    return None


def check_token_request(content_type: str, headers: dict[str, str], form: dict[str, str]) -> Rejection | None:
    """§4.3 step 6: a form body, and the client both in the Basic header and in the form."""
    if content_type != "application/x-www-form-urlencoded":
        problem = f"fake iFlow: Content-Type must be application/x-www-form-urlencoded, got {content_type!r}"
        return Rejection(problem, 400, oauth_error("invalid_request", problem))
    authorization = headers.get("authorization")
    if authorization != BASIC_AUTH:
        reason = "no Authorization header" if authorization is None else "wrong Basic client credentials"
        return Rejection(reason, 401, INVALID_CLIENT_BODY)
    for name, expected in (("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)):
        if form.get(name) != expected:
            reason = f"form field {name} is missing" if name not in form else f"form field {name} is wrong"
            return Rejection(reason, 401, INVALID_CLIENT_BODY)
    return None


def oauth_error(error: str, description: str) -> dict[str, Any]:
    return {"error": error, "error_description": description}


def invalid_grant(description: str, reason: str) -> Rejection:
    return Rejection(reason, 400, oauth_error("invalid_grant", description))


# --- plain OpenAI mode --------------------------------------------------------------------------


def _openai_error(reason: str, status: int, message: str, code: str | None) -> Rejection:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return Rejection(reason, status, {"error": error})


def openai_invalid_key() -> Rejection:
    reason = "missing or unknown Bearer key"
    return _openai_error(reason, 401, "Incorrect API key provided", "invalid_api_key")


def judge_openai(
    headers: Mapping[str, str], body: dict[str, Any] | None, *, api_keys: Iterable[str], models: Iterable[str]
) -> Rejection | None:
    """A plain OpenAI-compatible upstream: nothing of iFlow's dialect may reach it."""
    key = bearer_key(headers)
    if key is None or key not in api_keys:
        return openai_invalid_key()
    problem = _iflow_leak(headers, body)
    if problem is None and body is None:
        problem = "the body is not a JSON object"
    if problem is None and body is not None:
        problem = _shape(body) or _openai_stream_fields(body)
    if problem is not None:
        return _openai_error(problem, 400, f"fake upstream: {problem}", None)
    assert body is not None
    if body["model"] not in models:
        message = f"The model `{body['model']}` does not exist"
        return _openai_error(f"model {body['model']!r} is not served", 404, message, "model_not_found")
    return None


def _iflow_leak(headers: Mapping[str, str], body: Mapping[str, Any] | None) -> str | None:
    for name in IFLOW_HEADERS:
        if name in headers:
            return f"iFlow header {name} sent to a plain OpenAI upstream"
    if headers.get("user-agent") == CLI_USER_AGENT:
        return "user-agent iFlow-Cli sent to a plain OpenAI upstream"
    if body is not None and "max_new_tokens" in body:
        return "max_new_tokens is iFlow's field, not OpenAI's"
    return None


def _openai_stream_fields(body: Mapping[str, Any]) -> str | None:
    if "stream" in body and not isinstance(body["stream"], bool):
        return f"stream must be a boolean, got {body['stream']!r}"
    if "stream_options" in body and body.get("stream") is not True:
        return "stream_options is only allowed when stream is true"
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

"""Speaking iFlow exactly as the iFlow CLI 0.5.19 did: headers, request body, and error table.

The thinking fields of the body follow the CLI's model families, in ``providers.iflow.thinking``.

Pure: dicts and strings in, dicts, strings and ``GatewayError`` out. Section numbers refer to
``docs/protocol/iflow.md``; ``CLI:_ln Lnnn`` to the CLI source it cites. A client's OpenAI request
becomes what the CLI would have sent for the same conversation::

    >>> body = build_body({"model": "glm-4.6", "messages": []}, thinking_default=True)
    >>> body["model"], body["chat_template_kwargs"], body["max_new_tokens"]
    ('glm-4.6-exp', {'enable_thinking': True}, 32000)
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from iflow2api import catalogue
from iflow2api.errors import (
    AccountBlocked,
    ContextTooLong,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    RateLimited,
    UpstreamAuthError,
    UpstreamConcurrencyLimited,
    UpstreamError,
    UpstreamModelError,
    UpstreamRateLimited,
    UpstreamRejected,
)
from iflow2api.providers import openai_wire as openai_compatible
from iflow2api.providers.iflow.thinking import OFF, apply_thinking, thinking_for
from iflow2api.redact import redact
from iflow2api.upstream.signing import USER_AGENT, sign

# ---------------------------------------------------------------------------------------------
# Headers (§2)


def new_session_id() -> str:
    """A CLI session id: ``session-`` and a UUID v4 (CLI:vUi ``generateSessionId``)."""
    return f"session-{uuid.uuid4()}"


def build_headers(api_key: str, session_id: str, conversation_id: str, timestamp_ms: int) -> dict[str, str]:
    """Exactly the headers the CLI sets on a chat request (§2, CLI:_ln L2176-2192).

    Names are lowercase because that is how Node's fetch puts them on the wire. No ``Accept``:
    the CLI sets none, and i2a saw JSON instead of SSE on streams when it sent one (§2).
    """
    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {api_key}",
        "user-agent": USER_AGENT,
        "session-id": session_id,
        "conversation-id": conversation_id,
    }
    if api_key:  # the CLI's ``Bln`` returns null for an empty key, and then neither header is sent
        headers["x-iflow-signature"] = sign(USER_AGENT, session_id, timestamp_ms, api_key)
        headers["x-iflow-timestamp"] = str(timestamp_ms)
    return headers


# ---------------------------------------------------------------------------------------------
# The request body (§3.1, §3.2)


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _output_limit(request: Mapping[str, Any], model: str) -> int:
    # The client's limit plays the CLI's ``outputTokensLimit`` setting (§3.1); iFlow's own
    # ``max_new_tokens`` is honoured too when a client already speaks it.
    for name in ("max_completion_tokens", "max_tokens", "max_new_tokens"):
        limit = _positive_int(request.get(name))
        if limit is not None:
            return limit
    return catalogue.default_max_output(model)


def _forces_a_tool(tool_choice: object) -> bool:
    return tool_choice is not None and tool_choice not in ("auto", "none")


def build_body(request: dict[str, Any], *, thinking_default: bool) -> dict[str, Any]:
    """The body the CLI would send for this OpenAI chat request; ``request`` is left as it was.

    Everything the rules below do not name passes through untouched. Raises ``InvalidRequest``
    for a ``reasoning_effort`` that is not one of OpenAI's values.
    """
    thinking = thinking_for(request, thinking_default=thinking_default)
    body = {name: value for name, value in request.items() if name != "reasoning_effort"}

    # §3.1: streams ask for usage on the last chunk; non-stream requests carry neither field.
    # (Whether the client sees that usage chunk is the gateway's business on the way back.)
    if body.get("stream") is True:
        body["stream_options"] = {"include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)

    # §3.1: the CLI sends tools only when there are some; a tool_choice without tools means nothing.
    if not body.get("tools"):
        body.pop("tools", None)
        body.pop("tool_choice", None)
    has_tools = "tools" in body

    # The CLI compared its own lowercase ids exactly; matching in any case sends the same for those
    # and also covers clients that spell them otherwise (CLIProxyAPI sent iflow-rome-30ba3b, §6).
    lowered = str(body["model"]).lower()
    # §3.2: under iFlow auth the CLI sends glm-4.6 as glm-4.6-exp (CLI:_ln L2117-2119).
    if lowered == "glm-4.6":
        body["model"] = "glm-4.6-exp"
    kimi_k25 = lowered.startswith("kimi-k2.5")

    # §3.2: with thinking on, Kimi K2.5 accepts only tool_choice "auto" or "none"; the CLI warns
    # that "the API will reject this request" otherwise. A client that forces a tool wants that
    # call more than it wants the model to think first, so it gets its call without thinking
    # rather than an error it could do nothing about.
    if kimi_k25 and thinking.on and has_tools and _forces_a_tool(body.get("tool_choice")):
        thinking = OFF
    apply_thinking(body, thinking)  # may rename deepseek-v3.2-chat, before the token rules look
    outgoing = str(body["model"]).lower()

    # §3.2: GLM-4.7 and GLM-5 run with fixed sampling (CLI:_ln L2137).
    if "glm-4.7" in lowered or "glm-5" in lowered:
        body["temperature"] = 1
        body["top_p"] = 0.95

    # §3.1: max_new_tokens always; max_tokens only where the CLI sends it (CLI:_ln L2139-2151).
    # The limit is looked up for the outgoing name: the reasoner gets 64000, not chat's 8192.
    limit = _output_limit(request, outgoing)
    body.pop("max_completion_tokens", None)
    body.pop("max_tokens", None)
    if kimi_k25:
        body["top_p"] = 0.95
        body["n"] = 1
        body["presence_penalty"] = 0
        body["frequency_penalty"] = 0
        body["max_tokens"] = limit
        body.pop("temperature", None)
    if "deepseek" in outgoing and outgoing != "deepseek-v3.2-reasoner":
        body["max_tokens"] = limit
    body["max_new_tokens"] = limit

    if kimi_k25 and thinking.on and has_tools and body.get("tool_choice") is None:
        body["tool_choice"] = "auto"  # §3.2 (CLI:_ln L2153-2163)

    # §3.2: iFlow's own ROME model runs with fixed sampling (CLI:_ln L2175).
    if outgoing == "iflow-rome-30ba3b":
        body["temperature"] = 0.7
        body["top_p"] = 0.8
        body["top_k"] = 20
    return body


# ---------------------------------------------------------------------------------------------
# Errors (§7.3)

_RELOGIN = (
    "Log in to iFlow again to get a new key (the gateway's page, `iflow2api login`, or /auth in "
    "the iFlow CLI); the gateway picks up the new key by itself."
)


def _code(value: object) -> str | None:
    """A business code as a string: iFlow sends ``status`` as a string, sometimes a number (§7.3 B)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _trace(trace_id: str | None) -> str:
    return f" (trace id: {trace_id})" if trace_id else ""


def _said(code: str | None, msg: str) -> str:
    """How the upstream's own words appear in a message: `` (iFlow 434: the text)``, anything
    shaped like a key masked (an upstream may quote the one it was sent)."""
    parts = [part for part in (f"iFlow {code}" if code else "", redact(msg)) if part]
    return f" ({': '.join(parts)})" if parts else ""


# The errors that both an HTTP status (§7.3 A) and a business code (§7.3 B) can mean.
def _too_long(said: str) -> GatewayError:
    return ContextTooLong(f"The input is longer than this model's context window{said}.")


def _model_error(said: str) -> GatewayError:
    return UpstreamModelError(f"iFlow reported a model error; try again{said}.")


# Without a hint from iFlow, a client is told to wait what the CLI first waited before retrying a
# rate-limited request: 10 s (§7.3 D).
_RATE_LIMIT_RETRY_AFTER: Final = 10.0


def _rate_limited(said: str, retry_after: float | None = None) -> GatewayError:
    message = f"iFlow's rate limit for this model was reached{said}; retry later or use another model."
    return UpstreamRateLimited(message, retry_after=retry_after or _RATE_LIMIT_RETRY_AFTER)


def _business(
    payload: Mapping[str, Any], available_models: Sequence[str], suffix: str
) -> GatewayError | None:
    """The error iFlow's ``status``/``error_code``/``msg`` fields name, if it is a known one.

    The CLI's checks in its order (CLI:_ln L2200-2447); an unknown code is left to the caller.
    """
    codes = [code for code in (_code(payload.get("error_code")), _code(payload.get("status"))) if code]
    msg = payload.get("msg")
    msg = msg.strip() if isinstance(msg, str) else ""
    said = _said(codes[0] if codes else None, msg) + suffix

    def has(*wanted: str) -> bool:
        return any(code in wanted for code in codes)

    if has("511", "413"):
        return _too_long(said)
    if has("514"):
        return _model_error(said)
    if has("439"):
        return UpstreamAuthError(
            f"The iFlow API key has expired: iFlow API keys are valid for 7 days{said}. {_RELOGIN}",
            code="api_key_expired",
        )
    # 434 means an invalid key, unless the text says the key was blocked: the bans of
    # 2026-02-25 came as 434 and as 438, both saying "has been blocked" (§7.3 B).
    if has("438") or (has("434") and "blocked" in msg.lower()):
        return AccountBlocked(
            f"iFlow has blocked this account's API key{said}. A new key does not help while the "
            "account stays blocked; use another account."
        )
    if has("434") or "invalid apikey" in msg.lower():
        return UpstreamAuthError(f"iFlow rejected the API key{said}. {_RELOGIN}")
    if has("435"):
        models = ", ".join(available_models) or "(none known)"
        return ModelNotFound(
            f"iFlow does not support the requested model{said}. Available: {models}.", param="model"
        )
    if has("429", "8211"):
        return _rate_limited(said)
    if has("449"):
        message = f"iFlow allows one request at a time per account, and another one is still running{said}."
        return UpstreamConcurrencyLimited(message, retry_after=1)
    return None


_SUCCESS_CODES: Final = frozenset({"0", "200"})


#: The fields ``_business`` reads; a body without any of them names no business error.
_BUSINESS_FIELDS: Final = frozenset({"error_code", "status", "msg"})


def business_error(payload: object, *, available_models: Sequence[str]) -> GatewayError | None:
    """The error a 2xx JSON body (or stream chunk) stands for; None for a normal completion (§7.3 B).

    >>> business_error({"status": "449", "msg": "You exceeded your current rate limit", "body": None},
    ...                available_models=[]).code
    'concurrency_limit_exceeded'
    """
    if not isinstance(payload, dict):
        return None
    if payload.get("choices") and not _BUSINESS_FIELDS.intersection(payload):
        return None  # an ordinary answer: the common case, decided without the table below
    error = _business(payload, available_models, "")
    if error is not None:
        return error
    if payload.get("choices"):
        # The CLI reads a body with choices as an answer whatever else it carries; so do we.
        return None
    for name in ("error_code", "status"):
        code = _code(payload.get(name))
        if code is not None and code not in _SUCCESS_CODES:
            msg = payload.get("msg")
            return UpstreamError(
                f"iFlow reported an error{_said(code, msg if isinstance(msg, str) else '')}."
            )
    upstream = payload.get("error")
    if isinstance(upstream, dict | str) and upstream:
        # An OpenAI-style error object where a completion should be. A rate limit or a refused key
        # is what it says, so the pool can act on it; anything else (iFlow's 406 body, "status
        # 406" as an invalid_request_error, among them) is the upstream failing, as before.
        classified = openai_compatible.business_error(payload)
        if isinstance(classified, RateLimited | UpstreamAuthError | AccountBlocked):
            return classified
        message = upstream.get("message") if isinstance(upstream, dict) else upstream
        return UpstreamError(f"iFlow reported an error: {redact(str(message or upstream))}.")
    return None


def _load(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _upstream_text(payload: object, body: bytes) -> str:
    """The upstream's own explanation: the JSON message if there is one, else the start of the body."""
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        for name in ("msg", "message"):
            if isinstance(payload.get(name), str) and payload[name]:
                return str(payload[name])
        if isinstance(error, str) and error:  # Spring Boot's shape (§1): "Not Found" and the path
            path = payload.get("path")
            return f"{error}: {path}" if isinstance(path, str) else error
    text = " ".join(body.decode("utf-8", "replace").split())
    return text[:300] + ("…" if len(text) > 300 else "")


def http_error(
    status: int,
    body: bytes,
    trace_id: str | None,
    *,
    available_models: Sequence[str],
    retry_after: float | None = None,
) -> GatewayError:
    """The error for a non-2xx answer from iFlow (§7.3 A).

    A body with iFlow's business fields naming a known code decides first; otherwise the status does.
    """
    error = _http_error(status, body, trace_id, available_models, retry_after)
    if retry_after is not None and status in (429, 503):
        error.asked_to_wait(retry_after)  # the upstream's own word on when to come back
    return error


def _http_error(
    status: int, body: bytes, trace_id: str | None, available_models: Sequence[str], retry_after: float | None
) -> GatewayError:
    payload = _load(body)
    suffix = _trace(trace_id)
    if isinstance(payload, dict):
        error = _business(payload, available_models, suffix)
        if error is not None:
            if isinstance(error, RateLimited) and retry_after is not None:
                error.retry_after = retry_after
            return error
    text = redact(_upstream_text(payload, body))
    said = f" (HTTP {status}: {text}){suffix}" if text else f" (HTTP {status}){suffix}"
    if status in (511, 413):
        return _too_long(said)
    if status == 514:
        return _model_error(said)
    if status == 429:
        return _rate_limited(said, retry_after)
    if status == 406:
        # What iFlow answered to unsigned or wrongly signed requests from 2026-02 on (§2).
        return UpstreamRejected(f"iFlow refused the request's signature or protocol{said}.")
    if status in (401, 403):
        return UpstreamAuthError(f"iFlow refused the API key{said}. {_RELOGIN}")
    if status == 404:
        # iFlow's gateway answers unknown paths with Spring Boot's 404 (§1): the URL is wrong.
        return UpstreamError(
            f"iFlow has no such endpoint{said}: the base URL is probably wrong "
            "(iFlow's is https://apis.iflow.cn/v1, to which /chat/completions is appended)."
        )
    if 400 <= status < 500:
        return InvalidRequest(f"iFlow refused the request{said}.", status=status)
    return UpstreamError(f"iFlow failed to answer{said}.")

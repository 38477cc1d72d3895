"""Request checks every dialect shares: the body as a JSON object, bounds on what a client can
make the gateway work on, and a table of parameters and the JSON type each must have.

A wrong type is a clear 400 naming the parameter, rather than an obscure upstream failure.

>>> check_types({"stream": "yes"}, {"stream": (bool, "a boolean")})
Traceback (most recent call last):
...
iflow2api.errors.InvalidRequest: 'stream' must be a boolean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import orjson

from iflow2api.errors import InvalidRequest
from iflow2api.written import WrittenList

#: The JSON type a parameter must have, and how an error message describes it.
ParamType = tuple[type | tuple[type, ...], str]
TypeTable = Mapping[str, ParamType]

#: How deep a request body may nest. orjson writes at most 254 levels, and a translated request
#: sits a few levels deeper than the client's (a tool's ``input_schema`` becomes
#: ``tools[i].function.parameters``); no real request comes near this.
MAX_DEPTH = 200
_ORJSON_MAX_DEPTH = 254
#: The longest model name accepted. The name is matched against alias globs, model families and
#: key patterns, and shown in logs and errors: a client must not make that work unbounded. Real
#: model names are well under 100 characters.
MAX_MODEL_LENGTH = 256


def load_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or ``InvalidRequest`` saying why it is not one.

    >>> load_object(b'{"model": "glm-4.7"}')
    {'model': 'glm-4.7'}
    >>> load_object(b"[" * 300 + b"]" * 300)
    Traceback (most recent call last):
    ...
    iflow2api.errors.InvalidRequest: The request body nests deeper than 200 levels.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses over 1,024 levels while reading; below that, the depth is checked here.
        if "depth" in str(exc):
            raise _too_deep() from None
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(payload, dict):
        if too_deep(payload, MAX_DEPTH):
            raise _too_deep()
        raise InvalidRequest("The request body must be a JSON object.")
    # An object is as deep as its deepest value plus one. Each array is checked by writing it, and
    # keeps what was written: passed upstream unchanged, it is not written again (``written``).
    for name, value in payload.items():
        if isinstance(value, list):
            wrapped = _written_within(value, MAX_DEPTH - 1)
            if wrapped is None:
                raise _too_deep()
            payload[name] = WrittenList(value, wrapped, _ORJSON_MAX_DEPTH - MAX_DEPTH + 1)
        elif isinstance(value, dict) and too_deep(value, MAX_DEPTH - 1):
            raise _too_deep()
    return payload


def _too_deep() -> InvalidRequest:
    return InvalidRequest(f"The request body nests deeper than {MAX_DEPTH} levels.", code="too_deep")


def too_deep(value: object, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` (at most 254) levels deep.

    orjson writes at most 254 levels, so it is asked to write ``value`` inside ``254 - limit``
    more: in C, about ten times faster than walking the value in Python, and without recursion.

    >>> too_deep({"a": [1, {"b": 2}]}, 3), too_deep({"a": [1, {"b": 2}]}, 2)
    (False, True)
    """
    return _written_within(value, limit) is None


def _written_within(value: object, limit: int) -> bytes | None:
    """``value`` written inside ``254 - limit`` arrays, or None if it nests deeper than ``limit``."""
    for _ in range(_ORJSON_MAX_DEPTH - limit):
        value = [value]
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # the only thing it cannot write of what orjson.loads returns
        return None


def check_model_length(model: str) -> None:
    check_length(model, "model")


def check_length(value: str, param: str, limit: int = MAX_MODEL_LENGTH) -> None:
    """A name or id the gateway looks up, matches or logs: bounded, so none of that can stall it."""
    if len(value) > limit:
        raise InvalidRequest(
            f"'{param}' must be at most {limit} characters.",
            param=param,
            code="string_above_max_length",
        )


def shown(value: object, limit: int = 60) -> str:
    """A client's value as an error message (and so the log) may quote it: in JSON, cut short.

    >>> shown("web_search"), shown("x" * 100, limit=4), shown([1, 2])
    ('"web_search"', '"xx…', 'an array')
    """
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    text = orjson.dumps(value[: limit + 1]).decode() if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_of(value: object, allowed: frozenset[str]) -> bool:
    """``value in allowed`` for any JSON value: a list or object is simply not one of them."""
    return isinstance(value, str) and value in allowed


def is_json_type(value: object, expected: type | tuple[type, ...]) -> bool:
    """``isinstance``, except that JSON's true/false are never numbers."""
    return isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)


def check_types(payload: Mapping[str, Any], table: TypeTable) -> None:
    """Raise ``InvalidRequest`` for the first present (non-null) parameter of the wrong type."""
    for name, (expected, described) in table.items():
        value = payload.get(name)
        if value is not None and not is_json_type(value, expected):
            raise InvalidRequest(f"'{name}' must be {described}.", param=name, code="invalid_type")


def fail(message: str, param: str, code: str = "invalid_value") -> NoReturn:
    """Refuse the request: ``message`` names what is wrong with ``param``."""
    raise InvalidRequest(message, param=param, code=code)


def ensure(ok: bool, param: str, message: str, code: str = "invalid_type") -> None:
    """``fail`` unless ``ok``."""
    if not ok:
        fail(message, param, code)


def as_object(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one: for reading what may be missing."""
    return value if isinstance(value, dict) else {}


def as_text(value: object) -> str:
    """``value`` if it is a string, else the empty string."""
    return value if isinstance(value, str) else ""


def count(value: object) -> int:
    """A token count as reported: a positive integer, else 0 (absent, null, negative or not a number)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

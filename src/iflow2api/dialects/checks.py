"""Request checks every dialect shares: a table of parameters and the JSON type each must have.

A wrong type is a clear 400 naming the parameter, rather than an obscure upstream failure.

>>> check_types({"stream": "yes"}, {"stream": (bool, "a boolean")})
Traceback (most recent call last):
...
iflow2api.errors.InvalidRequest: 'stream' must be a boolean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iflow2api.errors import InvalidRequest

TypeTable = Mapping[str, tuple[type | tuple[type, ...], str]]


def is_json_type(value: object, expected: type | tuple[type, ...]) -> bool:
    """``isinstance``, except that JSON's true/false are never numbers."""
    return isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)


def check_types(payload: Mapping[str, Any], table: TypeTable) -> None:
    """Raise ``InvalidRequest`` for the first present (non-null) parameter of the wrong type."""
    for name, (expected, described) in table.items():
        value = payload.get(name)
        if value is not None and not is_json_type(value, expected):
            raise InvalidRequest(f"'{name}' must be {described}.", param=name, code="invalid_type")

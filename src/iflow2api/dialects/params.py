"""The JSON types a request's parameters must have, named once for every dialect's table.

Each dialect lists its own parameters (in the order they are checked, so the first wrong one is the
one reported), in these words; ``checks.check_types`` applies the table.

>>> table(stream=BOOLEAN, top_k=INTEGER)["top_k"]
(<class 'int'>, 'an integer')
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from iflow2api.dialects.checks import ParamType, TypeTable

BOOLEAN: Final[ParamType] = (bool, "a boolean")
INTEGER: Final[ParamType] = (int, "an integer")
NUMBER: Final[ParamType] = ((int, float), "a number")
STRING: Final[ParamType] = (str, "a string")
ARRAY: Final[ParamType] = (list, "an array")
OBJECT: Final[ParamType] = (dict, "an object")
STRINGS: Final[ParamType] = (list, "an array of strings")
STRING_OR_STRINGS: Final[ParamType] = ((str, list), "a string or an array of strings")
STRING_OR_OBJECT: Final[ParamType] = ((str, dict), "a string or an object")


def table(**params: ParamType) -> TypeTable:
    """A dialect's parameters and the type each must have (null is always allowed)."""
    return MappingProxyType(params)

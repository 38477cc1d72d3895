"""The one table of request parameters and the JSON type each must have, for every dialect.

A name means the same in every API the gateway speaks (``temperature`` is a number everywhere), so
the types are written once; each dialect picks the parameters it checks, in the order they are
checked (the first wrong one is the one reported), and ``checks.check_types`` applies them. A
parameter whose shape differs in one API gives that dialect's type next to its name.

>>> checked("stream tool_choice", tool_choice=OBJECT)
mappingproxy({'stream': (<class 'bool'>, 'a boolean'), 'tool_choice': (<class 'dict'>, 'an object')})
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from iflow2api.dialects.checks import ParamType, TypeTable

BOOLEAN: Final[ParamType] = (bool, "a boolean")
INTEGER: Final[ParamType] = (int, "an integer")
NUMBER: Final[ParamType] = ((int, float), "a number")
STRING: Final[ParamType] = (str, "a string")
ARRAY: Final[ParamType] = (list, "an array")
OBJECT: Final[ParamType] = (dict, "an object")

PARAMS: Final[Mapping[str, ParamType]] = MappingProxyType(
    {
        "instructions": STRING,
        "max_completion_tokens": INTEGER,
        "max_output_tokens": INTEGER,
        "max_tokens": INTEGER,
        "metadata": OBJECT,
        "n": INTEGER,
        "output_config": OBJECT,
        "parallel_tool_calls": BOOLEAN,
        "previous_response_id": STRING,
        "reasoning": OBJECT,
        "reasoning_effort": STRING,
        "stop": ((str, list), "a string or an array of strings"),
        "stop_sequences": (list, "an array of strings"),
        "store": BOOLEAN,
        "stream": BOOLEAN,
        "stream_options": OBJECT,
        "temperature": NUMBER,
        "text": OBJECT,
        "thinking": OBJECT,
        "tool_choice": ((str, dict), "a string or an object"),
        "tools": ARRAY,
        "top_k": INTEGER,
        "top_p": NUMBER,
        "user": STRING,
    }
)


def checked(names: str, **own: ParamType) -> TypeTable:
    """The type table for the space-separated ``names``, in order: the type ``PARAMS`` gives each,
    unless ``own`` gives this dialect's."""
    return MappingProxyType({name: own.get(name) or PARAMS[name] for name in names.split()})

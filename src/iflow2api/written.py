"""Arrays of a request body that keep their JSON, so that what passes through unchanged is written
once, not twice.

A client's conversation is most of its request (Claude Code and Codex send all of it every turn,
up to megabytes), and the upstream usually gets it exactly as it came. The depth check writes
each array of the body anyway (``dialects.checks.load_object``); those bytes are kept with the
array, and ``dumps`` splices them into the upstream's body instead of writing the array again.

>>> messages = WrittenList([{"role": "user", "content": "Hi"}], b'[{"role":"user","content":"Hi"}]')
>>> dumps({"model": "glm-4.7", "messages": messages})
b'{"model":"glm-4.7","messages":[{"role":"user","content":"Hi"}]}'

An array that is changed loses its bytes (and is then written as any list is); so does one that is
replaced, since the replacement is a plain list. The dicts inside are never edited in place by the
gateway: a translation or a restored ``reasoning_content`` makes new ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, SupportsIndex

import orjson


class WrittenList(list[Any]):
    """A list, and the JSON it was read from (``json``), until something changes it.

    ``written`` may hold the JSON inside ``margin`` bytes of something else on each side (the depth
    check's wrapping): they are cut off only when the JSON is asked for, as most lists never are.
    """

    __slots__ = ("_json", "_margin")

    def __init__(self, items: Iterable[Any], written: bytes | None, margin: int = 0) -> None:
        super().__init__(items)
        self._json = written
        self._margin = margin

    @property
    def json(self) -> bytes | None:
        if self._margin and self._json is not None:
            self._json = self._json[self._margin : -self._margin]
            self._margin = 0
        return self._json

    # Every way of changing a list in place forgets the bytes, which would no longer match.
    def __setitem__(self, index: Any, value: Any) -> None:
        self._json = None
        super().__setitem__(index, value)

    def __delitem__(self, index: Any) -> None:
        self._json = None
        super().__delitem__(index)

    def __iadd__(self, other: Iterable[Any]) -> WrittenList:  # type: ignore[misc]
        self._json = None
        return super().__iadd__(other)

    def __imul__(self, count: SupportsIndex) -> WrittenList:
        self._json = None
        return super().__imul__(count)

    def append(self, value: Any) -> None:
        self._json = None
        super().append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self._json = None
        super().extend(values)

    def insert(self, index: SupportsIndex, value: Any) -> None:
        self._json = None
        super().insert(index, value)

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._json = None
        return super().pop(index)

    def remove(self, value: Any) -> None:
        self._json = None
        super().remove(value)

    def clear(self) -> None:
        self._json = None
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._json = None
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._json = None
        super().reverse()


def dumps(payload: dict[str, Any]) -> bytes:
    """``orjson.dumps(payload)``, the same bytes, with each ``WrittenList`` among its values spliced
    in from its JSON rather than written again."""
    spliced: dict[str, Any] | None = None
    for key, value in payload.items():
        if isinstance(value, WrittenList) and value.json is not None:
            if spliced is None:
                spliced = dict(payload)
            spliced[key] = orjson.Fragment(value.json)
    return orjson.dumps(payload if spliced is None else spliced)

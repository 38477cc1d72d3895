"""Model aliases: the model a client names (Claude Code asks for ``claude-*``) → an upstream model.

Used wherever a client names a model, whatever its API: the user's aliases, then these defaults.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: Claude model names → iFlow models; the first matching pattern wins (see ``resolve_model``).
DEFAULT_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "claude-*opus*": "glm-5",
        # Claude Code's small, fast model (titles, summaries, quick checks): one that does not think.
        "claude-*haiku*": "qwen3-coder-plus",
        "claude-*sonnet*": "glm-4.7",
        "claude-*": "glm-4.7",
    }
)


def resolve_model(name: str, aliases: Mapping[str, str]) -> str:
    """The target of the first glob in ``aliases`` matching ``name`` in any case, else ``name``.

    >>> resolve_model("claude-3-5-haiku-20241022", DEFAULT_ALIASES)
    'qwen3-coder-plus'
    """
    lowered = name.lower()
    for pattern, target in aliases.items():
        if fnmatch.fnmatchcase(lowered, pattern.lower()):
            return target
    return name

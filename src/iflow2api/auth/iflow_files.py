"""Reading the iFlow CLI's own files: ``settings.json`` and ``oauth_creds.json`` (protocol §5).

The CLI strips comments from settings.json when it reads it, so we do too. Nothing here writes:
these files belong to the CLI as much as to us.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

SETTINGS_FILE = "settings.json"
OAUTH_CREDS_FILE = "oauth_creds.json"


def strip_json_comments(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments outside strings.

    >>> strip_json_comments('{"a": "//x" // note\\n}')
    '{"a": "//x" \\n}'
    """
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The file's JSON object, or None when the file does not exist.

    Raises ``ValueError`` when it exists but is not a JSON object (for example half-written).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    if not text.strip():
        # The CLI truncates, then writes: an empty file is one caught mid-write, not "no settings".
        raise ValueError(f"{path.name} is empty")
    data = orjson.loads(strip_json_comments(text))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    return data

"""Secrets out of text that leaves the gateway: log lines, error messages, stored reasons.

Two kinds are taken out. Anything shaped like a secret (``sk-…`` keys, bearer tokens, values
labelled as a token or key) is masked, keeping a few characters to be recognisable, never enough
to be used. And the secrets a caller names, such as the key of the account an upstream answered
for, are removed whole whatever their shape: an upstream may quote the key it was sent.

>>> redact("Incorrect API key provided: AKIA0123456789abcd", ["AKIA0123456789abcd"])
'Incorrect API key provided: [redacted]'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SECRET = re.compile(
    r"(?P<sk>(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,})"  # also after "_" (key_sk-…), not in "disk-…"
    r"|(?P<bearer>(?i:bearer)\s+)(?P<token>[A-Za-z0-9._~+/\-]{8,}=*)"
    r"|(?P<label>(?i:access_token|refresh_token|api_?key|apiKey|client_secret)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>[A-Za-z0-9._~+/\-]{6,})"
)

#: Named secrets shorter than this are left alone: replacing them would erase ordinary words, and
#: no real key is that short.
MIN_SECRET = 8


def _mask(text: str) -> str:
    return f"{text[:4]}…{text[-2:]}" if len(text) > 10 else "…"


def _replace(match: re.Match[str]) -> str:
    if match.group("sk"):
        return _mask(match.group("sk"))
    if match.group("bearer"):
        return match.group("bearer") + _mask(match.group("token"))
    return match.group("label") + _mask(match.group("value"))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without ``secrets`` (removed whole) and with every secret-looking value masked.

    >>> redact("key sk-0123456789abcdef0123456789abcdef used")
    'key sk-0…ef used'
    """
    # The longest first, so a secret that holds another is not left half there.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= MIN_SECRET:
            text = _without(text, secret)
    return _SECRET.sub(_replace, text)


def _without(text: str, secret: str) -> str:
    """``text`` without ``secret``, nor the start of it that a cut short quote may have kept.

    >>> _without("body: 'key=AKIAZXCVBNMA'", "AKIAZXCVBNMASDFGHJKL")
    "body: 'key=[redacted]'"
    """
    text = text.replace(secret, "[redacted]")
    # Upstream text is quoted cut to a few hundred characters, and the cut may fall inside a key.
    for end in range(len(secret) - 1, MIN_SECRET - 1, -1):
        if secret[:end] in text:
            text = text.replace(secret[:end], "[redacted]")
    return text

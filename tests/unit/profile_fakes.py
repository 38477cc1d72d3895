"""What the provider profiles' unit tests share: the thinking intents every profile must turn into
something its host accepts, and the fake host's verdict on a body a profile built."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iflow2api.dialects.intent import Intent
from iflow2api.providers.base import Profile
from tests.fake_iflow import DEFAULT_KEY
from tests.fake_iflow.checks import Rejection
from tests.fake_iflow.hosts import Host

#: No intent, off, each kind of on (an effort, Anthropic's budget), and adaptive.
INTENTS: list[Intent | None] = [
    None,
    Intent("off"),
    Intent("on", "low"),
    Intent("on", "high"),
    Intent("on", "xhigh"),
    Intent("on", "medium", 8000),
    Intent("adaptive"),
]


#: A history that ends a tool loop's first turn: a call, and its result.
TOOL_LOOP: list[dict[str, Any]] = [
    {"role": "user", "content": "Read a.txt"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "hello"},
]


def verdict(profile: Profile, host: Host, body: dict[str, Any], models: Sequence[str]) -> Rejection | None:
    """Why ``host`` refuses ``body`` sent with ``profile``'s headers, or None."""
    return host.judge(profile.headers(DEFAULT_KEY), body, api_keys=[DEFAULT_KEY], models=models)

"""The ``generic`` profile: any OpenAI-compatible server, sent the client's request as it came.

This is what an ``openai-compatible`` account always got before profiles existed, and what it still
gets when its host is none the gateway knows (vLLM, Ollama, LM Studio, a company proxy...).
"""

from __future__ import annotations

from typing import ClassVar

from iflow2api.providers.base import Profile


class Generic(Profile):
    name: ClassVar[str] = "generic"
    title: ClassVar[str] = "Any OpenAI-compatible server"


PROFILE = Generic

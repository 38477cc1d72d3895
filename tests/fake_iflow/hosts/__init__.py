"""The fake's provider modes: one module per living host, each a ``Host`` that enforces what that
host enforces and answers in its shapes, built from the provider's own documentation.

``FakeIflow(mode="deepseek")`` plays the host of ``hosts/deepseek.py``. A module that defines
``HOST`` (a ``Host`` subclass) is a mode; ``openai`` is the plain OpenAI-compatible server (``Host``
itself). iFlow's own mode is ``checks.judge_iflow``, not a host here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from typing import Any

from tests.fake_iflow import checks


class Host:
    """A plain OpenAI-compatible server: the base every provider's host refines."""

    name = "openai"
    #: Where usage goes on a stream that asked for it: a chunk of its own (OpenAI), or the last.
    separate_usage = True
    #: Whether a stream carries its usage without ``stream_options.include_usage`` (Zhipu's does).
    usage_unasked = False

    def judge(
        self,
        headers: Mapping[str, str],
        body: dict[str, Any] | None,
        *,
        api_keys: Iterable[str],
        models: Iterable[str],
    ) -> checks.Rejection | None:
        """Why the host refuses this request (status and body as it answers), or None."""
        return checks.judge_openai(headers, body, api_keys=api_keys, models=models)

    def shape_completion(self, body: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        """A whole answer as the host writes it; the base writes reasoning as ``reasoning_content``."""
        return body

    def shape_chunks(self, chunks: list[dict[str, Any]], request: dict[str, Any]) -> list[dict[str, Any]]:
        """A stream's chunks as the host writes them."""
        return chunks


def _discover() -> dict[str, Host]:
    found: dict[str, Host] = {"openai": Host()}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        host = getattr(module, "HOST", None)
        if isinstance(host, type) and issubclass(host, Host):
            found[host.name] = host()
    return found


HOSTS = _discover()

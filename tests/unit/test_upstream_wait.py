"""The speakers tell the upstream's own ``Retry-After`` (which the pool honours) from a hint of ours."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iflow2api.errors import GatewayError, UpstreamError, UpstreamRateLimited
from iflow2api.providers import openai_wire as openai_compatible
from iflow2api.providers.iflow import rules as iflow


def from_iflow(status: int, body: bytes, retry_after: float | None) -> GatewayError:
    return iflow.http_error(status, body, None, available_models=[], retry_after=retry_after)


def from_compatible(status: int, body: bytes, retry_after: float | None) -> GatewayError:
    return openai_compatible.http_error(status, body, retry_after=retry_after)


Speak = Callable[[int, bytes, float | None], GatewayError]
SPEAKERS = pytest.mark.parametrize("speak", [from_iflow, from_compatible], ids=["iflow", "compatible"])


@SPEAKERS
@pytest.mark.parametrize(
    ("status", "kind"), [(429, UpstreamRateLimited), (503, UpstreamError)], ids=["429", "503"]
)
def test_a_retry_after_on_a_429_or_503_is_the_upstreams_own(
    speak: Speak, status: int, kind: type[GatewayError]
) -> None:
    error = speak(status, b'{"error": {"message": "later"}}', 7.0)
    assert isinstance(error, kind)
    assert (error.upstream_wait, error.retry_after) == (7.0, 7.0)
    assert (b"retry-after", b"7") in error.headers()


@SPEAKERS
def test_without_one_the_clients_hint_is_ours_and_the_upstream_asked_nothing(speak: Speak) -> None:
    error = speak(429, b"{}", None)
    assert error.upstream_wait is None and error.retry_after == 10.0


@SPEAKERS
@pytest.mark.parametrize("status", [500, 502, 400])
def test_a_retry_after_elsewhere_asks_for_no_rest(speak: Speak, status: int) -> None:
    error = speak(status, b"{}", 7.0)
    assert error.upstream_wait is None


def test_an_iflow_rate_limit_named_in_the_body_keeps_the_headers_wait() -> None:
    error = from_iflow(429, b'{"status": "8211", "msg": "rate limited"}', 12.0)
    assert isinstance(error, UpstreamRateLimited)
    assert error.upstream_wait == 12.0

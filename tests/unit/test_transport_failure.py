"""Transport failures become gateway errors in one place (``upstream.client.transport_failure``)."""

from __future__ import annotations

import pytest

from iflow2api.errors import (
    GatewayError,
    LoginUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from iflow2api.upstream import wire
from iflow2api.upstream.client import Stage, transport_failure

CASES = [
    ("asking", wire.ConnectTimeout("connect timed out"), UpstreamTimeout, "connect_timeout"),
    ("asking", wire.ReadTimeout("no head"), UpstreamTimeout, "within 12 s (setting first_byte_timeout)"),
    ("asking", wire.ConnectFailed("refused"), UpstreamUnavailable, "Upstream: refused."),
    ("reading", wire.BodyTooLarge("beyond 10 bytes"), UpstreamTooLarge, "max_upstream_body"),
    ("reading", wire.ReadTimeout("idle"), UpstreamTimeout, "stream_idle_timeout"),
    ("reading", wire.BrokenResponse("reset"), UpstreamError, "broke off before it was complete: reset"),
    (
        "login",
        wire.ReadTimeout("no answer"),
        LoginUnavailable,
        "login service could not be reached: no answer.",
    ),
]


@pytest.mark.parametrize(("stage", "exc", "kind", "words"), CASES)
def test_each_failure_has_its_error(
    stage: Stage, exc: wire.TransportError, kind: type[GatewayError], words: str
) -> None:
    error = transport_failure(exc, stage, first_byte_timeout=12)
    assert type(error) is kind
    assert words in error.message


def test_only_a_failure_to_connect_or_answer_in_time_is_worth_another_account() -> None:
    asking = [transport_failure(exc, "asking") for exc in (wire.ConnectFailed("x"), wire.ReadTimeout("x"))]
    assert all(error.retryable for error in asking)
    assert not transport_failure(wire.BodyTooLarge("x"), "reading").retryable

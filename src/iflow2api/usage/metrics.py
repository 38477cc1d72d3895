"""Prometheus metrics for ``GET /metrics``, in the text exposition format 0.0.4, with no dependency.

``Metrics.observe`` runs for every request, so it only bumps a few dict entries; the text is built
when scraped. Request counters and histograms come from the observed rows; the account and queue
gauges are read from the pool at scrape time and handed to ``render``.

With several instances (``redis_url``) or a name given (``instance_name``), every series carries an
``instance`` label (``instances.instance_name``), so the scrapes of several gateway instances add up
without colliding; one process alone and unnamed scrapes as it always did, with no such label
(``clustering.metrics_for`` decides). Prometheus sets an ``instance`` label of its own: scrape with
``honor_labels: true`` to keep ours. With several instances, two more counters show the
coordination store's failures: by operation, and the client-key admissions let through unchecked
because it did not answer (key limits fail open).

Every label value a client controls is bounded: the model name is cut to ``MAX_MODEL_LENGTH``
characters and, after ``MAX_MODELS`` distinct names, further ones are counted as ``other``, so a
client sending random model names cannot grow the scrape (or the gateway's memory) without end.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from iflow2api.state.records import UsageRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MAX_MODEL_LENGTH = 100
MAX_MODELS = 500
OTHER_MODEL = "other"

#: Seconds. LLM calls range from a cached refusal (tens of ms) to a long reasoning answer (minutes).
DURATION_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
#: Seconds to the first content byte: where "feels slow" starts, with a tail for slow reasoning.
TTFT_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300)

#: Reasoning tokens are a part of the completion's, cached ones (read from the upstream's prompt
#: cache) a part of the prompt's: add up only prompt and completion for the total.
TOKEN_TYPES = ("prompt", "completion", "reasoning", "cached")
ACCOUNT_STATES: tuple[str, ...] = (
    "ok", "cooling", "quarantined", "out-of-credit", "failing", "disabled", "needs-login"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AccountGauge:
    """One pool account as the scrape sees it."""

    label: str
    #: One of ``ACCOUNT_STATES``.
    state: str
    in_flight: int
    waiting: int


class _Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        # Per bucket, not cumulative (the last one is +Inf); cumulated when rendered.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le = "<=").
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{_escape_label(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


class _Writer:
    def __init__(self, instance: str) -> None:
        self.lines: list[str] = []
        self._instance: tuple[tuple[str, str], ...] = (("instance", instance),) if instance else ()

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: Iterable[tuple[str, str]], value: float) -> None:
        self.lines.append(f"{name}{_labels((*self._instance, *labels))} {_number(value)}")

    def histogram(self, name: str, labels: tuple[tuple[str, str], ...], histogram: _Histogram) -> None:
        cumulative = 0
        for bound, count in zip((*histogram.bounds, math.inf), histogram.counts, strict=True):
            cumulative += count
            self.sample(f"{name}_bucket", (*labels, ("le", _number(float(bound)))), cumulative)
        self.sample(f"{name}_sum", labels, histogram.sum)
        self.sample(f"{name}_count", labels, cumulative)

    def text(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


class Metrics:
    """Counters and histograms over every request since the gateway started.

    >>> metrics = Metrics()
    >>> row = UsageRow(at=0, key=None, account="a", model="m", dialect="chat", stream=False, status=200)
    >>> metrics.observe(row)
    >>> [line for line in metrics.render([], queue_depth=0).decode().splitlines()
    ...  if line.startswith("iflow2api_requests_total")]
    ['iflow2api_requests_total{dialect="chat",model="m",status="200",key="",account="a"} 1']
    """

    def __init__(self, *, instance: str = "", coordinated: bool = False) -> None:
        #: The ``instance`` label of every series (none when empty: a test's own metrics).
        self.instance = instance
        self._coordinated = coordinated
        self._coordination_failures: defaultdict[str, int] = defaultdict(int)
        self._failed_open = 0
        self._models: set[str] = set()
        self._requests: defaultdict[tuple[str, str, int, str, str], int] = defaultdict(int)
        #: (model, key, account) -> [prompt, completion, reasoning, cached], in ``TOKEN_TYPES`` order.
        self._tokens: dict[tuple[str, str, str], list[int]] = {}
        self._durations: dict[tuple[str, str], _Histogram] = {}
        self._first_tokens: dict[tuple[str, str], _Histogram] = {}
        self._attempts: defaultdict[str, int] = defaultdict(int)
        self._failovers = 0

    def _model_label(self, model: str) -> str:
        label = model[:MAX_MODEL_LENGTH]
        if label in self._models:
            return label
        if len(self._models) < MAX_MODELS:
            self._models.add(label)
            return label
        return OTHER_MODEL

    def observe(self, row: UsageRow) -> None:
        """Count one finished request."""
        model = self._model_label(row.model)
        key = row.key or ""
        account = row.account or ""
        self._requests[(row.dialect, model, row.status, key, account)] += 1
        if row.prompt_tokens or row.completion_tokens or row.reasoning_tokens or row.cached_tokens:
            tokens = self._tokens.get((model, key, account))
            if tokens is None:
                tokens = self._tokens[(model, key, account)] = [0, 0, 0, 0]
            tokens[0] += row.prompt_tokens
            tokens[1] += row.completion_tokens
            tokens[2] += row.reasoning_tokens
            tokens[3] += row.cached_tokens
        series = (row.dialect, model)
        duration = self._durations.get(series)
        if duration is None:
            duration = self._durations[series] = _Histogram(DURATION_BUCKETS)
        duration.observe(row.latency_ms / 1000)
        if row.ttft_ms is not None:
            first_token = self._first_tokens.get(series)
            if first_token is None:
                first_token = self._first_tokens[series] = _Histogram(TTFT_BUCKETS)
            first_token.observe(row.ttft_ms / 1000)
        self._attempts[row.dialect] += row.attempts
        self._failovers += max(row.attempts - 1, 0)

    def coordination_failed(self, operation: str) -> None:
        """The coordination store did not answer ``operation`` (``lease``, ``renew``, ``health``...)."""
        self._coordination_failures[operation] += 1

    def key_limits_failed_open(self) -> None:
        """A client key's request was admitted unchecked: the coordination store did not answer."""
        self._failed_open += 1

    def render(self, accounts: Sequence[AccountGauge], *, queue_depth: int) -> bytes:
        """The scrape body (serve it with ``CONTENT_TYPE``).

        Accounts sharing a label are added together: ``iflow2api_account_state`` then counts how
        many of them are in each state.
        """
        out = _Writer(self.instance)

        out.family("iflow2api_requests_total", "counter", "Requests answered, by outcome.")
        for (dialect, model, status, key, account), count in sorted(self._requests.items()):
            labels = (("dialect", dialect), ("model", model), ("status", str(status)), ("key", key))
            out.sample("iflow2api_requests_total", (*labels, ("account", account)), count)

        out.family(
            "iflow2api_tokens_total",
            "counter",
            "Tokens reported by the upstream, by type (reasoning is part of completion, cached of prompt).",
        )
        for (model, key, account), counts in sorted(self._tokens.items()):
            for kind, count in zip(TOKEN_TYPES, counts, strict=True):
                labels = (("type", kind), ("model", model), ("key", key), ("account", account))
                out.sample("iflow2api_tokens_total", labels, count)

        out.family(
            "iflow2api_request_duration_seconds", "histogram", "Seconds from arrival to the last byte sent."
        )
        for (dialect, model), histogram in sorted(self._durations.items()):
            out.histogram(
                "iflow2api_request_duration_seconds", (("dialect", dialect), ("model", model)), histogram
            )

        out.family(
            "iflow2api_time_to_first_token_seconds",
            "histogram",
            "Seconds from arrival to the first content byte sent (requests that sent one).",
        )
        for (dialect, model), histogram in sorted(self._first_tokens.items()):
            out.histogram(
                "iflow2api_time_to_first_token_seconds", (("dialect", dialect), ("model", model)), histogram
            )

        out.family("iflow2api_upstream_attempts_total", "counter", "Requests sent upstream, retries too.")
        for dialect, count in sorted(self._attempts.items()):
            out.sample("iflow2api_upstream_attempts_total", (("dialect", dialect),), count)

        out.family("iflow2api_failovers_total", "counter", "Upstream attempts beyond the first of a request.")
        out.sample("iflow2api_failovers_total", (), self._failovers)

        states: dict[str, dict[str, int]] = {}
        in_flight: dict[str, int] = {}
        waiting: dict[str, int] = {}
        for gauge in accounts:
            by_state = states.setdefault(gauge.label, dict.fromkeys(ACCOUNT_STATES, 0))
            by_state[gauge.state] = by_state.get(gauge.state, 0) + 1
            in_flight[gauge.label] = in_flight.get(gauge.label, 0) + gauge.in_flight
            waiting[gauge.label] = waiting.get(gauge.label, 0) + gauge.waiting

        out.family("iflow2api_account_state", "gauge", "1 for the state each upstream account is in, else 0.")
        for label, by_state in sorted(states.items()):
            for state, count in by_state.items():
                out.sample("iflow2api_account_state", (("account", label), ("state", state)), count)

        out.family("iflow2api_account_in_flight", "gauge", "Requests an upstream account is serving now.")
        for label, count in sorted(in_flight.items()):
            out.sample("iflow2api_account_in_flight", (("account", label),), count)

        out.family("iflow2api_account_waiting", "gauge", "Requests waiting for an upstream account's slot.")
        for label, count in sorted(waiting.items()):
            out.sample("iflow2api_account_waiting", (("account", label),), count)

        out.family("iflow2api_queue_depth", "gauge", "Requests waiting for any upstream slot.")
        out.sample("iflow2api_queue_depth", (), queue_depth)

        if self._coordinated:
            out.family(
                "iflow2api_coordination_failures_total",
                "counter",
                "Calls to the coordination store (Redis) that failed or timed out, by operation.",
            )
            for operation, count in sorted(self._coordination_failures.items()):
                out.sample("iflow2api_coordination_failures_total", (("operation", operation),), count)
            out.family(
                "iflow2api_key_limits_failed_open_total",
                "counter",
                "Client-key requests admitted without their limits checked: the coordination store was down.",
            )
            out.sample("iflow2api_key_limits_failed_open_total", (), self._failed_open)

        return out.text()

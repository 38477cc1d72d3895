from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from iflow2api.app import Gateway
from iflow2api.instances import instance_name
from iflow2api.settings import Settings, load
from iflow2api.state.postgres import PostgresStore
from iflow2api.state.records import UsageRow
from iflow2api.usage.metrics import DURATION_BUCKETS, TTFT_BUCKETS, AccountGauge, Metrics
from tests.memory_coordinator import MemoryCoordinator, MemoryStore

Series = tuple[str, frozenset[tuple[str, str]]]


def usage(**overrides: Any) -> UsageRow:
    fields: dict[str, Any] = {
        "at": 0.0,
        "key": "alice",
        "account": "acc-1",
        "model": "glm-4.7",
        "dialect": "chat",
        "stream": True,
        "status": 200,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "reasoning_tokens": 0,
        "latency_ms": 1000.0,
        "ttft_ms": None,
        "attempts": 1,
    }
    fields.update(overrides)
    return UsageRow(**fields)


def scrape(
    metrics: Metrics, accounts: list[AccountGauge] | None = None, queue_depth: int = 0
) -> dict[str, Any]:
    """Parse the exposition with the reference parser: family name -> (type, {series: value})."""
    text = metrics.render(accounts or [], queue_depth=queue_depth).decode()
    families: dict[str, Any] = {}
    for family in text_string_to_metric_families(text):
        samples = {(s.name, frozenset(s.labels.items())): s.value for s in family.samples}
        assert family.name not in families
        families[family.name] = (family.type, samples)
    return families


def series(name: str, **labels: str) -> Series:
    return (name, frozenset(labels.items()))


def histogram(
    name: str, bounds: tuple[float, ...], values: list[float], **labels: str
) -> dict[Series, float]:
    """What a histogram over ``values`` must show, counted here independently of the code under test."""
    expected: dict[Series, float] = {}
    for bound in (*bounds, math.inf):
        le = "+Inf" if bound == math.inf else repr(float(bound))
        expected[series(f"{name}_bucket", **labels, le=le)] = sum(1 for v in values if v <= bound)
    expected[series(f"{name}_count", **labels)] = len(values)
    expected[series(f"{name}_sum", **labels)] = sum(values)
    return expected


def test_every_family_has_help_and_type_even_before_any_request() -> None:
    text = Metrics().render([], queue_depth=0).decode()
    expected_types = {
        "iflow2api_requests_total": "counter",
        "iflow2api_tokens_total": "counter",
        "iflow2api_request_duration_seconds": "histogram",
        "iflow2api_time_to_first_token_seconds": "histogram",
        "iflow2api_upstream_attempts_total": "counter",
        "iflow2api_failovers_total": "counter",
        "iflow2api_account_state": "gauge",
        "iflow2api_account_in_flight": "gauge",
        "iflow2api_account_waiting": "gauge",
        "iflow2api_queue_depth": "gauge",
    }
    for name, kind in expected_types.items():
        assert re.search(rf"^# HELP {name} \S", text, re.MULTILINE), name
        assert f"\n# TYPE {name} {kind}\n" in "\n" + text
    assert text.endswith("\n")
    families = scrape(Metrics())
    assert {name: kind for name, (kind, _) in families.items()} == {
        name.removesuffix("_total"): kind for name, kind in expected_types.items()
    }
    assert families["iflow2api_failovers"][1] == {series("iflow2api_failovers_total"): 0}
    assert families["iflow2api_queue_depth"][1] == {series("iflow2api_queue_depth"): 0}


def test_counters_match_the_observed_rows() -> None:
    metrics = Metrics()
    rows = [
        usage(prompt_tokens=10, completion_tokens=20, reasoning_tokens=5, cached_tokens=8),
        usage(prompt_tokens=1, completion_tokens=2, reasoning_tokens=0),
        usage(status=429, key=None, account=None, attempts=1),
        usage(dialect="anthropic", model="glm-5", status=502, attempts=3, prompt_tokens=7),
        usage(
            dialect="anthropic", model="glm-5", status=200, attempts=2, account="acc-2", completion_tokens=4
        ),
    ]
    for row in rows:
        metrics.observe(row)
    families = scrape(metrics)

    def requests(dialect: str, model: str, status: str, key: str, account: str) -> Series:
        return series(
            "iflow2api_requests_total", dialect=dialect, model=model, status=status, key=key, account=account
        )

    def tokens(kind: str, model: str, account: str) -> Series:
        return series("iflow2api_tokens_total", type=kind, model=model, key="alice", account=account)

    assert families["iflow2api_requests"] == (
        "counter",
        {
            requests("chat", "glm-4.7", "200", "alice", "acc-1"): 2,
            requests("chat", "glm-4.7", "429", "", ""): 1,
            requests("anthropic", "glm-5", "502", "alice", "acc-1"): 1,
            requests("anthropic", "glm-5", "200", "alice", "acc-2"): 1,
        },
    )
    assert families["iflow2api_tokens"] == (
        "counter",
        {
            tokens("prompt", "glm-4.7", "acc-1"): 11,
            tokens("completion", "glm-4.7", "acc-1"): 22,
            tokens("reasoning", "glm-4.7", "acc-1"): 5,
            tokens("cached", "glm-4.7", "acc-1"): 8,
            tokens("prompt", "glm-5", "acc-1"): 7,
            tokens("completion", "glm-5", "acc-1"): 0,
            tokens("reasoning", "glm-5", "acc-1"): 0,
            tokens("cached", "glm-5", "acc-1"): 0,
            tokens("prompt", "glm-5", "acc-2"): 0,
            tokens("completion", "glm-5", "acc-2"): 4,
            tokens("reasoning", "glm-5", "acc-2"): 0,
            tokens("cached", "glm-5", "acc-2"): 0,
        },
    )
    assert families["iflow2api_upstream_attempts"][1] == {
        series("iflow2api_upstream_attempts_total", dialect="chat"): 3,
        series("iflow2api_upstream_attempts_total", dialect="anthropic"): 5,
    }
    assert families["iflow2api_failovers"][1] == {series("iflow2api_failovers_total"): 3}


def test_histograms_match_the_observed_rows() -> None:
    metrics = Metrics()
    chat_seconds = [0.01, 0.05, 0.0501, 0.3, 1.0, 299.0, 300.0, 400.0]
    chat_ttft = [0.05, 0.7, 500.0]
    for i, seconds in enumerate(chat_seconds):
        ttft = chat_ttft[i] if i < len(chat_ttft) else None
        metrics.observe(usage(latency_ms=seconds * 1000, ttft_ms=None if ttft is None else ttft * 1000))
    metrics.observe(usage(dialect="responses", latency_ms=2500.0, ttft_ms=None))
    families = scrape(metrics)

    kind, samples = families["iflow2api_request_duration_seconds"]
    assert kind == "histogram"
    expected = histogram(
        "iflow2api_request_duration_seconds", DURATION_BUCKETS, chat_seconds, dialect="chat", model="glm-4.7"
    )
    expected |= histogram(
        "iflow2api_request_duration_seconds", DURATION_BUCKETS, [2.5], dialect="responses", model="glm-4.7"
    )
    assert samples.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(samples[key], value), key

    kind, samples = families["iflow2api_time_to_first_token_seconds"]
    assert kind == "histogram"
    expected = histogram(
        "iflow2api_time_to_first_token_seconds", TTFT_BUCKETS, chat_ttft, dialect="chat", model="glm-4.7"
    )
    assert samples.keys() == expected.keys()  # no series for the dialect that never sent a first token
    for key, value in expected.items():
        assert math.isclose(samples[key], value), key


def test_buckets_suit_llm_calls() -> None:
    assert DURATION_BUCKETS[0] == 0.05 and DURATION_BUCKETS[-1] == 300
    assert list(DURATION_BUCKETS) == sorted(set(DURATION_BUCKETS))
    assert list(TTFT_BUCKETS) == sorted(set(TTFT_BUCKETS))


def test_account_gauges_and_queue_depth() -> None:
    accounts = [
        AccountGauge(label="work", state="cooling", in_flight=1, waiting=3),
        AccountGauge(label="home", state="ok", in_flight=0, waiting=0),
        AccountGauge(label="old", state="needs-login", in_flight=0, waiting=0),
    ]
    families = scrape(Metrics(), accounts, queue_depth=7)
    states = ("ok", "cooling", "quarantined", "out-of-credit", "failing", "disabled", "needs-login")
    current = {"work": "cooling", "home": "ok", "old": "needs-login"}
    assert families["iflow2api_account_state"] == (
        "gauge",
        {
            series("iflow2api_account_state", account=label, state=state): int(state == now)
            for label, now in current.items()
            for state in states
        },
    )
    assert families["iflow2api_account_in_flight"][1] == {
        series("iflow2api_account_in_flight", account="work"): 1,
        series("iflow2api_account_in_flight", account="home"): 0,
        series("iflow2api_account_in_flight", account="old"): 0,
    }
    assert families["iflow2api_account_waiting"][1] == {
        series("iflow2api_account_waiting", account="work"): 3,
        series("iflow2api_account_waiting", account="home"): 0,
        series("iflow2api_account_waiting", account="old"): 0,
    }
    assert families["iflow2api_queue_depth"][1] == {series("iflow2api_queue_depth"): 7}


def test_accounts_sharing_a_label_are_added_together() -> None:
    accounts = [
        AccountGauge(label="team", state="ok", in_flight=1, waiting=2),
        AccountGauge(label="team", state="ok", in_flight=1, waiting=0),
        AccountGauge(label="team", state="quarantined", in_flight=0, waiting=0),
    ]
    families = scrape(Metrics(), accounts)
    states = families["iflow2api_account_state"][1]
    assert states[series("iflow2api_account_state", account="team", state="ok")] == 2
    assert states[series("iflow2api_account_state", account="team", state="quarantined")] == 1
    assert families["iflow2api_account_in_flight"][1] == {
        series("iflow2api_account_in_flight", account="team"): 2
    }


def test_label_values_are_escaped() -> None:
    awkward = 'back\\slash "quoted"\nnew line'
    metrics = Metrics()
    metrics.observe(usage(key=awkward, account=awkward, model=awkward))
    text = metrics.render([AccountGauge(label=awkward, state="ok", in_flight=0, waiting=0)], queue_depth=0)
    assert b'key="back\\\\slash \\"quoted\\"\\nnew line"' in text
    families = scrape(metrics, [AccountGauge(label=awkward, state="ok", in_flight=0, waiting=0)])
    [(_, labels)] = families["iflow2api_requests"][1]
    assert dict(labels)["key"] == dict(labels)["account"] == dict(labels)["model"] == awkward
    assert series("iflow2api_account_waiting", account=awkward) in families["iflow2api_account_waiting"][1]


def test_model_labels_are_bounded() -> None:
    metrics = Metrics()
    long_name = "m" * 150
    metrics.observe(usage(model=long_name))
    for i in range(499):
        metrics.observe(usage(model=f"model-{i}"))
    metrics.observe(usage(model="one-too-many"))
    metrics.observe(usage(model="and-another"))
    metrics.observe(usage(model="model-7"))  # admitted before the cap: keeps its own series
    metrics.observe(usage(model=long_name + "-variant"))  # cut to the same 100 characters
    # Read straight from the text: the reference parser takes half a second over 500 series.
    text = metrics.render([], queue_depth=0).decode()
    by_model = {
        model: int(count)
        for model, count in re.findall(
            r'^iflow2api_requests_total\{[^}]*model="([^"]*)"[^}]*\} (\d+)$', text, re.M
        )
    }
    assert len(by_model) == 501
    assert by_model["m" * 100] == 2
    assert by_model["other"] == 2
    assert by_model["model-7"] == 2
    assert "one-too-many" not in by_model
    assert all(len(model) <= 100 for model in by_model)


def test_render_is_strict_text_format() -> None:
    """The reference parser is lax (it strips whitespace, skips unknown comments); check lines directly."""
    metrics = Metrics()
    metrics.observe(usage(ttft_ms=100.0, prompt_tokens=3))
    text = metrics.render(
        [AccountGauge(label="a", state="ok", in_flight=0, waiting=0)], queue_depth=1
    ).decode()
    sample = re.compile(r'^[a-z0-9_]+(\{([a-z]+="([^"\\\n]|\\[\\"n])*",?)*\})? (\d+|\d+\.\d+(e[+-]\d+)?)$')
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) iflow2api_[a-z_]+ \S", line), line
        else:
            assert sample.match(line), line


def test_every_series_names_its_instance_and_nothing_else_changes() -> None:
    alone, named = Metrics(), Metrics(instance="gw-1")
    for metrics in (alone, named):
        metrics.observe(usage(ttft_ms=300.0))
    gauges = [AccountGauge(label="work", state="ok", in_flight=1, waiting=0)]
    plain, labelled = scrape(alone, gauges, queue_depth=2), scrape(named, gauges, queue_depth=2)
    assert labelled.keys() == plain.keys()
    for name, (kind, samples) in plain.items():
        assert labelled[name] == (
            kind,
            {(sample, labels | {("instance", "gw-1")}): value for (sample, labels), value in samples.items()},
        )


def test_coordination_failures_and_fail_open_admissions_are_counted_with_several_instances() -> None:
    assert "coordination" not in Metrics(instance="gw-1").render([], queue_depth=0).decode()
    metrics = Metrics(instance="gw-1", coordinated=True)
    families = scrape(metrics)
    assert families["iflow2api_key_limits_failed_open"][1] == {
        series("iflow2api_key_limits_failed_open_total", instance="gw-1"): 0
    }
    metrics.coordination_failed("lease")
    metrics.coordination_failed("lease")
    metrics.coordination_failed("renew")
    metrics.key_limits_failed_open()
    families = scrape(metrics)
    assert families["iflow2api_coordination_failures"] == (
        "counter",
        {
            series("iflow2api_coordination_failures_total", instance="gw-1", operation="lease"): 2,
            series("iflow2api_coordination_failures_total", instance="gw-1", operation="renew"): 1,
        },
    )
    assert families["iflow2api_key_limits_failed_open"][1] == {
        series("iflow2api_key_limits_failed_open_total", instance="gw-1"): 1
    }


def labelled_instances(gateway: Gateway) -> set[str | None]:
    """The ``instance`` label of every series the gateway's scrape shows (None: a series without)."""
    gateway.metrics.observe(usage())
    families = scrape(gateway.metrics, [AccountGauge(label="a", state="ok", in_flight=0, waiting=0)])
    return {dict(labels).get("instance") for _kind, samples in families.values() for _name, labels in samples}


def gateway_settings(tmp_path: Path, **env: str) -> Settings:
    folders = {"IFLOW2API_DATA_DIR": str(tmp_path / "data"), "IFLOW_HOME": str(tmp_path / "iflow")}
    return load(env={**folders, **env}, config_path=None)


def test_one_process_unnamed_scrapes_as_before_several_instances(tmp_path: Path) -> None:
    # Its series are those of a gateway before issue 13: no instance label, no coordination counters.
    gateway = Gateway(gateway_settings(tmp_path))
    assert labelled_instances(gateway) == {None}
    assert "coordination" not in gateway.metrics.render([], queue_depth=0).decode()


def test_a_named_instance_labels_every_series_with_its_name(tmp_path: Path) -> None:
    gateway = Gateway(gateway_settings(tmp_path, IFLOW2API_INSTANCE_NAME="gw-a"))
    assert labelled_instances(gateway) == {"gw-a"}
    assert instance_name("gw-a") == gateway.instance == "gw-a"


def test_with_other_instances_every_series_has_the_one_name_the_store_and_coordinator_use(
    tmp_path: Path,
) -> None:
    # A coordinator handed in already has a name (not the default one): the store must use it too.
    me = "gw-coordinated"
    coordinator = MemoryCoordinator(MemoryStore(), me)
    # No connection is made before ``open``: the URL only has to look like PostgreSQL's.
    settings = gateway_settings(tmp_path, IFLOW2API_DATABASE_URL="postgresql://127.0.0.1:9/none")
    gateway = Gateway(settings, coordinator=coordinator)
    assert labelled_instances(gateway) == {me}
    assert gateway.instance == me
    assert isinstance(gateway.store, PostgresStore) and gateway.store.instance is not None
    assert gateway.store.instance.name == me

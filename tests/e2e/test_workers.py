"""``iflow2api serve --workers N``: refused without Redis; with it, N processes on one port that keep
one key's limit between them, and stop together."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from iflow2api.cli.workers import GIVE_UP
from tests.conftest import GatewayProcess, iflow_settings, write_settings
from tests.e2e.test_keys import bearer, create_key
from tests.fake_iflow import FakeIflow

CHAT = {"model": "glm-4.7", "messages": [{"role": "user", "content": "hi"}]}


def test_several_workers_without_redis_are_refused_saying_what_to_set(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IFLOW2API_", "IFLOW_"))}
    env.update({"IFLOW2API_DATA_DIR": str(tmp_path / "data"), "IFLOW_HOME": str(tmp_path / "home")})
    result = subprocess.run(
        [sys.executable, "-m", "iflow2api", "serve", "--workers", "2", "--port", "0", "--host", "127.0.0.1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--workers 2 needs redis_url" in lines[0] and "IFLOW2API_REDIS_URL" in lines[0]
    assert not (tmp_path / "data").exists()  # refused before touching anything


@pytest.fixture
def workers(tmp_path: Path, fake: FakeIflow, redis_url: str) -> Iterator[tuple[GatewayProcess, str, str]]:
    home, data = tmp_path / "home", tmp_path / "data"
    write_settings(home, iflow_settings(fake))
    limited = create_key(data, "limited", "--rpm", "3")
    boss = create_key(data, "boss", "--admin")
    env = {"IFLOW2API_REDIS_URL": redis_url, "IFLOW2API_WORKERS": "2", "IFLOW2API_INSTANCE_NAME": "gw"}
    gateway = GatewayProcess(home, data, env)
    try:
        gateway.wait_for_health()
        yield gateway, limited, boss
    finally:
        gateway.stop()


def worker_pids(gateway: GatewayProcess) -> list[int]:
    found = re.search(r"started 2 workers: (\d+), (\d+)", gateway.log_matching(r"started 2 workers"))
    assert found is not None
    return [int(found.group(1)), int(found.group(2))]


def instance_of(gateway: GatewayProcess, boss: str) -> set[str]:
    # A new connection each time: the kernel hands it to whichever worker accepts first.
    metrics = httpx.get(gateway.url + "/metrics", headers=bearer(boss), timeout=10)
    assert metrics.status_code == 200, metrics.text
    return set(re.findall(r'instance="([^"]+)"', metrics.text))


def test_two_workers_serve_one_port_keep_a_key_limit_and_stop_together(
    workers: tuple[GatewayProcess, str, str],
) -> None:
    gateway, limited, boss = workers
    pids = worker_pids(gateway)
    assert len(set(pids)) == 2 and gateway.process.pid not in pids
    seen: set[str] = set()
    for _ in range(60):
        seen |= instance_of(gateway, boss)
        if len(seen) == 2:
            break
    assert seen == {"gw-w1", "gw-w2"}, gateway.log()

    url = gateway.url + "/v1/chat/completions"
    answers = [httpx.post(url, json=CHAT, headers=bearer(limited), timeout=10).status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    for _ in range(4):  # whichever worker takes it
        refused = httpx.post(url, json=CHAT, headers=bearer(limited), timeout=10)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "key_rate_limit_exceeded"

    gateway.stop()  # SIGTERM to the parent only
    assert gateway.process.returncode == 0, gateway.log()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert gateway.log().count("Application shutdown complete") == 2, gateway.log()
    assert gateway.log().count("Finished server process") == 2


WRITER = """
import asyncio, sys, time
from pathlib import Path
from iflow2api.state import open_store
from iflow2api.state.records import UsageRow

async def main(data: Path, name: str, start: float) -> None:
    store = open_store(data)
    await store.open()
    while time.time() < start:  # all writers begin together
        await asyncio.sleep(0.001)
    for n in range(100):
        await store.add_usage([UsageRow(time.time(), name, None, "m", "chat", False, 200) for _ in range(5)])
        await store.put_setting(f"{name}-last", str(n))
    await store.close()

asyncio.run(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
"""


def test_several_processes_write_one_sqlite_file_in_wal_mode_and_lose_nothing(tmp_path: Path) -> None:
    """What ``--workers`` relies on: every write waits its turn (``busy_timeout``), none fails."""
    import asyncio
    import time

    from iflow2api.state import open_store

    data = tmp_path / "data"
    start = f"{time.time() + 1.5:.3f}"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data), f"w{n}", start], stderr=subprocess.PIPE, text=True
        )
        for n in range(3)
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0, errors

    async def read() -> tuple[list[str | None], int]:
        store = open_store(data)
        try:
            lasts = [await store.get_setting(f"w{n}-last") for n in range(3)]
            return lasts, len(await store.usage(since=0))
        finally:
            await store.close()

    lasts, rows = asyncio.run(read())
    assert lasts == ["99", "99", "99"] and rows == 3 * 100 * 5


def test_a_worker_that_keeps_crashing_is_restarted_ever_later_then_given_up(
    workers: tuple[GatewayProcess, str, str],
) -> None:
    gateway, _, _ = workers
    pid = worker_pids(gateway)[0]
    for crash in range(1, GIVE_UP):
        os.kill(pid, signal.SIGKILL)  # a crash soon after its start, again and again
        log = gateway.log_matching(r"started worker 1 again: \d+", count=crash, timeout=30)
        pid = int(re.findall(r"started worker 1 again: (\d+)", log)[-1])
    os.kill(pid, signal.SIGKILL)
    assert gateway.process.wait(timeout=30) == 1  # the parent gave up, and says so
    log = gateway.log()
    assert f"worker 1 crashed {GIVE_UP} times in a row" in log and "giving up" in log
    pauses = [float(p) for p in re.findall(r"ended \(exit code -9\); starting another in ([\d.]+) s", log)]
    assert pauses == [0.5, 1.0, 2.0, 4.0]

"""A private PostgreSQL for the tests: its own cluster in a temp dir, on a free loopback port.

Never a system server: ``initdb`` makes a throwaway cluster (trust auth, no fsync: nothing in it
needs to survive), ``pg_ctl`` starts it on 127.0.0.1 and stops it at the end of the session.
PostgreSQL refuses to run as root, so as root both run as the ``postgres`` user, which then owns
the temp dir.

Fixtures (enable with ``pytest_plugins = ["tests.pg_server"]`` or import them)::

    def test_x(postgres_url: str) -> None:   # a fresh, empty database for this test
        ...

Tests skip when PostgreSQL's programs are not installed (``.ci/run`` installs them).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.redis_server import free_port

_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _program(name: str) -> str | None:
    for folder in _BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    return shutil.which(name)


class PostgresServer:
    """One running cluster; ``database()`` makes a new empty database and gives its URL."""

    def __init__(self) -> None:
        initdb, pg_ctl = _program("initdb"), _program("pg_ctl")
        if initdb is None or pg_ctl is None:
            pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
        self.pg_ctl = pg_ctl
        root = getattr(os, "geteuid", lambda: -1)() == 0
        self.as_user = ["runuser", "-u", "postgres", "--"] if root else []
        self.folder = Path(tempfile.mkdtemp(prefix="iflow2api-pg-"))
        if self.as_user:
            shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = "postgres" if self.as_user else (os.environ.get("USER") or "postgres")
        self._numbers = itertools.count(1)
        self._run([initdb, "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync"])
        self.start()

    def start(self) -> None:
        """Start the server (again, after ``pause``), on the same port; wait until it accepts."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        log = str(self.folder / "log")
        self._run([self.pg_ctl, "-D", str(self.data), "-l", log, "-o", options, "-w", "start"])

    def pause(self) -> None:
        """Stop the server, keeping its data, as a restart does: every client is disconnected.

        A clean stop ("fast"): with fsync and synchronous_commit off, a crash would lose data.
        """
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def _run(self, argv: Sequence[str]) -> None:
        done = subprocess.run([*self.as_user, *argv], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}\n{self.log()}")

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "log").read_text(errors="replace")
        return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database (from ``template0``); its URL."""
        import psycopg  # only here: a run without the cluster extra can still load this plugin

        name = f"test_{next(self._numbers)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop it for good (nothing kept) and remove its folder."""
        with contextlib.suppress(RuntimeError):
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"])
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database of the session's private server."""
    return postgres_server.database()

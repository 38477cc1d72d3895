"""``iflow2api serve --workers N``: N gateway processes on one listening socket.

The parent binds the socket once and hands it to N processes (started fresh, ``spawn``: a forked
copy of a parent that already made threads is not safe); the kernel spreads the connections over
them. Each worker is a whole gateway with its own pool and key ring, so the workers agree through
the coordination store (``redis_url``): one in flight per account, key limits, one refresher. They
share the state store as several instances would (SQLite in WAL mode lets one writer at a time in
and makes the others wait up to its ``busy_timeout``; PostgreSQL with ``database_url``).

Each worker runs in a process group of its own, so a Ctrl+C in the terminal reaches only the parent,
which passes every stop signal on once, as SIGTERM: the first is each worker's graceful stop, a
second ends their open requests at once (as for one process, ``Gateway.stop_soon``). A worker that
dies is started again, unless it failed while starting (it would fail the same way again).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from multiprocessing.context import SpawnProcess
from types import FrameType

from iflow2api.instances import instance_name
from iflow2api.settings import Settings

log = logging.getLogger("iflow2api")

#: uvicorn's exit code for a server that could not start (``uvicorn.config.STARTUP_FAILURE``).
STARTUP_FAILURE = 3


def worker_name(settings: Settings, index: int, parent_pid: int) -> str:
    """Worker ``index``'s instance name: the configured name (or host name and the parent's pid,
    unique on this machine) with the worker's number.

    >>> from iflow2api.settings import load
    >>> worker_name(load(env={"IFLOW2API_INSTANCE_NAME": "gw"}, config_path=None), 2, 40)
    'gw-w2'
    """
    return f"{instance_name(settings.instance_name, pid=parent_pid)}-w{index}"


def run_worker(settings: Settings, sock: socket.socket) -> None:
    """One worker: a whole gateway serving ``sock`` (the parent's), until a stop signal."""
    os.setpgrp()  # the terminal's Ctrl+C is for the parent, which passes it on once
    from iflow2api import logs
    from iflow2api.app import create_app
    from iflow2api.cli.serve import server, uvicorn_config

    logs.setup(settings.log_level)
    # uvicorn raises the stop signal again once it has stopped, for the handler that was there
    # before it: the default one would kill the worker before its last log lines are written.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopped)
    app = create_app(settings)
    server(uvicorn_config(settings, app), app).run(sockets=[sock])


def _stopped(_number: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)  # a normal exit: the log's writer thread finishes (``logs.stop`` at exit)


class Workers:
    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        self._settings = settings
        self._sock = sock
        self._spawn = multiprocessing.get_context("spawn")
        self._processes: list[SpawnProcess] = []
        self._signals: list[int] = []

    def _start(self, index: int) -> SpawnProcess:
        # Inside, a worker is one gateway process like any other, under a name of its own.
        name = worker_name(self._settings, index, os.getpid())
        settings = self._settings.replace(instance_name=name, workers=1)
        process = self._spawn.Process(
            target=run_worker, args=(settings, self._sock), name=f"iflow2api-w{index}", daemon=False
        )
        process.start()
        return process

    def run(self) -> int:
        """Start the workers and watch them until a stop signal; the exit code for the command."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, _frame: self._signals.append(number))
        self._processes = [self._start(index) for index in range(1, self._settings.workers + 1)]
        log.info(
            "started %d workers: %s", len(self._processes), ", ".join(str(p.pid) for p in self._processes)
        )
        code = 0
        while not self._signals:
            time.sleep(0.2)
            for index, process in enumerate(self._processes):
                if process.is_alive() or self._signals:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("worker %s could not start; stopping the others", process.pid)
                    self._signals.append(signal.SIGTERM)
                    code = 1
                    break
                log.warning("worker %s ended (exit code %s); starting another", process.pid, process.exitcode)
                self._processes[index] = self._start(index + 1)
        return self._stop(code)

    def _stop(self, code: int) -> int:
        passed = 0
        while any(process.is_alive() for process in self._processes):
            # Each stop signal the parent got goes to every worker once (the first is graceful).
            while passed < len(self._signals):
                passed += 1
                for process in self._processes:
                    if process.is_alive() and process.pid is not None:
                        os.kill(process.pid, signal.SIGTERM)
            time.sleep(0.1)
        for process in self._processes:
            process.join()
        return code

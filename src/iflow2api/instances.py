"""An instance's name among several gateway instances: the one place it is made.

The state store (which instances use the database), the coordinator (whose leases and locks),
``/metrics`` (the ``instance`` label) and the start-up log all name an instance by this; the
workers of ``--workers N`` add their own ``-wN`` to it.
"""

from __future__ import annotations

import os
import socket


def instance_name(configured: str = "", *, pid: int | None = None) -> str:
    """``configured`` (the ``instance_name`` setting), else host name and process id.

    >>> instance_name("gw-a")
    'gw-a'
    >>> instance_name(pid=40) == f"{socket.gethostname()}-40"
    True
    """
    return configured or f"{socket.gethostname()}-{os.getpid() if pid is None else pid}"

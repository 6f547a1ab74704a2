"""Sandboxed worker processes: what every client of a worker pool shares.

Workers are fresh interpreters (``python -c``) with this package importable first, stopped by
closing their input.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from typing import Any

__all__ = ["available_cpus", "stop_workers", "worker_environment"]


def worker_environment() -> dict[str, str]:
    """The environment of a worker interpreter: this one's, with this package importable first (a
    worker starts from a fresh ``python -c``, whatever the current directory)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def stop_workers(workers: Iterable[Any], grace_s: float) -> None:
    """Stop worker processes (objects with ``proc`` and ``kill()``): close their input so that they
    exit on their own, then kill whichever is still there after ``grace_s`` seconds in all."""
    import subprocess

    workers = list(workers)
    for worker in workers:
        with contextlib.suppress(OSError):
            worker.proc.stdin.close()
    deadline = time.monotonic() + grace_s
    for worker in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.proc.wait(max(0.0, deadline - time.monotonic()))
        worker.kill()



def available_cpus() -> int:
    """CPUs this process may run on (the default number of workers)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1

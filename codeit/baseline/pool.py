"""The mutation baseline's worker processes, parent side: big items (a seed to mutate, a task to score
against a whole chunk of programs), one at a time per worker, so that messages are few and large.

The workers are those of :mod:`codeit.execution.workers` running
:class:`codeit.baseline.handler.BaselineHandler`, with site-packages (the mutator plugins come from
entry points).  An item may stay silent for ``stall_timeout`` seconds (the worker beats every 64
programs scored and every variant tried); a worker past that, or one that dies, is replaced and its
item retried once, then reported as failed.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from codeit.execution.limits import ExecutionLimits
from codeit.execution.workers import Job, Outcome, WorkerPool, WorkerSpec

__all__ = ["HANDLER", "BaselinePool", "WorkerSettings"]

#: What the workers run (tests may give another handler to exercise the pool).
HANDLER = "codeit.baseline.handler:BaselineHandler"


@dataclass(frozen=True)
class WorkerSettings:
    """What every baseline worker needs: the execution limits, whether scoring shares closure results
    (``memoise``), and the mutators -- the run's ``plugins`` config (``modules``, ``disable``) and
    ``max_attempts`` per seed and request."""

    limits: ExecutionLimits
    memoise: bool
    max_attempts: int
    plugins: Mapping[str, Any] = field(default_factory=dict)


class BaselinePool:
    """``workers`` baseline worker processes capped at ``memory_mb`` MiB each; a context manager.

    :meth:`run` hands out items and reports each answer (or failure) through callbacks.
    """

    def __init__(self, settings: WorkerSettings, workers: int, memory_mb: int, stall_timeout: float, *,
                 handler: str = HANDLER) -> None:
        # starting a worker (numpy, the plugins) and taking a chunk's programs are not an item's time
        spec = WorkerSpec(handler, settings, memory_mb=memory_mb, site=True,
                          beat_interval=2.0, start_timeout=max(60.0, stall_timeout))
        self.stall_timeout = stall_timeout
        self._pool = WorkerPool(spec, workers, depth=1)
        self._next_id = 0

    def __enter__(self) -> Self:
        self._pool.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._pool.close(grace_s=2.0)

    @property
    def restarts(self) -> int:
        """Workers replaced after a kill or a crash."""
        return self._pool.restarts

    def run(self, items: Iterable[tuple[Hashable, Any]], on_result: Callable[[Hashable, Any], None],
            on_failure: Callable[[Hashable, str], None], setup: tuple[Hashable, Any] | None = None) -> None:
        """Process ``items`` (``(key, request)`` pairs): ``on_result(key, answer)`` for each answer,
        ``on_failure(key, why)`` for an item that failed twice.  ``setup`` is ``(key, message)``,
        given to each worker before its first item (e.g. the chunk's programs to score)."""
        pool = self._pool
        pool.setup = None if setup is None else (setup[0], pickle.dumps(setup[1], pickle.HIGHEST_PROTOCOL))
        keys: dict[int, Hashable] = {}
        tried: dict[int, int] = {}
        jobs = []
        for key, request in items:
            keys[self._next_id] = key
            jobs.append(Job(self._next_id, pickle.dumps(request, pickle.HIGHEST_PROTOCOL), self.stall_timeout))
            self._next_id += 1
        pool.submit(jobs)
        while pool.busy:
            for outcome in pool.step():
                key = keys[outcome.job.id]
                if outcome.answer is not None:
                    on_result(key, pickle.loads(outcome.answer))
                elif tried.get(outcome.job.id, 0) < 1:
                    tried[outcome.job.id] = 1
                    pool.submit([outcome.job], first=True)
                else:
                    on_failure(key, self._why(outcome))

    def _why(self, outcome: Outcome) -> str:
        if outcome.error is not None:
            return f"error: {outcome.error}"
        if outcome.killed:
            return f"worker silent for {self.stall_timeout:g} s (killed)"
        return f"worker died ({outcome.died})"

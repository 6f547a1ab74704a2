"""The mutation baseline's worker processes, worker side: what a worker does with a message.

A setup message holds a chunk's programs (kept as a :class:`~codeit.execution.shared_eval.ProgramSet`);
a job is a :class:`~codeit.baseline.generation.MutateRequest` (variants of one seed program, from the
``codeit_mutate`` hooks of the mutators the run's ``plugins`` config selects) or a
:class:`~codeit.baseline.scoring.ScoreRequest` (one evaluation task against the chunk).  Every program
runs under the guard of :mod:`codeit.execution.interrupt` (the line limit, a resident-memory check)
inside the worker's address-space cap.  Built by :mod:`codeit.execution.workers` from
:class:`codeit.baseline.pool.WorkerSettings`; never imported by the parent.
"""

from __future__ import annotations

import gc
import pickle
from collections.abc import Iterable
from typing import Any

from codeit.baseline.generation import MutateRequest, mutate_seed
from codeit.baseline.pool import WorkerSettings
from codeit.baseline.scoring import ScoreRequest, score_task
from codeit.execution.interrupt import guard_process
from codeit.execution.shared_eval import ProgramSet
from codeit.execution.workers import beat
from codeit.plugins import get_plugin_manager
from codeit.tasks import Task

__all__ = ["BaselineHandler"]


class BaselineHandler:
    """Mutates seeds and scores tasks in a worker (module docstring)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.programs: ProgramSet | None = None
        self._hook: Any = None
        guard_process(settings.limits)
        gc.disable()  # DSL values are acyclic; collected explicitly after each item

    def setup(self, data: bytes) -> None:
        """Hold a chunk's programs for the tasks to score."""
        self.programs = None
        gc.unfreeze()
        gc.collect()
        self.programs = ProgramSet(pickle.loads(data), self.settings.limits, memoise=self.settings.memoise)
        gc.collect()
        gc.freeze()  # the program set lives long: keep it out of every later collection

    def run(self, item: memoryview) -> bytes:
        request = pickle.loads(item)
        if isinstance(request, ScoreRequest):
            answer: Any = score_task(self.programs, request, self.settings.limits, tick=beat)
        elif isinstance(request, MutateRequest):
            answer = mutate_seed(request, self._propose, self.settings.limits, tick=beat)
        else:
            raise TypeError(f"unknown request {type(request).__name__}")
        gc.collect()
        return pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)

    def _propose(self, task: Task, rng: Any, n: int) -> Iterable[str]:
        """What the selected mutators propose for ``task`` (the hooks' lists, in the order called)."""
        if self._hook is None:  # the first mutation request: the plugins load now
            self._hook = get_plugin_manager({"plugins": dict(self.settings.plugins)}).hook.codeit_mutate
        limits = self.settings.limits
        config = {"plugins": dict(self.settings.plugins),
                  "mutation": {"variants": n, "max_attempts": self.settings.max_attempts, "provenance": True},
                  "execution": {"timeout": limits.timeout, "line_timeout": limits.line_timeout,
                                "max_elements": limits.max_elements, "memory_mb": limits.memory_mb}}
        for proposals in self._hook(program=task.program, task=task, rng=rng, config=config):
            yield from proposals or ()

"""The mutation baseline's worker pool on Ray: its items (a seed to mutate, a task to score against a
chunk of programs) go to actors across a cluster, each owning a local
:class:`~codeit.baseline.pool.BaselinePool`.

:class:`RayBaselinePool` has the local pool's interface (``run(items, on_result, on_failure, setup)``,
``restarts``, a context manager), so the baseline's generation and scoring run unchanged on either
(:func:`codeit.baseline.pipeline.open_pool`).  Each call takes one item per worker process of an
actor; the chunk's programs (the ``setup``) go into Ray's object store once per pass and each actor
fetches them once.  Results are handed to the callbacks in this process, once per item: a call lost
with its actor or node is sent again (:mod:`codeit.distributed.dispatch`) and its items are reported
only when a call for them has come back.  The scores, their files and the curve are therefore those
of the local pool, and a killed run resumes from its score files as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Self

from codeit.baseline.pool import BaselinePool, WorkerSettings
from codeit.distributed.cluster import RaySettings, connect
from codeit.distributed.dispatch import ActorSet
from codeit.distributed.executor import actor_place, nodes_used

__all__ = ["BaselineActor", "RayBaselinePool"]


class BaselineActor:
    """A Ray actor owning one local :class:`BaselinePool` (its workers start with the actor)."""

    def __init__(self, settings: WorkerSettings, workers: int, memory_mb: int, stall_timeout: float) -> None:
        self.pool = BaselinePool(settings, workers, memory_mb, stall_timeout)
        self.pool.__enter__()
        self.setup_key: Hashable = None
        self.setup: Any = None

    def ping(self) -> str:
        return actor_place()

    def run(self, items: list[tuple[Hashable, Any]], setup_key: Hashable, setup_box: list[Any]
            ) -> tuple[list[tuple[Hashable, Any, str | None]], str, int]:
        """``(key, answer, None)`` or ``(key, None, why)`` per item, where it ran, and its pool's worker
        restarts so far.  ``setup_box`` holds the setup's object reference (in a list, so that Ray
        does not fetch it for every call)."""
        setup = None
        if setup_key is not None:
            if setup_key != self.setup_key:
                import ray

                self.setup, self.setup_key = ray.get(setup_box[0]), setup_key
            setup = (setup_key, self.setup)
        answers: list[tuple[Hashable, Any, str | None]] = []
        self.pool.run(items, lambda key, answer: answers.append((key, answer, None)),
                      lambda key, why: answers.append((key, None, why)), setup)
        return answers, actor_place(), self.pool.restarts


class RayBaselinePool:
    """The baseline's items on a Ray cluster (module docstring); a context manager.

    ``workers``: worker processes in all (None: the cluster's CPUs), ``settings.actor_cpus`` per actor.
    """

    def __init__(self, settings: WorkerSettings, workers: int | None, memory_mb: int, stall_timeout: float,
                 ray_settings: RaySettings, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.workers = workers
        self.memory_mb = memory_mb
        self.stall_timeout = stall_timeout
        self.ray_settings = ray_settings
        self.log = log
        self.actors: ActorSet | None = None
        self._ray: Any = None
        self._stack: contextlib.ExitStack | None = None
        self._restarts: dict[str, int] = {}

    def __enter__(self) -> Self:
        stack = contextlib.ExitStack()
        try:
            ray = self._ray = stack.enter_context(connect(self.ray_settings, num_cpus=self.workers))
            per_actor = int(self.ray_settings.actor_cpus)
            cpus = self.workers or int(ray.cluster_resources().get("CPU", 1))
            n_actors = int(self.ray_settings.actors or max(1, cpus // per_actor))
            actor_class = ray.remote(BaselineActor)
            args = (self.settings, per_actor, self.memory_mb, self.stall_timeout)

            def make_actor() -> Any:
                return actor_class.options(num_cpus=per_actor, scheduling_strategy="SPREAD").remote(*args)

            self.actors = stack.enter_context(ActorSet(ray, make_actor, n_actors,
                                                       retries=int(self.ray_settings.retries),
                                                       start_timeout=float(self.ray_settings.start_timeout),
                                                       log=self.log))
            self.log(f"ray: {n_actors} actor(s) of {per_actor} worker process(es) each")
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._stack is not None:
            if self._restarts:
                self.log(f"ray: work done by {len(self._restarts)} actor(s) on {nodes_used(self._restarts)}"
                         + (f"; {self.actors.resent} chunk(s) sent again after {self.actors.replaced} lost actor(s)"
                            if self.actors is not None and self.actors.resent else ""))
            self._stack.close()
        self._stack = None
        self.actors = None

    @property
    def restarts(self) -> int:
        """Workers replaced after a kill or a crash, over every actor that reported, plus lost actors."""
        return sum(self._restarts.values()) + (self.actors.replaced if self.actors is not None else 0)

    def run(self, items: Iterable[tuple[Hashable, Any]], on_result: Callable[[Hashable, Any], None],
            on_failure: Callable[[Hashable, str], None], setup: tuple[Hashable, Any] | None = None) -> None:
        """As :meth:`codeit.baseline.pool.BaselinePool.run`: ``on_result(key, answer)`` or
        ``on_failure(key, why)`` once per item, in the order the calls come back."""
        per_call = int(self.ray_settings.actor_cpus)
        key = None if setup is None else setup[0]
        box = [] if setup is None else [self._ray.put(setup[1])]

        def calls() -> Iterator[tuple[int, list]]:
            batch: list[tuple[Hashable, Any]] = []
            index = 0
            for item in items:
                batch.append(item)
                if len(batch) == per_call:
                    yield index, batch
                    batch, index = [], index + 1
            if batch:
                yield index, batch

        for _, (answers, place, restarts) in self.actors.results(calls(), lambda actor, batch: actor.run.remote(
                batch, key, box)):
            self._restarts[place] = restarts
            for item_key, answer, why in answers:
                if why is None:
                    on_result(item_key, answer)
                else:
                    on_failure(item_key, why)

"""The executor on Ray: ``(program, inputs)`` jobs in chunks to actors across a cluster.

:class:`RayExecutor` has :class:`~codeit.execution.executor.BatchExecutor`'s interface (``run(jobs,
progress)``, ``imap(jobs)``, a context manager, ``n_workers``), so the loop and ``codeit execute``
take either (:func:`codeit.execution.backend.make_executor`).  Each :class:`ExecutorActor` owns a
local :class:`~codeit.execution.executor.BatchExecutor` -- sandboxed worker processes with the run's
limits, watchdog and replacement exactly as on one machine -- and runs one chunk of jobs per call.
Chunks go out through :class:`codeit.distributed.dispatch.ActorSet`: numbered, results assembled
by number, a chunk of a lost actor or node sent again, so no job is lost or answered twice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Self

from codeit.distributed.cluster import RaySettings, connect
from codeit.distributed.dispatch import ActorSet
from codeit.execution.executor import BatchExecutor
from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits, ExecutionResult
from codeit.program import Program

__all__ = ["ExecutorActor", "RayExecutor", "actor_place", "nodes_used"]


def actor_place() -> str:
    """Where this actor runs: ``node address/node id (short)/pid`` (nodes of one machine share an address)."""
    import ray

    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}/{os.getpid()}"


def nodes_used(places: Iterable[str]) -> str:
    """``N node(s) (id, ...)`` of :func:`actor_place` strings."""
    nodes = sorted({place.split("/")[1] for place in places if place.count("/") == 2})
    return f"{len(nodes)} node(s) ({', '.join(nodes)})"


class ExecutorActor:
    """A Ray actor owning one local :class:`BatchExecutor` (its workers start with the actor)."""

    def __init__(self, workers: int, limits: ExecutionLimits, chunk_size: int, keep_values: bool,
                 start_timeout: float) -> None:
        self.executor = BatchExecutor(workers=workers, limits=limits, chunk_size=chunk_size, keep_values=keep_values,
                                      start_timeout=start_timeout)
        self.executor.start()

    def ping(self) -> str:
        return actor_place()

    def run(self, jobs: list[tuple[str, list[Any]]]) -> tuple[list[ExecutionResult], str, int]:
        """The chunk's results in job order, where it ran and its pool's worker restarts so far."""
        return self.executor.run(jobs, progress=False), actor_place(), self.executor.restarts


class RayExecutor:
    """Run ``(program, inputs)`` jobs on a Ray cluster (module docstring); a context manager.

    ``workers``: sandboxed worker processes in all (None: the cluster's CPUs); each actor has
    ``settings.actor_cpus`` of them (``settings.actors`` fixes the number of actors instead).  Results
    come back in job order as :class:`ExecutionResult` values, exactly as from a local executor.
    """

    def __init__(self, workers: int | None = None, limits: ExecutionLimits | None = None, *,
                 settings: RaySettings | None = None, chunk_size: int = 32, keep_values: bool = False,
                 start_timeout: float = 60.0, log: Callable[[str], None] | None = None) -> None:
        self.settings = settings or RaySettings()
        self.limits = limits or DEFAULT_LIMITS
        self.workers = workers
        self.chunk_size = max(1, chunk_size)
        self.keep_values = keep_values
        self.start_timeout = start_timeout
        self.log = log or (lambda text: print(text, flush=True))
        self.n_actors = 0
        self.actors: ActorSet | None = None
        self._stack: contextlib.ExitStack | None = None
        self._restarts: dict[str, int] = {}

    # -- life cycle ---------------------------------------------------------------------------
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Connect to the cluster and start the actors (done by :meth:`run` too)."""
        if self.actors is not None:
            return
        stack = contextlib.ExitStack()
        try:
            ray = stack.enter_context(connect(self.settings, num_cpus=self.workers))
            per_actor = int(self.settings.actor_cpus)
            cpus = self.workers or int(ray.cluster_resources().get("CPU", 1))
            self.n_actors = int(self.settings.actors or max(1, cpus // per_actor))
            actor_class = ray.remote(ExecutorActor)
            args = (per_actor, self.limits, self.chunk_size, self.keep_values, self.start_timeout)

            def make_actor() -> Any:
                return actor_class.options(num_cpus=per_actor, scheduling_strategy="SPREAD").remote(*args)

            self.actors = stack.enter_context(ActorSet(ray, make_actor, self.n_actors,
                                                       retries=int(self.settings.retries),
                                                       start_timeout=float(self.settings.start_timeout),
                                                       log=self.log))
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def close(self) -> None:
        """Stop the actors (and their workers); disconnect from a cluster this executor connected to."""
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self.actors = None

    @property
    def n_workers(self) -> int:
        """Sandboxed worker processes in all."""
        return max(1, self.n_actors or (self.workers or 1)) * int(self.settings.actor_cpus)

    @property
    def restarts(self) -> int:
        """Workers replaced after a kill or a crash, over every actor that reported."""
        return sum(self._restarts.values())

    # -- running ------------------------------------------------------------------------------
    def run(self, jobs: Iterable[tuple[Program | str, Sequence[Any]]],
            progress: bool | Callable[[int, int], None] | None = None) -> list[ExecutionResult]:
        """Every job's result, in job order; ``progress(done, total)`` after each chunk."""
        jobs = list(jobs)
        results: list[ExecutionResult] = []
        for result in self.imap(jobs):
            results.append(result)
            if callable(progress) and (len(results) % int(self.settings.chunk_size) == 0 or len(results) == len(jobs)):
                progress(len(results), len(jobs))
        return results

    def imap(self, jobs: Iterable[tuple[Program | str, Sequence[Any]]]) -> Iterator[ExecutionResult]:
        """Like :meth:`run`, but lazy: jobs are read a bounded number of chunks ahead, results yielded
        in job order."""
        self.start()
        finished: dict[int, list[ExecutionResult]] = {}
        following = 0
        calls = self.actors.results(self._chunks(jobs), lambda actor, chunk: actor.run.remote(chunk))
        for index, (results, place, restarts) in calls:
            self._restarts[place] = restarts
            finished[index] = results
            while following in finished:
                yield from finished.pop(following)
                following += 1

    def _chunks(self, jobs: Iterable[tuple[Program | str, Sequence[Any]]]) -> Iterator[tuple[int, list]]:
        size = int(self.settings.chunk_size)
        chunk: list[tuple[str, list[Any]]] = []
        index = 0
        for program, inputs in jobs:
            chunk.append((program if isinstance(program, str) else program.text, list(inputs)))
            if len(chunk) == size:
                yield index, chunk
                chunk, index = [], index + 1
        if chunk:
            yield index, chunk

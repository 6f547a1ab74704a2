"""Numbered chunks of work over a set of Ray actors: each chunk's result is taken exactly once.

A client (the Ray executor, the baseline's Ray pool) cuts its work into chunks numbered from 0 and
gives :meth:`ActorSet.results` a function that sends one chunk to one actor.  Actors are placed
across the cluster's nodes (Ray's ``SPREAD`` strategy); each gets up to ``depth`` chunks at a time,
so it starts the next one as soon as it has finished one.

**Exactly once.**  A result is kept by its chunk's number, and only the first result for a number
is yielded.  When an actor dies or its node is lost (``RayActorError``, a lost return object, a
crashed worker), every chunk it held fails on its own and is sent again, first in line, to a live
actor -- at most ``retries`` times per chunk, then the run fails with one clear error.  A lost actor
is replaced by a new one wherever the cluster has room; work goes only to actors that answered
their first call (a replacement waiting for room is never given a chunk).  If no actor is alive for
``start_timeout`` seconds while chunks wait, the run fails saying so.  An error raised by the
client's own code in an actor (``RayTaskError``) is a bug, raised here as it is, never retried.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

__all__ = ["ActorSet", "LostWork"]


class LostWork(RuntimeError):
    """A chunk was lost more often than allowed, or no actor could run the work."""


@dataclass
class _Chunk:
    index: int
    payload: Any
    tries: int = 0


@dataclass(eq=False)
class _Actor:
    handle: Any
    ping: Any  # the first call's result; the actor gets work once it has answered
    number: int
    ready: bool = False
    where: str = "?"
    held: set = field(default_factory=set)  # refs of the chunks it holds


def lost_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors that mean the work was lost with its actor, worker or node (not a bug)."""
    exc = ray.exceptions
    names = ("RayActorError", "ObjectLostError", "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError",
             "OutOfMemoryError")
    return tuple(getattr(exc, name) for name in names if hasattr(exc, name))


class ActorSet:
    """``n_actors`` actors made by ``make_actor()`` (module docstring); a context manager.

    ``make_actor()`` returns a new actor handle whose class has a ``ping()`` method (answering where
    it runs).  ``log`` receives one line per lost actor and per chunk sent again.
    """

    def __init__(self, ray: Any, make_actor: Callable[[], Any], n_actors: int, *, depth: int = 2,
                 retries: int = 3, start_timeout: float = 300.0, log: Callable[[str], None] = print) -> None:
        self.ray = ray
        self.make_actor = make_actor
        self.n_actors = max(1, n_actors)
        self.depth = max(1, depth)
        self.retries = retries
        self.start_timeout = start_timeout
        self.log = log
        self.actors: list[_Actor] = []
        self.resent = 0  # chunks sent again after a loss
        self.replaced = 0  # actors replaced after a loss
        self._made = 0
        self._lost = lost_errors(ray)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Create the actors (they start in the background; work waits for the first to answer)."""
        while len(self.actors) < self.n_actors:
            self._add()

    def close(self) -> None:
        """Kill every actor (its sandboxed workers end with it)."""
        for actor in self.actors:
            self._kill(actor)
        self.actors.clear()

    @property
    def places(self) -> list[str]:
        """Where the live actors run (``node-address/pid``)."""
        return [a.where for a in self.actors if a.ready]

    def _kill(self, actor: _Actor) -> None:
        with contextlib.suppress(Exception):  # already gone with its node
            self.ray.kill(actor.handle, no_restart=True)

    def _add(self) -> None:
        handle = self.make_actor()
        self._made += 1
        self.actors.append(_Actor(handle, handle.ping.remote(), self._made))

    def _lose(self, actor: _Actor, err: BaseException, also: int = 0) -> None:
        """An actor is gone (or unreachable): forget it, kill what may be left, start a replacement."""
        if actor not in self.actors:
            return
        self.actors.remove(actor)
        self._kill(actor)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        self.log(f"ray: lost actor {actor.number} on {actor.where} ({type(err).__name__}: {reason[:160]}); "
                 f"{len(actor.held) + also} chunk(s) it held go to other actors")
        self.replaced += 1
        self._add()

    def results(self, chunks: Iterable[tuple[int, Any]], call: Callable[[Any, Any], Any],
                window: int | None = None) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` for every ``(index, payload)`` of ``chunks``, in the order they finish;
        ``call(actor, payload)`` sends one chunk (returns Ray's reference to its result).  At most
        ``window`` chunks are read ahead of the results (default: twice what the actors hold)."""
        ray = self.ray
        self.start()
        window = window or 2 * self.depth * self.n_actors
        source = iter(chunks)
        exhausted = False
        waiting: deque[_Chunk] = deque()
        held: dict[Any, tuple[_Chunk, _Actor]] = {}
        done: set[int] = set()
        idle_since: float | None = None
        while True:
            while not exhausted and len(waiting) + len(held) < window:
                try:
                    index, payload = next(source)
                except StopIteration:
                    exhausted = True
                    break
                waiting.append(_Chunk(index, payload))
            for actor in sorted((a for a in self.actors if a.ready), key=lambda a: len(a.held)):
                while waiting and len(actor.held) < self.depth:
                    chunk = waiting.popleft()
                    ref = call(actor.handle, chunk.payload)
                    held[ref] = (chunk, actor)
                    actor.held.add(ref)
            if exhausted and not waiting and not held:
                return
            pending = list(held) + [a.ping for a in self.actors if not a.ready]
            if pending:
                ready, _ = ray.wait(pending, num_returns=1, timeout=1.0)
                if ready:
                    ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
            else:
                ready = []
                time.sleep(0.5)
            for ref in ready:
                if ref in held:
                    chunk, actor = held.pop(ref)
                    actor.held.discard(ref)
                    try:
                        value = ray.get(ref)
                    except self._lost as err:
                        self._lose(actor, err, also=1)
                        chunk.tries += 1
                        if chunk.tries > self.retries:
                            raise LostWork(f"chunk {chunk.index} was lost {chunk.tries} times (ray_retries="
                                           f"{self.retries}); last: {type(err).__name__}: {err}") from err
                        self.resent += 1
                        self.log(f"ray: chunk {chunk.index} sent again (loss {chunk.tries} of at most "
                                 f"{self.retries})")
                        waiting.appendleft(chunk)
                        continue
                    if chunk.index not in done:
                        done.add(chunk.index)
                        yield chunk.index, value
                else:
                    actor = next(a for a in self.actors if a.ping == ref)
                    try:
                        actor.where = str(ray.get(ref))
                        actor.ready = True
                    except self._lost as err:
                        self._lose(actor, err)
            if any(a.ready for a in self.actors) or not waiting:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self.start_timeout:
                raise LostWork(f"no Ray actor has been alive for {self.start_timeout:g} s while work waits: the "
                               "cluster has no room for one (ray status shows its free CPUs), or its actors "
                               "fail to start (see the errors above)")

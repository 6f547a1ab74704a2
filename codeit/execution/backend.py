"""Where sandboxed programs run: the execution backend named by ``execution.backend``.

``local`` (the default) is this machine's pool of sandboxed worker processes,
:class:`~codeit.execution.executor.BatchExecutor`, exactly as it always was: choosing it imports
nothing more.  ``ray`` is :class:`codeit.distributed.executor.RayExecutor`: actors across a Ray
cluster, each owning such a pool with the same limits (the optional extra ``[ray]``; Ray is imported
only then).  Both have the interface of :class:`Executor`, which is all the loop and ``codeit
execute`` use; the mutation baseline chooses its worker pool the same way
(:func:`codeit.baseline.pipeline.open_pool`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Self

from codeit.errors import UserError
from codeit.execution.executor import BatchExecutor
from codeit.execution.limits import ExecutionLimits, ExecutionResult

__all__ = ["BACKENDS", "Executor", "add_backend_arguments", "check_backend", "make_executor", "ray_config"]

BACKENDS = ("local", "ray")


class Executor(Protocol):
    """What runs ``(program, inputs)`` jobs: results in job order, a context manager."""

    n_workers: int

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def run(self, jobs: Iterable[tuple[Any, Sequence[Any]]],
            progress: bool | Callable[[int, int], None] | None = None) -> list[ExecutionResult]: ...

    def imap(self, jobs: Iterable[tuple[Any, Sequence[Any]]]) -> Iterator[ExecutionResult]: ...


def check_backend(name: Any) -> str:
    """``name`` if it is a backend, else a :class:`UserError` listing them."""
    if name not in BACKENDS:
        raise UserError(f"execution.backend must be one of {', '.join(BACKENDS)}, not {name!r}")
    return str(name)


def make_executor(execution: Mapping[str, Any], *, limits: ExecutionLimits | None = None,
                  workers: int | None = None, log: Callable[[str], None] | None = None) -> Executor:
    """The executor of a run config's ``execution`` section (``backend``, ``workers``, ``chunk_size``,
    the limits and, for Ray, ``ray_*``); ``limits`` and ``workers`` override the section's."""
    backend = check_backend(execution.get("backend", "local"))
    limits = limits or ExecutionLimits.from_config(execution)
    workers = workers if workers is not None else execution.get("workers")
    chunk_size = int(execution.get("chunk_size") or 32)
    if backend == "local":
        return BatchExecutor(workers=workers, limits=limits, chunk_size=chunk_size)
    from codeit.distributed.cluster import RaySettings
    from codeit.distributed.executor import RayExecutor

    return RayExecutor(workers, limits, settings=RaySettings.from_config(execution), chunk_size=chunk_size, log=log)


def add_backend_arguments(parser: argparse.ArgumentParser, default: str = "local", *, actors: bool = True,
                          what: str = "where the sandboxed workers run: this machine's pool (local) or actors "
                                      "across a Ray cluster, each owning such a pool (ray)") -> None:
    """``--backend`` and ``--ray-address`` (and, with ``actors``, ``--ray-actors`` and ``--ray-actor-cpus``)."""
    parser.add_argument("--backend", choices=BACKENDS, default=default,
                        help=what + '; ray needs pip install -e ".[ray]" (default: %(default)s)')
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="with --backend ray: the cluster (HOST:PORT), or 'local' to start a Ray instance on "
                             "this machine (127.0.0.1 only); default: $RAY_ADDRESS")
    if not actors:
        return
    parser.add_argument("--ray-actors", type=int, metavar="N",
                        help="with --backend ray: actors in all (default: one per --ray-actor-cpus CPUs)")
    parser.add_argument("--ray-actor-cpus", type=int, metavar="N",
                        help="with --backend ray: CPUs, i.e. sandboxed worker processes, per actor (default: 1)")


def ray_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ``execution.ray_*`` values given on a command line (those not given are left out)."""
    values = {"ray_address": args.ray_address, "ray_actors": getattr(args, "ray_actors", None),
              "ray_actor_cpus": getattr(args, "ray_actor_cpus", None)}
    return {key: value for key, value in values.items() if value is not None}

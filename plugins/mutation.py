"""Mutator ``depth1``: depth-1 mutations of a program (one primitive call or one argument replaced by
a type-compatible alternative), filtered by running them on the task's demonstration inputs.

The rules live in :mod:`codeit.search.mutation` (:class:`~codeit.search.mutation.VariantFilter` is
shared with the mutation baseline): a variant is kept if it gives a valid grid of fewer than 1,000
cells on every demonstration input, is not the identity, and its outputs differ from the parent's
and from every variant kept before.  A program whose types cannot be inferred (it does not parse, or
fails on a demonstration input) gets no variants; the reason is logged at debug level.  The variants
depend only on the program, the task and ``rng``.

Run config (all optional): ``config["mutation"]``: ``variants`` per call (4), ``max_attempts``
candidates tried per call (2000), ``provenance`` (variants as
:class:`~codeit.search.mutation.MutatedText`, which also say which edit made them; the mutation
baseline asks for it); ``config["execution"]``: the limits the variants run under.  The variants run
in this process, with the line time limit enforced by ``SIGALRM`` when called from the main thread;
in a worker process each candidate tried is a beat for its watchdog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from codeit.execution.limits import ExecutionLimits
from codeit.execution.workers import beat
from codeit.hookspecs import hookimpl
from codeit.search.inference import InferenceError
from codeit.search.mutation import Depth1Mutator, MutatedText, mutation_config
from codeit.tasks import Task

__all__ = ["NAME", "codeit_mutate", "depth1_variants"]

NAME = "depth1"
log = logging.getLogger(__name__)


def depth1_variants(program: str, task: Task, rng: Any, config: Mapping[str, Any] | None = None) -> list[str]:
    """The kept depth-1 variants of ``program`` for ``task`` (program texts, normalised)."""
    settings = mutation_config(config)
    limits = ExecutionLimits.from_config((config or {}).get("execution") or {})
    mutator = Depth1Mutator(limits, max_attempts=settings["max_attempts"])
    inputs = [e.input for e in task.train] + [e.input for e in task.test]
    try:
        mutants = mutator.variants(program, inputs, settings["variants"], rng, n_demonstrations=len(task.train),
                                   tick=beat)
    except InferenceError as err:
        log.debug("depth1: no variants of the program for task %s: %s", task.key, err)
        return []
    if settings["provenance"]:
        return [MutatedText(m.program, m.mutation) for m in mutants]
    return [m.program for m in mutants]


@hookimpl
def codeit_mutate(program: str, task: Task, rng: Any, config: Mapping[str, Any]) -> list[str] | None:
    """Depth-1 variants of ``program`` that run on ``task``'s demonstration inputs (see module doc);
    switch the mutator off with ``config["plugins"]["disable"] = ["depth1"]``."""
    return depth1_variants(program, task, rng, config)

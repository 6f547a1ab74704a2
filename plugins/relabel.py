"""Relabelers hindsight (default) and filter (ablation A2) (docs/algorithm.md §4 step 5).

``hindsight``: a program with at least one valid output becomes a new task whose examples are the
demonstration inputs it ran on with the outputs it actually produced; the program solves that task
by construction.  ``filter``: only a program that solves every demonstration of its task enters the
buffer (sampling and filtering).

Either way the entry records the program's demonstration accuracy on the original task, its
length in tokens and how close its outputs came to the targets (:func:`codeit.scoring.similarity`).
The new task's key is ``"<parent key>/<first 12 hex digits of the program's SHA-1>"``.

``config["plugins"]["relabel_skip_identity"]`` (default false, the paper): no entry for a program whose
every valid output equals its input -- the relabelled task would be the identity, which says nothing
about the program (``replace(I, SEVEN, ONE)`` on grids without 7s, ``switch(I, ONE, ONE)``, ...); the
mutator drops such variants for the same reason.  Left in, they pile up: a small policy writes them
for every search task, they are always valid, and they teach it that an output like its input calls
for them.

``config["plugins"]["relabel_normalise"]`` (default false, the paper): the entry holds the program
normalised (:meth:`codeit.program.Program.normalise`: the lines the output does not depend on dropped,
the variables renumbered), which computes the same outputs.  A policy that trains on its own programs
otherwise learns to write dead lines: in a CPU run 80% of the policy part carried some, and the
variants of one program with different dead lines filled the buffer as distinct entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from codeit.encoding import estimate_tokens
from codeit.hookspecs import hookimpl
from codeit.plugins import plugins_config
from codeit.program import normalised_text
from codeit.run.buffer import Entry
from codeit.scoring import accuracy, mean_similarity
from codeit.tasks import Example, Grid, Task, is_grid


def relabelled_key(parent_key: str, program: str) -> str:
    return f"{parent_key}/{hashlib.sha1(program.encode()).hexdigest()[:12]}"


def normalised(program: str) -> str:
    """``program`` without the lines its output does not depend on, variables renumbered (unchanged
    if it does not parse)."""
    return normalised_text(program) or program


def hindsight(task: Task, program: str, outputs: Sequence[Grid | None], source: str,
              iteration: int, skip_identity: bool = False, normalise: bool = False) -> list[Entry]:
    """One entry for the task the program's valid outputs define, or none if it has none (or, with
    ``skip_identity``, if every valid output equals its input); with ``normalise`` the entry holds
    the normalised program."""
    if len(outputs) != len(task.train):
        raise ValueError(f"task {task.key}: {len(outputs)} outputs for {len(task.train)} demonstrations")
    outputs = [o if is_grid(o) else None for o in outputs]
    examples = tuple(Example(ex.input, out) for ex, out in zip(task.train, outputs) if out is not None)
    if not examples or (skip_identity and all(ex.output == ex.input for ex in examples)):
        return []
    if normalise:
        program = normalised(program)
    new_task = Task(relabelled_key(task.key, program), examples, (), program)
    return [Entry(new_task, program, task.key, source, accuracy(outputs, task.train), estimate_tokens(program),
                  iteration, mean_similarity(outputs, task.train))]


def filter_solving(task: Task, program: str, outputs: Sequence[Grid | None], source: str,
                   iteration: int, skip_identity: bool = False, normalise: bool = False) -> list[Entry]:
    """The hindsight entry, kept only if the program solves every demonstration."""
    entries = hindsight(task, program, outputs, source, iteration, skip_identity, normalise)
    return [e for e in entries if e.accuracy == 1.0]


RELABELERS = {"hindsight": hindsight, "filter": filter_solving}


@hookimpl
def codeit_relabel(name: str, task: Task, program: str, outputs: Sequence[Grid | None], source: str,
                   iteration: int, config: Mapping[str, Any]) -> list[Entry] | None:
    relabeler = RELABELERS.get(name)
    if relabeler is None:
        return None
    settings = plugins_config(config)
    return relabeler(task, program, outputs, source, iteration, bool(settings.get("relabel_skip_identity", False)),
                     bool(settings.get("relabel_normalise", False)))

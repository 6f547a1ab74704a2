"""Relabelers hindsight (default) and filter (ablation A2) (docs/algorithm.md §4 step 5).

``hindsight``: a program with at least one valid output becomes a new task whose examples are the
demonstration inputs it ran on with the outputs it actually produced; the program solves that task
by construction.  ``filter``: only a program that solves every demonstration of its task enters the
buffer (sampling and filtering).

Either way the entry records the program's demonstration accuracy on the original task, its
length in tokens and how close its outputs came to the targets (:func:`codeit.scoring.similarity`).
The new task's key is ``"<parent key>/<first 12 hex digits of the program's SHA-1>"``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from codeit.encoding import estimate_tokens
from codeit.hookspecs import hookimpl
from codeit.run.buffer import Entry
from codeit.scoring import accuracy, mean_similarity
from codeit.tasks import Example, Grid, Task, is_grid


def relabelled_key(parent_key: str, program: str) -> str:
    return f"{parent_key}/{hashlib.sha1(program.encode()).hexdigest()[:12]}"


def hindsight(task: Task, program: str, outputs: Sequence[Grid | None], source: str,
              iteration: int) -> list[Entry]:
    """One entry for the task the program's valid outputs define, or none if it has none."""
    if len(outputs) != len(task.train):
        raise ValueError(f"task {task.key}: {len(outputs)} outputs for {len(task.train)} demonstrations")
    outputs = [o if is_grid(o) else None for o in outputs]
    examples = tuple(Example(ex.input, out) for ex, out in zip(task.train, outputs) if out is not None)
    if not examples:
        return []
    new_task = Task(relabelled_key(task.key, program), examples, (), program)
    return [Entry(new_task, program, task.key, source, accuracy(outputs, task.train), estimate_tokens(program),
                  iteration, mean_similarity(outputs, task.train))]


def filter_solving(task: Task, program: str, outputs: Sequence[Grid | None], source: str,
                   iteration: int) -> list[Entry]:
    """The hindsight entry, kept only if the program solves every demonstration."""
    entries = hindsight(task, program, outputs, source, iteration)
    return [e for e in entries if e.accuracy == 1.0]


RELABELERS = {"hindsight": hindsight, "filter": filter_solving}


@hookimpl
def codeit_relabel(name: str, task: Task, program: str, outputs: Sequence[Grid | None], source: str,
                   iteration: int, config: Mapping[str, Any]) -> list[Entry] | None:
    relabeler = RELABELERS.get(name)
    return None if relabeler is None else relabeler(task, program, outputs, source, iteration)

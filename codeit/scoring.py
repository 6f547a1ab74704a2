"""Scoring candidate programs: accuracy on examples and the top-3 rule of docs/algorithm.md §4 step 7.

Per search task, candidate programs are ranked by demonstration accuracy (descending), ties by
program length (shorter first; then by program text, so the ranking is deterministic); the task is
solved if one of the top ``k`` (3) candidates solves every test example.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from codeit.encoding import estimate_tokens
from codeit.tasks import Example, Grid

TOP_K = 3


def accuracy(outputs: Sequence[Grid | None], examples: Sequence[Example]) -> float:
    """Fraction of ``examples`` whose output equals the corresponding entry of ``outputs``.

    ``None`` (failed or invalid) counts as wrong; no examples gives 0.
    """
    if len(outputs) != len(examples):
        raise ValueError(f"{len(outputs)} outputs for {len(examples)} examples")
    if not examples:
        return 0.0
    return sum(out is not None and out == ex.output for out, ex in zip(outputs, examples)) / len(examples)


def solves(outputs: Sequence[Grid | None], examples: Sequence[Example]) -> bool:
    """True if every example is reproduced exactly (and there is at least one)."""
    return bool(examples) and accuracy(outputs, examples) == 1.0


def similarity(output: Grid | None, target: Grid) -> float:
    """Closeness of ``output`` to ``target`` in [0, 1]: equal cells in the overlap of the two grids
    (aligned at the top-left) divided by the larger grid's area; ``None`` gives 0."""
    if output is None:
        return 0.0
    rows = min(len(output), len(target))
    cols = min(len(output[0]), len(target[0]))
    same = sum(output[i][j] == target[i][j] for i in range(rows) for j in range(cols))
    area = max(len(output) * len(output[0]), len(target) * len(target[0]))
    return same / area


def mean_similarity(outputs: Sequence[Grid | None], examples: Sequence[Example]) -> float:
    """Mean :func:`similarity` of ``outputs`` to the examples' outputs (0 for no examples)."""
    if len(outputs) != len(examples):
        raise ValueError(f"{len(outputs)} outputs for {len(examples)} examples")
    if not examples:
        return 0.0
    return sum(similarity(o, e.output) for o, e in zip(outputs, examples)) / len(examples)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A candidate solution of one search task."""

    program: str
    demo_accuracy: float
    test_correct: bool  # solves every test example
    length: int  # program length in tokens

    @classmethod
    def from_outputs(cls, program: str, demo_outputs: Sequence[Grid | None], test_outputs: Sequence[Grid | None],
                     task_train: Sequence[Example], task_test: Sequence[Example]) -> Candidate:
        return cls(program, accuracy(demo_outputs, task_train), solves(test_outputs, task_test),
                   estimate_tokens(program))


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Candidates best first: accuracy descending, then length, then program text; one per program."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        old = best.get(c.program)
        if old is None or _order(c) < _order(old):
            best[c.program] = c
    return sorted(best.values(), key=_order)


def _order(c: Candidate) -> tuple[float, int, str]:
    return (-c.demo_accuracy, c.length, c.program)


def top_k(candidates: Iterable[Candidate], k: int = TOP_K) -> list[Candidate]:
    """The ``k`` submitted attempts."""
    return rank(candidates)[:k]


def is_solved(candidates: Iterable[Candidate], k: int = TOP_K) -> bool:
    """True if one of the top ``k`` candidates solves every test example."""
    return any(c.test_correct for c in top_k(candidates, k))


def solved_tasks(candidates_by_task: Mapping[str, Iterable[Candidate]], k: int = TOP_K) -> set[str]:
    """Keys of the tasks solved under the top-``k`` rule."""
    return {key for key, cands in candidates_by_task.items() if is_solved(cands, k)}

"""Scoring the mutation baseline's programs on the evaluation tasks (docs/mutation.md, step 3).

Per chunk, worker processes hold the chunk's programs in a
:class:`codeit.execution.shared_eval.ProgramSet` and take evaluation tasks one at a time
(:func:`score_task`).  A task's candidates (``any``, DESIGN.md §4 step 6) are the programs reproducing
at least one demonstration, ranked by the top-3 rule.  Only a candidate that solves the test
examples can make a task solved, and only programs reproducing at least as many demonstrations can
push it out of the top 3, so with ``prune`` scoring is two passes: first every program runs on the
test inputs (a miss ends it); then, only for the tasks where some program solved them, the programs
that reproduce at least as many demonstrations as the weakest of those are found
(:func:`ranking_needs`).  Without ``prune`` every program runs on every demonstration; with
``solving`` every program runs on the smallest demonstration input, the survivors on the next, and so
on.  Programs found by the shared evaluation are re-run alone (:func:`verify`).

Each task's result (:class:`TaskScore`) is appended to ``OUT/scores/chunk_XXXX.jsonl`` (first pass)
or ``chunk_XXXX.rank.jsonl`` (ranking) at once, so a killed run resumes with the tasks (and chunks)
already scored; a chunk's ranking is redone for a task when a later chunk brings a test-solving
program with fewer demonstrations.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from codeit.baseline.generation import Chunk, progress_bar
from codeit.baseline.pool import BaselinePool
from codeit.execution.limits import ExecutionLimits
from codeit.execution.shared_eval import ERROR, NodeTable, ProgramSet
from codeit.files import atomic_write
from codeit.program import parse
from codeit.tasks import Example, Task

__all__ = ["CandidateRecord", "ScoreRequest", "Scorer", "Solution", "TaskScore", "collect", "ranking_needs",
           "read_scores", "score_task", "verify"]

TESTS, DEMOS = "tests", "demos"


@dataclass(frozen=True)
class ScoreRequest:
    """A worker message: score the chunk's programs on ``task``.  ``stage="demos"``: the programs
    reproducing at least ``need`` demonstrations (``None``: all of them); ``stage="tests"``: those
    reproducing every test example and at least one demonstration."""

    task: Task
    stage: str = DEMOS
    need: int | None = None


@dataclass(frozen=True)
class Solution:
    """A program that matters for a task: its index in the chunk and its results, confirmed by a lone
    run, on the demonstrations and (if it reproduces enough of them) the test examples."""

    index: int
    demos: tuple[bool, ...]
    tests: tuple[bool, ...]


@dataclass(frozen=True)
class TaskScore:
    """One line of a score file: a task's solutions in one chunk, or why it could not be scored."""

    task: str
    solutions: tuple[Solution, ...] = ()
    fast_matches: int = 0
    seconds: float = 0.0
    need: int | None = None  # a ranking record: made for this need
    maxrss_mb: int | None = None
    failed: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the score files."""
        solutions = [[s.index, list(s.demos), list(s.tests)] for s in self.solutions]
        if self.failed is not None:
            return {"task": self.task, "solutions": solutions, "failed": self.failed}
        record = {"task": self.task, "solutions": solutions, "fast_matches": self.fast_matches,
                  "seconds": self.seconds}
        if self.need is not None:
            record["need"] = self.need
        if self.maxrss_mb is not None:
            record["maxrss_mb"] = self.maxrss_mb
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> TaskScore:
        solutions = tuple(Solution(i, tuple(d), tuple(t)) for i, d, t in record["solutions"])
        return cls(record["task"], solutions, record.get("fast_matches", 0), record.get("seconds", 0.0),
                   record.get("need"), record.get("maxrss_mb"), record.get("failed"))


class CandidateRecord(NamedTuple):
    """A candidate program of a task for the report (candidates sort by their global index)."""

    index: int
    program: str
    demos: Sequence[bool]
    tests: Sequence[bool]


# --------------------------------------------------------------------------------------------------
# in a worker


def cells(grid: Any) -> int:
    return len(grid) * len(grid[0]) if grid and grid[0] else 0


def score_task(programs: ProgramSet, request: ScoreRequest, limits: ExecutionLimits,
               tick: Callable[[], None] | None = None) -> TaskScore:
    """The programs of ``programs`` that matter for ``request.task`` (:class:`ScoreRequest`); the
    demonstrations are tried smallest input first and a program stops once it cannot get there.
    Programs found by the shared evaluation are confirmed by a lone run (:func:`verify`)."""
    task, stage, need = request.task, request.stage, request.need
    start = time.perf_counter()
    if stage == TESTS:
        need_demos = 1
        # no test example: nothing can solve the task (and every program would "pass" zero tests)
        found = programs.at_least(task.test, len(task.test), tick=tick) if task.test else []
    else:
        need_demos = len(task.train) if need is None else max(1, need)
        demos = sorted(task.train, key=lambda e: cells(e.input))
        found = programs.at_least(demos, need_demos, tick=tick)
    solutions = []
    for index in found:
        demo_ok, tests = verify(programs.texts[index], task, limits, need_demos)
        if sum(demo_ok) >= need_demos and (stage != TESTS or (tests and all(tests))):
            solutions.append(Solution(index, tuple(demo_ok), tuple(tests)))
    return TaskScore(task.key, tuple(solutions), len(found), round(time.perf_counter() - start, 3),
                     need if stage == DEMOS else None,
                     resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)


def verify(text: str, task: Task, limits: ExecutionLimits, need_demos: int) -> tuple[list[bool], list[bool]]:
    """Run one program alone (no sharing, no memo): (demonstration results, test results); the test
    examples are run only if at least ``need_demos`` demonstrations are reproduced."""
    program = parse(text).normalise()
    table = NodeTable(limits)
    slots = table.add(program)

    def run(example: Example) -> bool:
        value = table.run(slots, table.new_env(example.input))
        return value is not ERROR and value == example.output

    demos = [run(e) for e in task.train]
    if sum(demos) < max(1, need_demos):
        return demos, []
    return demos, [run(e) for e in task.test]


# --------------------------------------------------------------------------------------------------
# in the parent


def read_scores(path: Path, chunk_hash: str) -> dict[str, TaskScore]:
    """Task results already in a chunk's score file (empty if absent or for other programs)."""
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    try:
        header = json.loads(lines[0])
    except (json.JSONDecodeError, IndexError):
        return {}
    if header.get("hash") != chunk_hash:
        return {}
    done: dict[str, TaskScore] = {}
    for line in lines[1:]:
        try:
            record = TaskScore.from_json(json.loads(line))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # a line cut by a kill
        done[record.task] = record
    return done


def ranking_needs(first: Sequence[Mapping[str, TaskScore]]) -> dict[str, int]:
    """Per task with a test-solving candidate (first pass of the pruned ``any``): the fewest
    demonstrations such a candidate reproduces.  Only programs reproducing at least that many can
    rank above one of them, so only those need the ranking pass (docs/mutation.md)."""
    needs: dict[str, int] = {}
    for records in first:
        for key, record in records.items():
            for solution in record.solutions:
                needs[key] = min(needs.get(key, 1 << 30), sum(solution.demos))
    return needs


def collect(chunks: Sequence[Chunk], first: Sequence[Mapping[str, TaskScore]],
            ranked: Sequence[Mapping[str, TaskScore]], needs: Mapping[str, int],
            chunk_size: int) -> dict[str, list[CandidateRecord]]:
    """Candidates per task key, by global index, from the passes' records (one program once)."""
    found: dict[str, dict[int, CandidateRecord]] = {}
    for e, chunk in enumerate(chunks):
        offset = chunk.index * chunk_size
        for records in (first[e], ranked[e] if e < len(ranked) else {}):
            for key, record in records.items():
                for s in record.solutions:
                    if record.need is not None and sum(s.demos) < needs.get(key, 0):
                        continue  # ranked below every test-solving candidate: changes nothing
                    found.setdefault(key, {})[offset + s.index] = CandidateRecord(
                        offset + s.index, chunk.programs[s.index], s.demos, s.tests)
    return {key: sorted(entries.values()) for key, entries in found.items()}


class Scorer:
    """The scoring passes of a run over its chunks, resumable from ``scores`` (a folder)."""

    def __init__(self, pool: BaselinePool, evaluation: Sequence[Task], scores: Path, candidates: str, prune: bool,
                 progress: bool, log: Callable[[str], None]) -> None:
        self.pool, self.evaluation, self.scores = pool, evaluation, scores
        self.pruned = candidates == "any" and prune
        self.candidates = candidates
        self.progress, self.log = progress, log

    def score(self, chunks: Sequence[Chunk], chunk_size: int,
              after_chunk: Callable[[Chunk, dict[str, list[CandidateRecord]]], None]) -> dict[str, list[CandidateRecord]]:
        """Score every chunk in turn; ``after_chunk(chunk, candidates so far)`` after each."""
        first: list[dict[str, TaskScore]] = []  # per chunk: task key -> record of the first pass
        ranked: list[dict[str, TaskScore]] = []  # per chunk (pruned only): the ranking pass
        needs: dict[str, int] = {}
        # a resumed run: the first-pass records already on disk lower the ranking needs from the
        # start, so no ranking pass is made with a need that a later chunk is known to lower (ranking
        # more programs than a stage needs changes no verdict)
        on_disk = [read_scores(self._path(ch), ch.hash) for ch in chunks] if self.pruned else []
        solutions: dict[str, list[CandidateRecord]] = {}
        for chunk in chunks:
            if self.pruned:
                work = [ScoreRequest(t, TESTS) for t in self.evaluation]
            else:
                work = [ScoreRequest(t, DEMOS, 1 if self.candidates == "any" else None) for t in self.evaluation]
            done, n = self._pass(chunk, self._path(chunk), work, lambda r: True,
                                 "tests first" if self.pruned else "scoring")
            if not n:
                self.log(f"chunk {chunk.index}: already scored ({len(chunk.programs)} programs x "
                         f"{len(self.evaluation)} tasks)")
            first.append(done)
            if self.pruned:
                # every program (of every chunk so far) that could outrank a test-solving one
                needs = ranking_needs(first + on_disk[len(first):])
                ranked = [self._ranking(earlier, needs) for earlier in chunks[:len(first)]]
            solutions = collect(chunks[:len(first)], first, ranked, needs, chunk_size)
            after_chunk(chunk, solutions)
        return solutions

    def _path(self, chunk: Chunk, suffix: str = "") -> Path:
        return self.scores / f"chunk_{chunk.index:04d}{suffix}.jsonl"

    def _ranking(self, chunk: Chunk, needs: Mapping[str, int]) -> dict[str, TaskScore]:
        """The second pass of the pruned ``any``: per task with test-solving candidates (``needs``), the
        programs of ``chunk`` reproducing at least ``needs[task]`` demonstrations.  A record made for a
        higher need than today's (a later chunk brought a weaker test-solving candidate) is redone."""
        def valid(record: TaskScore) -> bool:
            return record.task in needs and (record.need if record.need is not None else 1 << 30) <= needs[record.task]

        work = [ScoreRequest(t, DEMOS, needs[t.key]) for t in self.evaluation if t.key in needs]
        return self._pass(chunk, self._path(chunk, ".rank"), work, valid, "ranking")[0]

    def _pass(self, chunk: Chunk, path: Path, work: Sequence[ScoreRequest], valid: Callable[[TaskScore], bool],
              what: str) -> tuple[dict[str, TaskScore], int]:
        """Score ``work`` on ``chunk``'s programs, keeping the records already in ``path`` that pass
        ``valid``; returns (records by task key, number of tasks scored now)."""
        done = {key: r for key, r in read_scores(path, chunk.hash).items() if valid(r)}
        todo = [w for w in work if w.task.key not in done]
        if todo:
            # (re)start the file from the records that survived (a kill may have cut the last line)
            header = {"chunk": chunk.index, "hash": chunk.hash, "programs": len(chunk.programs)}
            atomic_write(path, "".join(json.dumps(r) + "\n" for r in [header, *(d.to_json() for d in done.values())]))
            self._score(chunk, todo, path, done, what)
        return done, len(todo)

    def _score(self, chunk: Chunk, todo: Sequence[ScoreRequest], path: Path, done: dict[str, TaskScore],
               what: str) -> None:
        # biggest inputs first: the slow tasks do not end up alone at the end
        todo = sorted(todo, key=lambda w: -min(cells(e.input) for e in w.task.train))
        bar = progress_bar(len(todo), f"{what}: chunk {chunk.index} ({len(chunk.programs)} programs)", "task",
                           self.progress)
        start = time.perf_counter()
        with open(path, "a", encoding="utf-8") as f:
            def record(result: TaskScore) -> None:
                done[result.task] = result
                f.write(json.dumps(result.to_json()) + "\n")
                f.flush()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(found=sum(1 for r in done.values() if r.solutions), refresh=False)

            def on_failure(key: str, why: str) -> None:
                self.log(f"chunk {chunk.index}: task {key} not scored: {why}")
                record(TaskScore(key, failed=why))

            self.pool.run([(w.task.key, w) for w in todo], lambda key, result: record(result), on_failure,
                          setup=((chunk.index, chunk.hash), list(chunk.programs)))
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - start
        self.log(f"chunk {chunk.index}: {what}: {len(chunk.programs)} programs x {len(todo)} tasks in {seconds:.1f} s")

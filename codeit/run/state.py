"""What a run knows about its progress: the state a checkpoint keeps, and one iteration's results.

:class:`RunState` is everything a resumed run needs besides the model and the buffer (the metrics
history, every candidate solution found so far and the first solution of each task);
:class:`IterationResults` is what one meta-iteration's programs did, handed to observers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codeit.scoring import Candidate

__all__ = ["IterationResults", "ProgramRecord", "RunState", "is_timing_metric"]

#: metric names ending so are wall-clock figures (they differ between otherwise identical runs)
TIMING_SUFFIXES = ("_seconds", "_per_second", "_per_s")


def is_timing_metric(name: str) -> bool:
    """True for wall-clock metrics (they differ between otherwise identical runs)."""
    return name.endswith(TIMING_SUFFIXES)


@dataclass
class RunState:
    """Everything a resumed run needs besides the model and the buffer."""

    iteration: int = 0  # the next meta-iteration to run
    #: search task key -> program -> candidate (every source), and the first source of each
    candidates: dict[str, dict[str, Candidate]] = field(default_factory=dict)
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
    #: search task key -> first solution (cumulative top-3): program, iteration, source, demo accuracy
    solutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)  # metrics of each meta-iteration
    programs_total: int = 0
    init_metrics: dict[str, float] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    #: search tasks left out of the run (data.exclude_known_programs): their known program was in the initial buffer
    excluded_search: list[str] = field(default_factory=list)
    #: search task key -> the best (demonstration accuracy, output similarity) of the policy's programs so far
    policy_best: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: search task key -> the first meta-iteration at which the top 3 of the policy's programs so far solved it
    policy_solved_at: dict[str, int] = field(default_factory=dict)

    def update_policy_best(self, best_now: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        """Fold one meta-iteration's per-task best (accuracy, similarity) into :attr:`policy_best`."""
        best = self.__dict__.setdefault("policy_best", {})  # a state pickled before this field: start empty
        for key, (acc, sim) in best_now.items():
            old_acc, old_sim = best.get(key, (0.0, 0.0))
            best[key] = (max(old_acc, acc), max(old_sim, sim))
        return best

    def mark_policy_solved(self, key: str, iteration: int) -> None:
        """Note that the policy's top 3 solve task ``key`` at ``iteration`` (the first such iteration is kept)."""
        self.policy_solutions().setdefault(key, iteration)

    def policy_solutions(self) -> dict[str, int]:
        """:attr:`policy_solved_at`: the search tasks the policy's top 3 solved at some meta-iteration."""
        return self.__dict__.setdefault("policy_solved_at", {})  # a state pickled before this field: start empty

    def add_candidate(self, key: str, program: str, candidate: Candidate, source: str) -> None:
        """Remember ``program`` as a candidate of task ``key`` (the first source that found it wins)."""
        pool = self.candidates.setdefault(key, {})
        if program not in pool:
            pool[program] = candidate
            self.sources.setdefault(key, {})[program] = source

    def candidates_from(self, key: str, source: str) -> list[Candidate]:
        """Task ``key``'s candidates first found by sampler ``source``."""
        sources = self.sources.get(key, {})
        return [c for p, c in self.candidates.get(key, {}).items() if sources.get(p) == source]


@dataclass(frozen=True)
class ProgramRecord:
    """One distinct program executed for a search task in a meta-iteration."""

    task: str
    source: str
    program: str
    demo_accuracy: float
    valid_outputs: int  # demonstrations with a valid output grid
    test_correct: bool


@dataclass
class IterationResults:
    """What one meta-iteration's programs did: every program executed for a search task, and the
    candidates (programs reproducing at least one demonstration) found in this iteration by task."""

    iteration: int
    programs: list[ProgramRecord] = field(default_factory=list)
    found: dict[str, dict[str, Candidate]] = field(default_factory=dict)

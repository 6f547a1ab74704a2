"""The depth-1 mutator (codeit.search.mutation and the ``depth1`` plugin)."""

from __future__ import annotations

import numpy as np
import pytest
from mutation_support import arc_training, needs_data, published_training

from codeit.dsl import PRIMITIVES
from codeit.execution.limits import ExecutionLimits
from codeit.execution.runner import run_program
from codeit.grids import check_grid
from codeit.plugins import get_plugin_manager
from codeit.program import parse
from codeit.search.inference import InferenceError, infer_types
from codeit.search.mutation import MAX_CELLS, Depth1Mutator, apply_mutation, candidate_mutations
from codeit.search.seeds import load_seed_programs

GRIDS = [((0, 1, 1), (0, 2, 0), (3, 0, 0)), ((5, 5), (0, 5), (0, 0), (1, 0))]


def test_candidates_follow_the_type_rules():
    program = parse("x1 = vmirror(I)\nx2 = ofcolor(x1, ONE)\nO = fill(x1, TWO, x2)")
    types = infer_types(program, inputs=GRIDS)
    buckets = candidate_mutations(program, types)
    callee0 = buckets[(0, -1)]
    assert "hmirror" in callee0 and "rot90" in callee0 and "vmirror" not in callee0
    assert "size" not in callee0  # returns an Integer where x1 must be a Grid
    assert (0, 0) not in buckets  # I is the only grid before line 1
    colours = buckets[(1, 1)]
    assert "TWO" in colours and "ONE" not in colours and "DOWN" not in colours and "T" not in colours
    assert set(buckets[(2, 0)]) == {"I"}  # the other grid
    assert "ofcolor" not in buckets[(2, -1)]
    assert "underfill" in buckets[(2, -1)]  # same signature (Grid, Integer, Patch) -> Grid
    # a primitive passed as a function value is replaced by primitives of the same arity
    program = parse("x1 = objects(I, T, F, T)\nx2 = argmax(x1, size)\nO = subgrid(x2, I)")
    types = infer_types(program, inputs=GRIDS)
    functions = candidate_mutations(program, types)[(1, 1)]
    assert "height" in functions and "width" in functions
    assert all(n in {"I", "x1"} or not n.startswith("x") for n in functions)
    assert "shift" not in functions  # arity 2


def test_apply_mutation_normalises_and_rejects_invalid_programs():
    program = parse("x1 = vmirror(I)\nx2 = hmirror(I)\nO = hconcat(x1, x2)")
    mutant = apply_mutation(program, 2, 1, "x1")
    assert mutant.text == "x1 = vmirror(I)\nO = hconcat(x1, x1)"  # x2 became dead and was dropped
    assert apply_mutation(program, 1, -1, "vmirror") is None  # repeats the call of line 1


def _functions_in_containers(program: str) -> bool:
    """True if the program puts functions into tuples/sets: its results may then depend on memory
    addresses (dsl-spec §0.5), and two runs need not agree."""
    builders = {"astuple", "product", "combine", "initset", "insert", "pair", "repeat"}
    return any(line.callee in builders and any(a in PRIMITIVES for a in line.args)
               for line in parse(program).lines)


def _check_variants(program: str, inputs, n_demos: int, mutants) -> None:
    parent = run_program(program, inputs).outputs
    seen = {parent}
    for mutant in mutants:
        assert parse(mutant.program).normalise().text == mutant.program
        assert mutant.program != parse(program).normalise().text
        result = run_program(mutant.program, inputs)
        demos = result.outputs[:n_demos]
        assert all(e is None for e in result.errors[:n_demos]), (mutant.program, result.errors)
        for out in demos:
            assert check_grid(out)[1] is None and len(out) * len(out[0]) < MAX_CELLS
        assert any(o != i for o, i in zip(demos, inputs)), "identity"
        if _functions_in_containers(mutant.program):
            continue
        assert result.outputs[:n_demos] == mutant.outputs[:n_demos]
        # beyond the demonstrations a run may fail (None) where another one did not: a line close to
        # the 0.25 s limit passes or not with the machine's load; where both give a grid they agree
        for lone, kept in zip(result.outputs[n_demos:], mutant.outputs[n_demos:]):
            assert lone is None or kept is None or lone == kept
        assert result.outputs not in seen, "equivalent to the parent or an earlier variant"
        seen.add(result.outputs)


@pytest.mark.slow
def test_variants_of_seed_programs_are_valid_distinct_and_deterministic():
    seeds = load_seed_programs()
    # time limits no candidate line reaches: under the paper's 0.25 s per line, a line close to it
    # passed in one call and failed in the next on a loaded machine (seen with four jobs on 2 cores)
    mutator = Depth1Mutator(ExecutionLimits(timeout=60.0, line_timeout=30.0))
    total = 0
    for key in sorted(seeds)[:30]:
        task = arc_training()[key]
        inputs = [e.input for e in task.train] + [e.input for e in task.test]
        mutants = mutator.variants(seeds[key], inputs, 8, np.random.default_rng(7), len(task.train))
        _check_variants(seeds[key], inputs, len(task.train), mutants)
        again = mutator.variants(seeds[key], inputs, 8, np.random.default_rng(7), len(task.train))
        assert [m.program for m in again] == [m.program for m in mutants]
        longer = mutator.variants(seeds[key], inputs, 12, np.random.default_rng(7), len(task.train))
        assert [m.program for m in longer[:len(mutants)]] == [m.program for m in mutants]
        total += len(mutants)
    assert total > 100


@needs_data
def test_variants_of_published_programs():
    mutator = Depth1Mutator()
    tasks = sorted(published_training().values(), key=lambda t: t.key)[::25]
    total = 0
    for task in tasks:
        inputs = [e.input for e in task.train]
        try:
            mutants = mutator.variants(task.program, inputs, 6, np.random.default_rng(0))
        except InferenceError:
            continue
        _check_variants(task.program, inputs, len(inputs), mutants)
        total += len(mutants)
    assert total >= 5 * len(tasks)


def test_programs_that_cannot_be_typed_are_rejected_with_a_reason():
    mutator = Depth1Mutator()
    with pytest.raises(InferenceError, match="fails on demonstration input 1"):
        mutator.variants("x1 = ofcolor(I, FIVE)\nx2 = first(x1)\nO = crop(I, x2, UNITY)", GRIDS, 3,
                         np.random.default_rng(0))
    with pytest.raises(InferenceError, match="cannot parse"):
        mutator.variants("O = vmirror(I", GRIDS, 3, np.random.default_rng(0))


def test_depth1_plugin_hook():
    pm = get_plugin_manager()
    key = "c59eb873"
    task = arc_training()[key]
    program = load_seed_programs()[key]
    results = pm.hook.codeit_mutate(program=program, task=task, rng=np.random.default_rng(3),
                                    config={"mutation": {"variants": 3}})
    variants = [v for result in results for v in result]
    assert 1 <= len(variants) <= 3 and program not in variants
    assert pm.hook.codeit_mutate(program="O = vmirror(", task=task, rng=np.random.default_rng(3),
                                 config={}) == [[]]
    disabled = get_plugin_manager({"plugins": {"disable": ["depth1"]}})
    assert disabled.hook.codeit_mutate(program=program, task=task, rng=np.random.default_rng(3),
                                       config={}) == []

"""Relabelers: hindsight (every program with a valid output) and filter (only full solvers)."""

from __future__ import annotations

import pytest
from codeit_plugins.relabel import relabelled_key

from codeit.encoding import estimate_tokens
from codeit.plugins import get_plugin_manager
from codeit.run.buffer import ReplayBuffer
from codeit.run.priority import HookPriority

A = ((1, 2), (3, 4))
B = ((4, 3), (2, 1))
C = ((0,),)
TASK_GRIDS = [(A, B), (B, A), (C, C)]


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager()


@pytest.fixture
def task():
    from codeit.tasks import Example, Task

    return Task("search1", tuple(Example(i, o) for i, o in TASK_GRIDS), (Example(A, B),))


def relabel(pm, name, task, program, outputs, source="policy", iteration=3):
    return pm.hook.codeit_relabel(name=name, task=task, program=program, outputs=outputs, source=source,
                                  iteration=iteration, config={})


def test_hindsight_makes_a_task_from_the_outputs_produced(pm, task):
    program = "O = vmirror(I)"
    outputs = [B, ((9, 9),), None]  # right, wrong, failed
    [entry] = relabel(pm, "hindsight", task, program, outputs)
    assert entry.task.key == relabelled_key("search1", program) and entry.task.key.startswith("search1/")
    assert [(e.input, e.output) for e in entry.task.train] == [(A, B), (B, ((9, 9),))]
    assert entry.task.test == () and entry.task.program == program
    assert (entry.program, entry.parent_key, entry.source, entry.iteration) == (program, "search1", "policy", 3)
    assert entry.accuracy == pytest.approx(1 / 3)
    assert entry.similarity == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert entry.length == 6


def test_hindsight_needs_a_valid_output(pm, task):
    assert relabel(pm, "hindsight", task, "O = f(I)", [None, None, None]) == []
    not_grids = [((1, 10),), [[1]], ((1, 2), (3,))]  # colour 10, a list, ragged: not valid grids
    assert relabel(pm, "hindsight", task, "O = f(I)", not_grids) == []
    with pytest.raises(ValueError, match="3 demonstrations"):
        relabel(pm, "hindsight", task, "O = f(I)", [A])


def test_filter_keeps_only_programs_that_solve_every_demonstration(pm, task):
    assert relabel(pm, "filter", task, "O = f(I)", [B, A, None]) == []
    assert relabel(pm, "filter", task, "O = f(I)", [B, A, ((1,),)]) == []
    [entry] = relabel(pm, "filter", task, "O = g(I)", [B, A, C], source="mutated")
    assert entry.accuracy == 1.0 and entry.similarity == 1.0 and entry.source == "mutated"
    assert [(e.input, e.output) for e in entry.task.train] == TASK_GRIDS


def test_unknown_relabeler_is_not_answered(pm, task):
    assert relabel(pm, "nope", task, "O = f(I)", [B, A, C]) is None


def test_relabelled_entries_fill_the_buffer_once(pm, task):
    buffer = ReplayBuffer(HookPriority(pm, {}))
    for outputs in ([B, None, None], [B, A, C]):
        for program in ("O = f(I)", "O = g(I)"):
            buffer.add_many(relabel(pm, "hindsight", task, program, outputs))
    assert len(buffer) == 2  # same program for the same parent: stored once
    assert sorted(buffer.priorities.round(4).tolist()) == [0.3343, 0.3343]


def test_skip_identity_drops_programs_whose_outputs_are_their_inputs(pm, task):
    """``plugins.relabel_skip_identity``: a program that returns its input wherever it has a valid output
    defines the identity task and gets no entry (default: kept, the paper's behaviour)."""
    identity = [A, None, C]  # the inputs (one failed): every valid output is its input
    on = {"plugins": {"relabel_skip_identity": True}}
    for name in ("hindsight", "filter"):
        assert pm.hook.codeit_relabel(name=name, task=task, program="O = f(I)", outputs=identity, source="policy",
                                      iteration=0, config=on) == []
    [kept] = relabel(pm, "hindsight", task, "O = f(I)", identity)
    assert kept.accuracy == pytest.approx(1 / 3)  # C -> C is the third demonstration's answer
    # one output that differs from its input is enough to keep the entry
    [entry] = pm.hook.codeit_relabel(name="hindsight", task=task, program="O = f(I)", outputs=[B, None, C],
                                     source="policy", iteration=0, config=on)
    assert [(e.input, e.output) for e in entry.task.train] == [(A, B), (C, C)]


def test_normalise_drops_dead_lines_from_the_entry_program(pm, task):
    """``plugins.relabel_normalise``: the entry holds the program without the lines its output does not
    depend on (the same outputs), so variants differing only in dead lines are one entry."""
    on = {"plugins": {"relabel_normalise": True}}
    outputs = [B, None, C]
    programs = ["x1 = rot90(I)\nx2 = vmirror(I)\nO = hmirror(x2)", "x1 = vmirror(I)\nx2 = ofcolor(I, ONE)\nO = hmirror(x1)"]
    entries = [pm.hook.codeit_relabel(name=name, task=task, program=p, outputs=outputs if name == "hindsight" else [B, A, C],
                                      source="policy", iteration=0, config=on)[0]
               for name in ("hindsight", "filter") for p in programs]
    assert {e.program for e in entries} == {"x1 = vmirror(I)\nO = hmirror(x1)"}
    assert len({e.task.key for e in entries}) == 1 and entries[0].length == estimate_tokens(entries[0].program)
    buffer = ReplayBuffer(HookPriority(pm, {}))
    assert buffer.add_many(entries[:2]) == 1
    # off (the paper): the program as sampled; a program that does not parse is kept as it is
    [kept] = relabel(pm, "hindsight", task, programs[0], outputs)
    assert kept.program == programs[0]
    [odd] = pm.hook.codeit_relabel(name="hindsight", task=task, program="O = f(I", outputs=outputs, source="policy",
                                   iteration=0, config=on)
    assert odd.program == "O = f(I"

"""The top-3 rule and example accuracy."""

from __future__ import annotations

from codeit.scoring import Candidate, accuracy, is_solved, rank, similarity, solved_tasks, solves, top_k
from codeit.tasks import Example

A, B = ((1, 2),), ((3, 4),)


def test_accuracy_and_similarity():
    examples = [Example(A, A), Example(A, B), Example(B, B)]
    assert accuracy([A, A, None], examples) == 1 / 3
    assert solves([A, B, B], examples) and not solves([A, B, None], examples)
    assert similarity(((1, 4),), B) == 0.5 and similarity(None, B) == 0.0
    assert similarity(((3,),), B) == 0.5  # overlap 1 equal cell over the larger area 2
    assert similarity(((3, 4), (0, 0)), B) == 0.5


def test_rank_by_accuracy_then_length():
    c1 = Candidate("long", 1.0, False, 20)
    c2 = Candidate("short", 1.0, False, 5)
    c3 = Candidate("bad", 0.5, True, 1)
    c4 = Candidate("worse", 0.2, True, 1)
    assert [c.program for c in rank([c4, c3, c1, c2])] == ["short", "long", "bad", "worse"]
    assert [c.program for c in top_k([c4, c3, c1, c2])] == ["short", "long", "bad"]
    assert is_solved([c4, c3, c1, c2])  # "bad" is third and solves the test
    assert not is_solved([c4, c3, c1, c2, Candidate("x", 1.0, False, 1)])  # pushed out of the top 3
    assert solved_tasks({"t1": [c3], "t2": [c1], "t3": []}) == {"t1"}


def test_duplicate_programs_count_once():
    dup = [Candidate("p", 1.0, False, 3)] * 3 + [Candidate("q", 0.9, True, 3)]
    assert is_solved(dup)


def test_candidate_from_outputs():
    c = Candidate.from_outputs("O = vmirror(I)", [A, None], [B], [Example(A, A), Example(A, A)], [Example(A, B)])
    assert (c.demo_accuracy, c.test_correct, c.length) == (0.5, True, 6)

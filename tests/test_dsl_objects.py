"""Primitives 90-92 (dsl-spec §3.4): objects, partition, fgpartition.

``objects`` is optimised (cached per-shape neighbour sets, unrolled first wave, byte-grid fast path),
so its results — including the iteration order of the returned set and of every object — are
compared against a plain transcription of the construction in dsl-spec §3 entry 90.
"""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeit.dsl.measures import asindices, dneighbors, mostcolor, neighbors
from codeit.dsl.objects import fgpartition, objects, partition
from codeit.dsl.patches import palette

FLAGS = [(u, d, b) for u in (False, True) for d in (False, True) for b in (False, True)]
FAST = settings(max_examples=40, deadline=None)


def fails():
    """Any exception type will do: the spec only requires that these calls fail (dsl-spec §0.7)."""
    return pytest.raises(Exception)


def spec_objects(grid, univalued, diagonal, without_bg):
    """dsl-spec §3 entry 90, step by step: mutable sets grown wave by wave, then frozen."""
    bg = mostcolor(grid) if without_bg else None
    h, w = len(grid), len(grid[0])
    nbrs = neighbors if diagonal else dneighbors
    result, assigned = set(), set()
    for seed in asindices(grid):
        if seed in assigned:
            continue
        val = grid[seed[0]][seed[1]]
        if val == bg:
            continue
        obj, cands = {(val, seed)}, {seed}
        while cands:
            nxt = set()
            for cand in cands:
                v = grid[cand[0]][cand[1]]
                if (val == v) if univalued else (v != bg):
                    obj.add((v, cand))
                    assigned.add(cand)
                    nxt |= {(i, j) for i, j in nbrs(cand) if 0 <= i < h and 0 <= j < w}
            cands = nxt - assigned
        result.add(frozenset(obj))
    return frozenset(result)


def spec_partition(grid, colours):
    return frozenset(
        frozenset((v, (i, j)) for i, r in enumerate(grid) for j, v in enumerate(r) if v == value)
        for value in colours)


def same_order(a, b):
    """Equal, and the outer set and every object iterate in the same order."""
    return a == b and list(a) == list(b) and all(list(x) == list(y) for x, y in zip(a, b))


def random_grid(rnd, max_side=10, palette_=(0, 1, 2, 3, 8, 9)):
    h, w = rnd.randint(1, max_side), rnd.randint(1, max_side)
    colours = rnd.sample(palette_, rnd.randint(1, len(palette_)))
    return tuple(tuple(rnd.choice(colours) for _ in range(w)) for _ in range(h))


colours = st.sampled_from([0, 1, 2, 3, 8, 9])
grids = st.integers(1, 9).flatmap(
    lambda w: st.lists(st.lists(colours, min_size=w, max_size=w).map(tuple), min_size=1, max_size=9).map(tuple))


# --- observed examples --------------------------------------------------------------------------

G = ((0, 0, 1), (0, 2, 1), (3, 0, 0))
ONES = frozenset({(1, (0, 2)), (1, (1, 2))})
TWO = frozenset({(2, (1, 1))})
THREE = frozenset({(3, (2, 0))})


def test_objects_spec_examples():
    assert objects(G, True, False, True) == frozenset({ONES, TWO, THREE})
    assert objects(G, True, True, True) == frozenset({ONES, TWO, THREE})
    assert objects(G, False, False, True) == frozenset({ONES | TWO, THREE})
    assert objects(G, False, True, True) == frozenset({ONES | TWO | THREE})
    five = objects(G, True, False, False)
    assert len(five) == 5
    assert frozenset({(0, (0, 0)), (0, (0, 1)), (0, (1, 0))}) in five
    assert frozenset({(0, (2, 1)), (0, (2, 2))}) in five


def test_objects_consequences():
    g = ((5, 0, 0), (0, 0, 7), (7, 7, 0))
    for diagonal in (False, True):
        whole = objects(g, False, diagonal, False)
        assert whole == frozenset({frozenset((v, (i, j)) for i, r in enumerate(g) for j, v in enumerate(r))})
        with_bg = objects(g, True, diagonal, False)
        assert any(next(iter(o))[0] == 0 for o in with_bg)  # background components are objects too


def test_objects_degenerate_grids():
    with fails():
        objects((), True, False, False)
    with fails():
        objects((), True, False, True)
    for u, d in [(False, False), (True, True)]:
        assert objects(((),), u, d, False) == frozenset()
        with fails():
            objects(((),), u, d, True)
    assert objects(((4,),), True, False, True) == frozenset()  # the only cell is background
    assert objects(((4,),), True, True, False) == frozenset({frozenset({(4, (0, 0))})})


def test_objects_returns_fresh_frozensets():
    a, b = objects(G, True, False, True), objects(G, True, False, True)
    assert a == b and a is not b
    assert all(isinstance(o, frozenset) for o in a)


# --- construction order ---------------------------------------------------------------------------

# Grids on which merging neighbours into the wave set one at a time (instead of as a separate set
# with in-place union) changes the iteration order, and grids on which starting the second wave
# from the seed's neighbour set itself (instead of a fresh set merged with it) does.
ORDER_TRAPS = [
    (((1, 1), (0, 1), (0, 0), (1, 0)), (True, True, False)),
    (((0, 1, 0), (2, 0, 2), (1, 2, 1), (1, 1, 0)), (True, True, False)),
    (((2, 3, 1, 0, 2, 3), (3, 2, 3, 2, 2, 0), (0, 3, 3, 2, 0, 3)), (False, False, True)),
    (((1, 1, 3, 1), (3, 0, 3, 0), (2, 1, 1, 3), (2, 2, 2, 2), (2, 0, 2, 1)), (False, False, True)),
    (((0, 1), (2, 1), (0, 0), (2, 0)), (True, True, False)),
    (((0, 0), (1, 1), (0, 0), (1, 0), (1, 1), (1, 1)), (True, True, False)),
    (((2, 1, 1), (2, 2, 2), (2, 1, 0), (0, 0, 2)), (True, True, False)),
]


@pytest.mark.parametrize("grid, flags", ORDER_TRAPS)
def test_objects_order_traps(grid, flags):
    assert same_order(objects(grid, *flags), spec_objects(grid, *flags))


def test_objects_matches_the_spec_construction_on_random_grids():
    rnd = random.Random(1234)
    for _ in range(150):
        grid = random_grid(rnd)
        for flags in FLAGS:
            assert same_order(objects(grid, *flags), spec_objects(grid, *flags)), (grid, flags)


def test_objects_general_path_matches_the_spec_construction():
    # Colours outside 0-255, None cells and ragged grids skip the byte fast path.
    rnd = random.Random(99)
    for _ in range(40):
        grid = random_grid(rnd, 6, (-1, 0, 300, 7))
        for flags in FLAGS:
            assert same_order(objects(grid, *flags), spec_objects(grid, *flags)), (grid, flags)
    none_grid = ((None, 1, 1), (2, None, 1), (None, None, 0))
    for flags in FLAGS:
        assert same_order(objects(none_grid, *flags), spec_objects(none_grid, *flags))
    # None cells count as background when there is no background colour (bg is None).
    assert all(v is not None for o in objects(none_grid, False, True, False) for v, _ in o)
    ragged = ((1, 1, 2), (1, 2), (2, 2, 2))
    with fails():
        objects(ragged, True, False, False)
    wide = ((1, 1), (1, 2, 5), (2, 2))  # cells beyond the first row's width are ignored
    for flags in FLAGS:
        assert same_order(objects(wide, *flags), spec_objects(wide, *flags))


def test_objects_on_many_shapes_stays_consistent():
    # Exercises the per-shape caches (including eviction) against the spec construction.
    rnd = random.Random(7)
    for h in range(1, 31, 3):
        for w in range(1, 31, 4):
            grid = tuple(tuple(rnd.choice((0, 0, 0, 4, 5)) for _ in range(w)) for _ in range(h))
            flags = rnd.choice(FLAGS)
            assert same_order(objects(grid, *flags), spec_objects(grid, *flags)), (grid, flags)


def test_objects_on_a_grid_too_large_for_the_caches():
    rnd = random.Random(11)
    grid = tuple(tuple(rnd.choice((0, 0, 0, 3, 8)) for _ in range(70)) for _ in range(66))
    for flags in [(True, False, True), (False, True, True)]:
        assert same_order(objects(grid, *flags), spec_objects(grid, *flags))


def test_objects_accepts_truthy_non_bool_flags():
    assert same_order(objects(G, 1, 0, 1), spec_objects(G, True, False, True))
    assert same_order(objects(G, 0, 5, ()), spec_objects(G, False, True, False))


# --- properties ------------------------------------------------------------------------------------

@FAST
@given(grids, st.booleans(), st.booleans())
def test_objects_partition_the_non_background_cells(grid, univalued, diagonal):
    bg = mostcolor(grid)
    objs = objects(grid, univalued, diagonal, True)
    cells = [cell for obj in objs for cell in obj]
    assert len(cells) == len(set(cells))  # disjoint
    expected = {(v, (i, j)) for i, r in enumerate(grid) for j, v in enumerate(r) if v != bg}
    assert set(cells) == expected
    if univalued:
        assert all(len({v for v, _ in obj}) == 1 for obj in objs)


@FAST
@given(grids, st.booleans())
def test_objects_without_bg_false_cover_every_cell(grid, diagonal):
    allcells = {(v, (i, j)) for i, r in enumerate(grid) for j, v in enumerate(r)}
    objs = objects(grid, True, diagonal, False)
    assert sum(len(o) for o in objs) == len(allcells) and set().union(*objs) == allcells
    assert objects(grid, False, diagonal, False) == frozenset({frozenset(allcells)})


@FAST
@given(grids, st.booleans(), st.booleans(), st.booleans())
def test_objects_matches_spec_construction(grid, univalued, diagonal, without_bg):
    flags = (univalued, diagonal, without_bg)
    assert same_order(objects(grid, *flags), spec_objects(grid, *flags))


# --- partition / fgpartition --------------------------------------------------------------------

def test_partition_examples():
    g = ((1, 1, 2), (3, 1, 2))
    assert partition(g) == frozenset({
        frozenset({(1, (0, 0)), (1, (0, 1)), (1, (1, 1))}),
        frozenset({(2, (0, 2)), (2, (1, 2))}),
        frozenset({(3, (1, 0))}),
    })
    assert partition(()) == frozenset()
    assert partition(((),)) == frozenset()
    assert fgpartition(g) == partition(g) - {frozenset({(1, (0, 0)), (1, (0, 1)), (1, (1, 1))})}
    with fails():
        fgpartition(())
    with fails():
        fgpartition(((),))
    # Tie for the background follows mostcolor's set order: ((9, 1),) has background 9.
    assert fgpartition(((9, 1),)) == frozenset({frozenset({(1, (0, 1))})})
    assert fgpartition(((1, 9),)) == frozenset({frozenset({(9, (0, 1))})})
    assert fgpartition(((5, 5),)) == frozenset()


@FAST
@given(grids)
def test_partition_covers_every_cell_exactly_once(grid):
    parts = partition(grid)
    cells = [cell for part in parts for cell in part]
    assert len(cells) == len(grid) * len(grid[0]) == len(set(cells))
    assert all(len({v for v, _ in part}) == 1 for part in parts)
    assert len(parts) == len(palette(grid))


@FAST
@given(grids)
def test_partition_and_fgpartition_match_spec_construction(grid):
    assert same_order(partition(grid), spec_partition(grid, palette(grid)))
    assert same_order(fgpartition(grid), spec_partition(grid, palette(grid) - {mostcolor(grid)}))


def test_partition_general_path_matches_spec_construction():
    rnd = random.Random(5)
    for _ in range(30):
        grid = random_grid(rnd, 6, (-1, 0, 300, 7, None))
        assert same_order(partition(grid), spec_partition(grid, palette(grid)))
        assert same_order(fgpartition(grid), spec_partition(grid, palette(grid) - {mostcolor(grid)}))
    many = tuple(tuple((i * 7 + j) % 10 for j in range(9)) for i in range(9))  # >= 8 colours
    assert same_order(fgpartition(many), spec_partition(many, palette(many) - {mostcolor(many)}))
    ragged = ((1, 2, 2), (2,), (1, 1))
    assert same_order(partition(ragged), spec_partition(ragged, palette(ragged)))

"""Primitives 67-89 (dsl-spec §3.3): colours, sizes and shape measures.

Iteration order matters (dsl-spec §0.5), so results are compared with ``list(...)`` against
frozensets built with the construction dsl-spec §0.9 prescribes, not only with ``==``.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeit.dsl.measures import (
    asindices,
    colorcount,
    colorfilter,
    crop,
    dneighbors,
    height,
    ineighbors,
    leastcolor,
    llcorner,
    lrcorner,
    mostcolor,
    neighbors,
    normalize,
    ofcolor,
    portrait,
    recolor,
    shape,
    shift,
    sizefilter,
    toindices,
    ulcorner,
    urcorner,
    width,
)

OBJ = frozenset({(1, (2, 3)), (2, (2, 4)), (3, (4, 3))})
IDX = frozenset({(2, 3), (2, 4), (4, 3)})


def fails():
    """Any exception type will do: the spec only requires that these calls fail (dsl-spec §0.7)."""
    return pytest.raises(Exception)


def same(a, b):
    """Equal, same type, and (for frozensets) same iteration order."""
    return type(a) is type(b) and a == b and (not isinstance(a, frozenset) or list(a) == list(b))


def rowmajor(grid):
    """dsl-spec §0.9 'direct, row-major' construction of all locations."""
    return frozenset((i, j) for i in range(len(grid)) for j in range(len(grid[0])))


# Grids with colours that collide modulo small set tables (8, 9 vs 0, 1), to exercise set order.
colours = st.sampled_from([0, 1, 2, 3, 8, 9])
grids = st.integers(1, 7).flatmap(
    lambda w: st.lists(st.lists(colours, min_size=w, max_size=w).map(tuple), min_size=1, max_size=7).map(tuple))
locations = st.tuples(st.integers(-5, 12), st.integers(-5, 12))
indices = st.frozensets(locations, min_size=1, max_size=12)
cells = st.tuples(colours, locations)
objects_ = st.frozensets(cells, min_size=1, max_size=12)
patches = st.one_of(indices, objects_)
FAST = settings(max_examples=40, deadline=None)


# --- mostcolor / leastcolor -------------------------------------------------------------------

@pytest.mark.parametrize("grid, expected", [
    (((1, 9),), 1), (((9, 1),), 9), (((0, 8),), 0), (((8, 0),), 8), (((3, 2),), 2), (((2, 3),), 2),
    (((9, 1, 2, 3),), 9), (((9, 1, 2, 3, 4),), 1), (((5, 5, 3),), 5), (((1, 2), (2, 1), (2, 0)), 2),
])
def test_mostcolor_ties_follow_set_order(grid, expected):
    assert mostcolor(grid) == expected


def test_mostcolor_long_grids_use_the_same_tie_rule():
    # More than 48 cells takes the bytes-counting path; ties still go by set order.
    assert mostcolor((tuple([9] * 30), tuple([1] * 30))) == 9
    assert mostcolor((tuple([1] * 30), tuple([9] * 30))) == 1
    assert mostcolor((tuple([9, 1, 2, 3] * 20),)) == 9
    # Colours that do not fit a byte fall back to list counting.
    assert mostcolor((tuple([300] * 30), tuple([-1] * 31))) == -1
    assert mostcolor((tuple([None] * 60),)) is None


def test_mostcolor_of_objects_and_indices():
    # Ties follow the set built from the cells' colours in the object's iteration order.
    assert next(iter(frozenset({(9, (0, 1)), (1, (0, 0))})))[0] == 9
    assert mostcolor(frozenset({(9, (0, 1)), (1, (0, 0))})) == 9  # colours 9, 1 -> set iterates 9, 1
    assert next(iter(frozenset({(9, (0, 0)), (1, (0, 1))})))[0] == 1
    assert mostcolor(frozenset({(9, (0, 0)), (1, (0, 1))})) == 1  # colours 1, 9 -> set iterates 1, 9
    assert leastcolor(frozenset({(9, (0, 1)), (1, (0, 0))})) == 9
    assert mostcolor(frozenset({(4, (0, 0)), (4, (5, 5)), (2, (1, 1))})) == 4
    # Indices: the row index is counted as the colour (quirk).
    assert mostcolor(frozenset({(0, 0), (0, 1), (1, 0)})) == 0
    assert mostcolor(frozenset({(3, 0), (3, 1), (1, 0)})) == 3


@pytest.mark.parametrize("empty", [(), ((),), frozenset()])
def test_mostcolor_and_leastcolor_of_empty_raise(empty):
    with fails():
        mostcolor(empty)
    with fails():
        leastcolor(empty)


@pytest.mark.parametrize("grid, expected", [
    (((5, 5, 3, 3, 7, 7),), 3), (((1, 9),), 1), (((9, 1),), 9), (((2, 2, 4),), 4),
])
def test_leastcolor(grid, expected):
    assert leastcolor(grid) == expected


@FAST
@given(grids)
def test_mostcolor_leastcolor_match_set_order_rule(grid):
    values = [v for r in grid for v in r]
    candidates = list(set(values))
    top = max(values.count(c) for c in candidates)
    low = min(values.count(c) for c in candidates)
    assert mostcolor(grid) == next(c for c in candidates if values.count(c) == top)
    assert leastcolor(grid) == next(c for c in candidates if values.count(c) == low)


# --- height / width / shape / portrait ---------------------------------------------------------

def test_sizes_of_grids_and_patches():
    assert height(((1, 2, 3), (4, 5, 6))) == 2 and width(((1, 2, 3), (4, 5, 6))) == 3
    assert (height(()), width(())) == (0, 0)
    assert (height(((),)), width(((),))) == (1, 0)
    assert shape(((),)) == (1, 0) and shape(()) == (0, 0) and shape(frozenset()) == (0, 0)
    assert (height(frozenset()), width(frozenset())) == (0, 0)
    assert shape(OBJ) == (3, 2) and shape(IDX) == (3, 2)
    assert shape(frozenset({(-3, 7)})) == (1, 1)
    assert portrait(OBJ) is True and portrait(((1, 2),)) is False and portrait(frozenset()) is False
    assert type(shape(OBJ)) is tuple


@FAST
@given(patches)
def test_shape_is_bounding_box(patch):
    locs = [loc for _, loc in patch] if isinstance(next(iter(patch))[1], tuple) else list(patch)
    rows = [i for i, _ in locs]
    cols = [j for _, j in locs]
    assert shape(patch) == (max(rows) - min(rows) + 1, max(cols) - min(cols) + 1)
    assert (height(patch), width(patch)) == shape(patch)
    assert portrait(patch) == (shape(patch)[0] > shape(patch)[1])


# --- colorcount / colorfilter / sizefilter --------------------------------------------------------

def test_colorcount():
    assert colorcount(((1, 2, 1), (1, 0, 0)), 1) == 3
    assert colorcount(((1, 2, 1),), 7) == 0
    assert colorcount(OBJ, 2) == 1 and colorcount(frozenset(), 2) == 0
    assert type(colorcount(OBJ, 2)) is int


def test_colorfilter_uses_first_cell_in_iteration_order():
    a = frozenset({(1, (0, 0))})
    b = frozenset({(2, (5, 5)), (2, (5, 6))})
    multi = frozenset({(3, (1, 1)), (4, (1, 2))})
    objs = frozenset({a, b, multi})
    assert colorfilter(objs, 2) == frozenset({b})
    first_colour = next(iter(multi))[0]
    assert multi in colorfilter(objs, first_colour)
    assert multi not in colorfilter(objs, 7 - first_colour)
    assert same(colorfilter(objs, 1), frozenset(o for o in objs if next(iter(o))[0] == 1))
    with fails():
        colorfilter(frozenset({frozenset()}), 1)


def test_sizefilter_always_returns_a_frozenset():
    assert same(sizefilter(((1, 2), (3,), (1, 2)), 2), frozenset({(1, 2)}))
    objs = frozenset({OBJ, frozenset({(1, (0, 0))})})
    assert sizefilter(objs, 3) == frozenset({OBJ})
    assert sizefilter(objs, 5) == frozenset()


# --- asindices / ofcolor ------------------------------------------------------------------------

def test_asindices():
    assert same(asindices(()), frozenset())
    assert same(asindices(((),)), frozenset())
    g = ((1, 2, 3), (4, 5, 6))
    assert same(asindices(g), rowmajor(g))
    # Width from the first row (ragged grid).
    assert asindices(((1, 2), (3,))) == frozenset({(0, 0), (0, 1), (1, 0), (1, 1)})
    # A fresh frozenset each call (identity can leak through native set operators).
    assert asindices(g) is not asindices(g)


@FAST
@given(grids)
def test_asindices_builds_row_major(grid):
    assert same(asindices(grid), rowmajor(grid))
    assert len(asindices(grid)) == len(grid) * len(grid[0])


def spec_ofcolor(grid, value):
    return frozenset((i, j) for i, r in enumerate(grid) for j, v in enumerate(r) if v == value)


@FAST
@given(grids, colours)
def test_ofcolor_builds_row_major(grid, value):
    assert same(ofcolor(grid, value), spec_ofcolor(grid, value))


@FAST
@given(grids)
def test_ofcolor_partitions_the_grid(grid):
    parts = [ofcolor(grid, c) for c in {v for r in grid for v in r}]
    assert sum(len(p) for p in parts) == len(grid) * len(grid[0])
    assert frozenset().union(*parts) == asindices(grid)


def test_ofcolor_odd_inputs():
    assert same(ofcolor((), 1), frozenset())
    assert same(ofcolor(((),), 1), frozenset())
    ragged = ((1, 2, 1), (1,), (2, 1))
    assert same(ofcolor(ragged, 1), spec_ofcolor(ragged, 1))
    odd = ((300, -1, 300), (None, 300, 1))
    assert same(ofcolor(odd, 300), spec_ofcolor(odd, 300))
    assert same(ofcolor(odd, None), frozenset({(1, 0)}))
    g = ((1, 0, 1), (0, 1, 1))
    assert same(ofcolor(g, True), spec_ofcolor(g, 1))  # True == 1
    assert same(ofcolor(g, -1), frozenset()) and same(ofcolor(g, 256), frozenset())
    assert same(ofcolor(g, (1,)), frozenset())


# --- corners -----------------------------------------------------------------------------------

def test_corners():
    assert ulcorner(OBJ) == (2, 3) and urcorner(OBJ) == (2, 4)
    assert llcorner(OBJ) == (4, 3) and lrcorner(OBJ) == (4, 4)
    assert ulcorner(IDX) == (2, 3) and lrcorner(IDX) == (4, 4)
    l_shape = frozenset({(0, 1), (1, 0)})  # corner need not be a cell
    assert ulcorner(l_shape) == (0, 0) and lrcorner(l_shape) == (1, 1)
    for corner in (ulcorner, urcorner, llcorner, lrcorner):
        assert corner(frozenset()) == ()
        assert type(corner(OBJ)) is tuple


def test_corners_of_grids_follow_toindices():
    g = ((1, 2), (3, 0))  # toindices returns the grid itself, then columns are zipped
    assert ulcorner(g) == (1, 0) and lrcorner(g) == (3, 2)
    assert urcorner(g) == (1, 2) and llcorner(g) == (3, 0)
    with fails():
        urcorner(frozenset({(1, 2, 3)}))


# --- crop ---------------------------------------------------------------------------------------

def test_crop_uses_slice_semantics():
    g = ((1, 2, 3), (4, 5, 6), (7, 8, 9))
    assert crop(g, (1, 1), (2, 2)) == ((5, 6), (8, 9))
    assert crop(g, (0, 0), (3, 3)) == g
    assert crop(g, (2, 1), (5, 5)) == ((8, 9),)
    assert crop(g, (-1, 0), (2, 2)) == ()  # rows [-1:1] -> empty
    assert crop(g, (-1, -2), (1, 5)) == ()  # rows [-1:0] is empty
    assert crop(g, (1, -2), (1, 2)) == ((),)  # columns [-2:0] are empty
    assert crop(g, (0, -2), (1, 5)) == ((2, 3),)  # columns [-2:3]
    assert crop(g, (0, 5), (2, 2)) == ((), ())
    assert crop(g, (5, 5), (1, 1)) == ()
    assert type(crop(g, (0, 0), (1, 1))) is tuple


def test_crop_negative_start_rows():
    g = ((1, 2, 3), (4, 5, 6), (7, 8, 9))
    assert crop(g, (-2, 0), (1, 1)) == ((4,),)  # rows [-2:-1]


# --- toindices / recolor / shift / normalize -----------------------------------------------------

def test_toindices():
    assert same(toindices(frozenset()), frozenset())
    assert same(toindices(()), frozenset())
    assert toindices(IDX) is IDX
    assert same(toindices(OBJ), frozenset(loc for _, loc in OBJ))
    g = ((1, 2), (3, 4))
    assert toindices(g) is g
    with fails():
        toindices(((1,), (2,)))
    with fails():
        toindices(((),))


def test_recolor_follows_toindices_order():
    assert same(recolor(7, OBJ), frozenset((7, loc) for loc in toindices(OBJ)))
    assert same(recolor(7, IDX), frozenset((7, loc) for loc in IDX))
    assert same(recolor(7, frozenset()), frozenset())
    # Several cells at one location collapse to one.
    assert recolor(5, frozenset({(1, (0, 0)), (2, (0, 0))})) == frozenset({(5, (0, 0))})


@FAST
@given(patches)
def test_recolor_order_matches_construction(patch):
    assert same(recolor(4, patch), frozenset((4, loc) for loc in toindices(patch)))


def test_shift():
    empty = frozenset()
    assert shift(empty, (1, 1)) is empty
    assert shift(OBJ, (1, -2)) == frozenset({(1, (3, 1)), (2, (3, 2)), (3, (5, 1))})
    assert shift(IDX, (-5, 0)) == frozenset({(-3, 3), (-3, 4), (-1, 3)})


@FAST
@given(patches, locations)
def test_shift_is_built_directly_and_invertible(patch, d):
    di, dj = d
    if isinstance(next(iter(patch))[1], tuple):
        expected = frozenset((v, (i + di, j + dj)) for v, (i, j) in patch)
    else:
        expected = frozenset((i + di, j + dj) for i, j in patch)
    assert same(shift(patch, d), expected)
    assert shift(shift(patch, d), (-di, -dj)) == patch


def test_normalize():
    assert normalize(OBJ) == frozenset({(1, (0, 0)), (2, (0, 1)), (3, (2, 0))})
    assert normalize(frozenset({(-3, -4)})) == frozenset({(0, 0)})
    with fails():
        normalize(frozenset())


@FAST
@given(patches)
def test_normalize_puts_ulcorner_at_origin(patch):
    n = normalize(patch)
    assert ulcorner(n) == (0, 0)
    assert shape(n) == shape(patch)
    ui, uj = ulcorner(patch)
    assert same(n, shift(patch, (-ui, -uj)))


# --- neighbours ---------------------------------------------------------------------------------

@FAST
@given(locations)
def test_neighbours_contents_and_construction(loc):
    i, j = loc
    d = frozenset({(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)})
    n = frozenset({(i - 1, j - 1), (i - 1, j + 1), (i + 1, j - 1), (i + 1, j + 1)})
    assert same(dneighbors(loc), d)
    assert same(ineighbors(loc), n)
    assert same(neighbors(loc), d | n)
    assert len(neighbors(loc)) == 8 and loc not in neighbors(loc)


def test_neighbours_are_unclipped():
    assert (-1, 0) in dneighbors((0, 0)) and (-1, -1) in ineighbors((0, 0))


@FAST
@given(grids)
def test_measures_on_grids_return_plain_types(grid):
    assert type(height(grid)) is int and type(width(grid)) is int
    assert type(portrait(grid)) is bool
    assert isinstance(asindices(grid), frozenset) and isinstance(ofcolor(grid, 0), frozenset)

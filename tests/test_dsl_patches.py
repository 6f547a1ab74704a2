"""Primitives 93-110 (dsl-spec §3.5): bounding boxes, predicates, distances, colours of pieces."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeit.dsl.measures import toindices
from codeit.dsl.patches import (
    adjacent,
    asobject,
    bordering,
    centerofmass,
    color,
    hline,
    hmatching,
    leftmost,
    lowermost,
    manhattan,
    numcolors,
    palette,
    rightmost,
    square,
    toobject,
    uppermost,
    vline,
    vmatching,
)

OBJ = frozenset({(1, (2, 3)), (2, (2, 4)), (3, (4, 3))})
IDX = frozenset({(2, 3), (2, 4), (4, 3)})
FAST = settings(max_examples=40, deadline=None)

colours = st.sampled_from([0, 1, 2, 3, 8, 9])
grids = st.integers(1, 7).flatmap(
    lambda w: st.lists(st.lists(colours, min_size=w, max_size=w).map(tuple), min_size=1, max_size=7).map(tuple))
locations = st.tuples(st.integers(-4, 9), st.integers(-4, 9))
indices = st.frozensets(locations, min_size=1, max_size=10)
objects_ = st.frozensets(st.tuples(colours, locations), min_size=1, max_size=10)
patches = st.one_of(indices, objects_)


def fails():
    """Any exception type will do: the spec only requires that these calls fail (dsl-spec §0.7)."""
    return pytest.raises(Exception)


def same(a, b):
    """Equal, same type, and (for frozensets) same iteration order."""
    return type(a) is type(b) and a == b and (not isinstance(a, frozenset) or list(a) == list(b))


def locs(patch):
    return list(toindices(patch))


# --- extremes -----------------------------------------------------------------------------------

def test_extremes():
    for p in (OBJ, IDX):
        assert (uppermost(p), lowermost(p), leftmost(p), rightmost(p)) == (2, 4, 3, 4)
    assert uppermost(frozenset({(-3, 5)})) == -3
    for f in (uppermost, lowermost, leftmost, rightmost):
        with fails():
            f(frozenset())


@FAST
@given(patches)
def test_extremes_match_locations(patch):
    rows = [i for i, _ in locs(patch)]
    cols = [j for _, j in locs(patch)]
    assert (uppermost(patch), lowermost(patch)) == (min(rows), max(rows))
    assert (leftmost(patch), rightmost(patch)) == (min(cols), max(cols))


# --- shape predicates ---------------------------------------------------------------------------

def test_square():
    assert square(((1, 2), (3, 4))) is True and square(((1, 2, 3), (3, 4, 5))) is False
    assert square(((),)) is False
    with fails():
        square(())
    block = frozenset({(0, 0), (0, 1), (1, 0), (1, 1)})
    assert square(block) is True
    assert square(block - {(1, 1)}) is False  # not completely filled
    assert square(frozenset({(0, 0), (0, 1)})) is False
    assert square(frozenset()) is True  # 0 == 0 * 0
    assert square(frozenset({(7, (3, 3))})) is True


def test_vline_hline():
    v = frozenset({(0, 2), (1, 2), (2, 2)})
    h = frozenset({(1, (4, 0)), (1, (4, 1))})
    assert vline(v) is True and hline(v) is False
    assert hline(h) is True and vline(h) is False
    cell = frozenset({(5, 5)})
    assert vline(cell) is True and hline(cell) is True
    assert vline(frozenset()) is False and hline(frozenset()) is False
    gap = frozenset({(0, 0), (2, 0)})
    assert vline(gap) is False
    assert hline(frozenset({(0, 0), (0, 2)})) is False


def test_matching():
    a = frozenset({(0, 0), (1, 0)})
    b = frozenset({(1, 5)})
    c = frozenset({(3, 0)})
    assert hmatching(a, b) is True and hmatching(a, c) is False
    assert vmatching(a, c) is True and vmatching(a, b) is False
    assert hmatching(OBJ, frozenset({(4, 9)})) is True
    assert hmatching(frozenset(), a) is False and vmatching(a, frozenset()) is False


# --- distances ----------------------------------------------------------------------------------

def test_manhattan_and_adjacent():
    a = frozenset({(0, 0), (0, 1)})
    assert manhattan(a, frozenset({(0, 3)})) == 2
    assert manhattan(a, frozenset({(1, 1)})) == 1 and adjacent(a, frozenset({(1, 1)})) is True
    assert manhattan(a, a) == 0 and adjacent(a, a) is False  # overlap is not adjacency
    assert manhattan(a, frozenset({(1, 2)})) == 2 and adjacent(a, frozenset({(1, 2)})) is False  # diagonal
    assert manhattan(OBJ, frozenset({(9, (0, 0))})) == 5
    with fails():
        manhattan(frozenset(), a)
    with fails():
        manhattan(a, frozenset())
    with fails():
        adjacent(frozenset(), a)


@FAST
@given(patches, patches)
def test_manhattan_is_symmetric_minimum(a, b):
    d = manhattan(a, b)
    assert d == manhattan(b, a)
    assert d == min(abs(i - k) + abs(j - m) for i, j in locs(a) for k, m in locs(b))
    assert adjacent(a, b) == (d == 1)


def test_bordering():
    grid = ((0,) * 5,) * 4
    assert bordering(frozenset({(0, 2)}), grid) is True
    assert bordering(frozenset({(2, 0)}), grid) is True
    assert bordering(frozenset({(3, 2)}), grid) is True
    assert bordering(frozenset({(2, 4)}), grid) is True
    assert bordering(frozenset({(1, 1), (2, 3)}), grid) is False
    assert bordering(frozenset({(7, 7)}), grid) is False  # equality only, not "beyond"
    with fails():
        bordering(frozenset(), grid)


# --- centre of mass -------------------------------------------------------------------------------

def test_centerofmass():
    assert centerofmass(frozenset({(0, 0), (0, 1), (1, 0), (1, 1)})) == (0, 0)
    assert centerofmass(frozenset({(0, 0), (2, 4)})) == (1, 2)
    assert centerofmass(frozenset({(-1, 0), (0, 0)})) == (-1, 0)  # floor division
    assert centerofmass(frozenset()) == ()
    # Sums over distinct locations, divided by the number of cells (quirk).
    assert centerofmass(frozenset({(1, (0, 2)), (2, (0, 2))})) == (0, 1)
    assert centerofmass(frozenset({(1, (1, 3)), (2, (1, 3)), (1, (3, 3))})) == (1, 2)
    assert type(centerofmass(OBJ)) is tuple


# --- colours --------------------------------------------------------------------------------------

def test_palette_and_numcolors():
    assert palette(((1, 2), (2, 9))) == frozenset({1, 2, 9})
    assert palette(OBJ) == frozenset({1, 2, 3})
    assert palette(()) == frozenset() and palette(frozenset()) == frozenset()
    assert numcolors(((1, 2), (2, 9))) == 3 and numcolors(OBJ) == 3 and numcolors(()) == 0
    assert type(numcolors(OBJ)) is int


@FAST
@given(st.one_of(grids, objects_))
def test_palette_is_a_frozen_set_filled_in_order(element):
    if isinstance(element, tuple):
        values = [v for row in element for v in row]
    else:
        values = [v for v, _ in element]
    filled = set()
    for v in values:
        filled.add(v)
    assert same(palette(element), frozenset(filled))
    assert numcolors(element) == len(filled)


def test_palette_order_is_the_freeze_not_the_direct_construction():
    # Freeze of a filled set (not frozenset(values) directly): here the two iterate differently.
    element = ((16, 16, 0, 8, 24, 17, 16, 8),)
    assert list(palette(element)) == [0, 16, 17, 8, 24]
    assert list(frozenset(element[0])) == [0, 8, 16, 17, 24]
    obj = frozenset((v, (0, j)) for j, v in enumerate(element[0]))
    filled = set()
    for v, _ in obj:
        filled.add(v)
    assert same(palette(obj), frozenset(filled))


def test_color():
    assert color(frozenset({(4, (0, 0)), (4, (0, 1))})) == 4
    multi = frozenset({(3, (1, 1)), (4, (1, 2))})
    assert color(multi) == next(iter(multi))[0]
    with fails():
        color(frozenset())


# --- toobject / asobject ------------------------------------------------------------------------

def test_toobject():
    grid = ((1, 2), (3, 4))
    assert toobject(frozenset({(0, 1), (1, 0), (5, 5), (-1, 0)}), grid) == frozenset({(2, (0, 1)), (3, (1, 0))})
    assert toobject(frozenset({(9, (1, 1))}), grid) == frozenset({(4, (1, 1))})  # own colours ignored
    assert toobject(frozenset(), grid) == frozenset()
    with fails():
        toobject(frozenset({(0, 0)}), ())
    assert toobject(frozenset({(0, 0)}), ((),)) == frozenset()


@FAST
@given(patches, grids)
def test_toobject_follows_toindices_order(patch, grid):
    h, w = len(grid), len(grid[0])
    expected = frozenset((grid[i][j], (i, j)) for i, j in toindices(patch) if 0 <= i < h and 0 <= j < w)
    assert same(toobject(patch, grid), expected)


def test_asobject():
    assert asobject(((1, 2),)) == frozenset({(1, (0, 0)), (2, (0, 1))})
    assert asobject(()) == frozenset() and asobject(((),)) == frozenset()
    ragged = ((1, 2, 3), (4,))
    assert same(asobject(ragged), frozenset([(1, (0, 0)), (2, (0, 1)), (3, (0, 2)), (4, (1, 0))]))


@FAST
@given(grids)
def test_asobject_is_built_row_major(grid):
    expected = frozenset((v, (i, j)) for i, r in enumerate(grid) for j, v in enumerate(r))
    assert same(asobject(grid), expected)
    assert toobject(toindices(asobject(grid)), grid) == asobject(grid)

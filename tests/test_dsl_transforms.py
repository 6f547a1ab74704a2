"""DSL primitives 111-160 (dsl-spec §3.6): grid and patch transformations.

Three layers: the spec's observed examples and error cases; differential tests against small,
deliberately literal readings of the spec (``_lit_*``, built exactly as §0.9 prescribes), compared
with ``list(...)`` so that frozenset *iteration order* must match too; and hypothesis laws.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import codeit.dsl  # noqa: F401  (registers every primitive, in order)
from codeit.dsl.measures import mostcolor
from codeit.dsl.transforms import (
    backdrop,
    bottomhalf,
    box,
    canvas,
    cellwise,
    center,
    cmirror,
    compress,
    connect,
    corners,
    cover,
    delta,
    dmirror,
    downscale,
    fill,
    frontiers,
    gravitate,
    hconcat,
    hfrontier,
    hmirror,
    hperiod,
    hsplit,
    hupscale,
    inbox,
    index,
    lefthalf,
    move,
    occurrences,
    outbox,
    paint,
    position,
    replace,
    righthalf,
    rot90,
    rot180,
    rot270,
    shoot,
    subgrid,
    switch,
    tophalf,
    trim,
    underfill,
    underpaint,
    upscale,
    vconcat,
    vfrontier,
    vmirror,
    vperiod,
    vsplit,
    vupscale,
)

G32 = ((1, 2), (3, 4), (5, 6))
OBJ3 = frozenset({(1, (2, 3)), (2, (2, 4)), (3, (4, 3))})
FRONT = ((5, 5, 5), (1, 2, 5), (5, 5, 5))


def cells(grid, offset=(0, 0)):
    """The grid as an object, built row-major (like ``asobject``), optionally shifted."""
    di, dj = offset
    return frozenset((v, (i + di, j + dj)) for i, row in enumerate(grid) for j, v in enumerate(row))


def locs(*pairs):
    return frozenset(pairs)


def block(h, w, top=0, left=0):
    return frozenset((i, j) for i in range(top, top + h) for j in range(left, left + w))


def fails():
    """Any exception: the spec asks for an error, not for a particular exception type."""
    return pytest.raises(Exception)


def same(a, b):
    """Equal values, equal types and (for frozensets) equal iteration order."""
    assert type(a) is type(b)
    assert a == b
    if isinstance(a, frozenset):
        assert list(a) == list(b)


# ------------------------------------------------------------------------------------------
# literal readings of the spec (slow, obviously right), used as oracles
# ------------------------------------------------------------------------------------------

def _lit_is_obj(p):
    return isinstance(next(iter(p))[1], tuple)


def _lit_locs(p):
    if len(p) == 0:
        return frozenset()
    return frozenset(loc for _, loc in p) if _lit_is_obj(p) else p


def _lit_bounds(p):
    ls = _lit_locs(p)
    rows = [i for i, _ in ls]
    cols = [j for _, j in ls]
    return min(rows), max(rows), min(cols), max(cols)


def _lit_map(p, f):
    """Direct construction in p's iteration order, location mapped by f, colours kept."""
    if _lit_is_obj(p):
        return frozenset((v, f(i, j)) for v, (i, j) in p)
    return frozenset(f(i, j) for i, j in p)


def _lit_hmirror(p):
    t, b, _, _ = _lit_bounds(p)
    return _lit_map(p, lambda i, j: (t + b - i, j))


def _lit_vmirror(p):
    _, _, le, r = _lit_bounds(p)
    return _lit_map(p, lambda i, j: (i, le + r - j))


def _lit_dmirror(p):
    a, _, b, _ = _lit_bounds(p)
    return _lit_map(p, lambda i, j: (j - b + a, i - a + b))


def _lit_shift(p, d):
    return _lit_map(p, lambda i, j: (i + d[0], j + d[1]))


def _lit_write(grid, items, only_bg):
    h, w = len(grid), len(grid[0])
    bg = mostcolor(grid) if only_bg else None
    g = [list(r) for r in grid]
    for v, (i, j) in items:
        if 0 <= i < h and 0 <= j < w and (not only_bg or g[i][j] == bg):
            g[i][j] = v
    return tuple(tuple(r) for r in g)


def _lit_upscale_obj(obj, f):
    if len(obj) == 0:
        return frozenset()
    t, _, le, _ = _lit_bounds(obj)
    normed = _lit_shift(obj, (-t, -le))
    o = set()
    for v, (i, j) in normed:
        for io in range(f):
            for jo in range(f):
                o.add((v, (i * f + io, j * f + jo)))
    frozen = frozenset(o)
    return _lit_shift(frozen, (t, le)) if frozen else frozen


def _lit_outline(si, ei, sj, ej):
    left, right, top, bottom = set(), set(), set(), set()
    for i in range(si, ei + 1):
        left.add((i, sj))
        right.add((i, ej))
    for j in range(sj, ej + 1):
        top.add((si, j))
        bottom.add((ei, j))
    return frozenset((left | right) | (top | bottom))


def _lit_box(p, grow):
    t, b, le, r = _lit_bounds(p)
    ai, aj, bi, bj = t - grow, le - grow, b + grow, r + grow
    return _lit_outline(min(ai, bi), max(ai, bi), min(aj, bj), max(aj, bj))


def _lit_occurrences(grid, obj):
    t, b, le, r = _lit_bounds(obj)
    normed = _lit_shift(obj, (-t, -le))
    h, w = len(grid), len(grid[0])
    found = set()
    for i in range(h - (b - t)):
        for j in range(w - (r - le)):
            if all(0 <= a < h and 0 <= c < w and grid[a][c] == v for v, (a, c) in _lit_shift(normed, (i, j))):
                found.add((i, j))
    return frozenset(found)


def _lit_gravitate(src, dst):
    def manhattan(a, b):
        return min(abs(ai - bi) + abs(aj - bj) for ai, aj in _lit_locs(a) for bi, bj in _lit_locs(b))

    si, sj = center(src)
    di, dj = center(dst)
    shared = {j for _, j in _lit_locs(src)} & {j for _, j in _lit_locs(dst)}
    i, j = ((1 if si < di else -1), 0) if shared else (0, (1 if sj < dj else -1))
    c = 0
    while manhattan(src, dst) != 1 and c < 42:
        c += 1
        src = _lit_shift(src, (i, j))
    return (c * i, c * j)


def _lit_period(obj, axis):
    t, b, le, r = _lit_bounds(obj)
    normed = _lit_shift(obj, (-t, -le))
    size = (r - le + 1) if axis else (b - t + 1)
    for p in range(1, size):
        moved = _lit_shift(normed, (0, -p) if axis else (-p, 0))
        kept = {(v, loc) for v, loc in moved if loc[axis] >= 0}
        if kept <= normed:
            return p
    return size


# ------------------------------------------------------------------------------------------
# strategies
# ------------------------------------------------------------------------------------------

colours = st.integers(0, 9)


@st.composite
def grids(draw, min_side=1, max_side=6, palette=colours):
    h = draw(st.integers(min_side, max_side))
    w = draw(st.integers(min_side, max_side))
    return tuple(tuple(draw(palette) for _ in range(w)) for _ in range(h))


coords = st.integers(-3, 9)
location_lists = st.lists(st.tuples(coords, coords), min_size=1, max_size=14)
cell_lists = st.lists(st.tuples(colours, st.tuples(coords, coords)), min_size=1, max_size=14)


@st.composite
def patches(draw, lists=location_lists):
    """A non-empty frozenset built either directly or by freezing a set (two iteration histories)."""
    items = draw(lists)
    return frozenset(items) if draw(st.booleans()) else frozenset(set(items))


indices_st = patches()
objects_st = patches(cell_lists)
any_patch = st.one_of(indices_st, objects_st)


# ------------------------------------------------------------------------------------------
# 111-117 rotations and mirrors
# ------------------------------------------------------------------------------------------

def test_rotations_observed():
    assert rot90(G32) == ((5, 3, 1), (6, 4, 2))
    assert rot270(G32) == ((2, 4, 6), (1, 3, 5))
    assert rot180(G32) == ((6, 5), (4, 3), (2, 1))
    for f in (rot90, rot180, rot270):
        assert f(()) == ()
        assert all(type(r) is tuple for r in f(G32))


def test_grid_mirrors_observed():
    assert hmirror(G32) == ((5, 6), (3, 4), (1, 2))
    assert vmirror(G32) == ((2, 1), (4, 3), (6, 5))
    assert dmirror(G32) == ((1, 3, 5), (2, 4, 6))
    assert cmirror(G32) == ((6, 4, 2), (5, 3, 1))
    assert type(hmirror(G32)) is tuple and type(dmirror(G32)[0]) is tuple


def test_patch_mirrors_stay_in_their_bounding_box():
    assert hmirror(OBJ3) == {(1, (4, 3)), (2, (4, 4)), (3, (2, 3))}
    assert dmirror(OBJ3) == {(1, (2, 3)), (2, (3, 3)), (3, (2, 5))}
    assert vmirror(OBJ3) == {(1, (2, 4)), (2, (2, 3)), (3, (4, 4))}
    assert hmirror(locs((2, 3), (2, 4), (4, 3))) == locs((4, 3), (4, 4), (2, 3))
    assert dmirror(locs((2, 3), (2, 4), (4, 3))) == locs((2, 3), (3, 3), (2, 5))
    # the anti-diagonal mirror of a patch: vmirror, dmirror, vmirror
    assert cmirror(locs((0, 0), (0, 1))) == locs((0, 0), (1, 0))
    assert cmirror(locs((5, 5), (5, 7), (6, 5))) == locs((5, 6), (7, 5), (7, 6))


@pytest.mark.parametrize("mirror", [hmirror, vmirror, dmirror, cmirror])
def test_mirror_of_empty_patch_is_an_error(mirror):
    with fails():
        mirror(frozenset())


@settings(max_examples=60, deadline=None)
@given(any_patch)
def test_patch_mirrors_match_the_literal_construction_order(p):
    same(hmirror(p), _lit_hmirror(p))
    same(vmirror(p), _lit_vmirror(p))
    same(dmirror(p), _lit_dmirror(p))
    same(cmirror(p), _lit_vmirror(_lit_dmirror(_lit_vmirror(p))))


@settings(max_examples=60, deadline=None)
@given(grids())
def test_grid_mirrors_are_involutions_and_rotations_compose(g):
    for m in (hmirror, vmirror, dmirror, cmirror):
        assert m(m(g)) == g
    assert rot90(rot90(rot90(rot90(g)))) == g
    assert rot90(rot270(g)) == g and rot270(rot90(g)) == g
    assert rot90(rot90(g)) == rot180(g)
    assert cmirror(g) == rot90(vmirror(g)) == rot270(hmirror(g))
    assert dmirror(g) == rot90(hmirror(g)) == rot270(vmirror(g))


@settings(max_examples=60, deadline=None)
@given(any_patch)
def test_patch_mirrors_are_involutions_and_keep_the_bounding_box(p):
    for m in (hmirror, vmirror, dmirror, cmirror):
        assert m(m(p)) == p
    assert backdrop(hmirror(p)) == backdrop(p) == backdrop(vmirror(p))
    assert len(hmirror(p)) == len(p)
    t, b, le, r = _lit_bounds(p)
    tt, bb, ll, rr = _lit_bounds(dmirror(p))
    assert (tt, ll) == (t, le) and (bb - tt, rr - ll) == (r - le, b - t)


# ------------------------------------------------------------------------------------------
# 118-121 fill / paint / underfill / underpaint
# ------------------------------------------------------------------------------------------

def test_fill_skips_out_of_range_and_reduces_objects_to_locations():
    g = ((0, 0), (0, 0))
    assert fill(g, 5, locs((0, 0), (-1, 0), (0, -1), (2, 1), (1, 2), (1, 1))) == ((5, 0), (0, 5))
    assert fill(g, 5, frozenset({(3, (0, 1))})) == ((0, 5), (0, 0))
    assert fill(g, 5, frozenset()) == g
    assert fill(((),), 1, frozenset()) == ((),)
    res = fill(g, 1, locs((0, 0)))
    assert type(res) is tuple and all(type(r) is tuple for r in res)


def test_paint_later_cell_wins_and_indices_are_an_error():
    g = ((0, 0), (0, 0))
    assert paint(g, frozenset({(3, (0, 1)), (4, (5, 5)), (7, (-1, 0))})) == ((0, 3), (0, 0))
    assert paint(g, frozenset()) == g
    with fails():
        paint(g, locs((0, 0)))
    dup = frozenset({(1, (0, 0)), (2, (0, 0))})
    assert paint(g, dup)[0][0] == list(dup)[-1][0]


def test_underfill_and_underpaint_touch_only_background():
    g = ((0, 0, 3), (0, 3, 3), (0, 0, 0))
    assert underfill(g, 7, block(2, 3)) == ((7, 7, 3), (7, 3, 3), (0, 0, 0))
    assert underpaint(g, frozenset({(8, (0, 0)), (8, (0, 2)), (8, (9, 9))})) == ((8, 0, 3), (0, 3, 3), (0, 0, 0))
    # mostcolor's set-order tie rule decides the background: ((9, 1),) -> 9
    assert underfill(((9, 1),), 5, block(1, 2)) == ((5, 1),)
    # underpaint sees its own earlier writes: two cells on one location, second lands only if the
    # first wrote the background colour
    dup = frozenset({(0, (0, 0)), (6, (0, 0))})
    first, second = [v for v, _ in dup]
    expected = second if first == 0 else first
    assert underpaint(((0, 1),), dup) == ((expected, 1),)


@pytest.mark.parametrize("call", [
    lambda g: fill(g, 1, frozenset()), lambda g: paint(g, frozenset()),
    lambda g: underfill(g, 1, frozenset()), lambda g: underpaint(g, frozenset()),
    lambda g: cover(g, frozenset()), lambda g: move(g, frozenset(), (0, 0)),
    lambda g: index(g, (0, 0)), lambda g: downscale(g, 1), lambda g: hsplit(g, 1),
    lambda g: vsplit(g, 1), lambda g: cellwise(g, g, 0), lambda g: frontiers(g),
    lambda g: occurrences(g, frozenset({(1, (0, 0))})),
])
def test_grid_without_rows_is_an_error(call):
    with fails():
        call(())


def test_grid_of_empty_rows():
    g = ((),)
    for call in (lambda: underfill(g, 1, frozenset()), lambda: underpaint(g, frozenset()),
                 lambda: cover(g, frozenset()), lambda: move(g, frozenset(), (0, 0))):
        with fails():
            call()
    assert index(g, (0, 0)) is None
    assert fill(g, 1, locs((0, 0))) == g and paint(g, frozenset({(1, (0, 0))})) == g
    assert downscale(g, 2) == g
    assert hsplit(g, 1) == (g,) and vsplit(g, 1) == (g,)
    assert cellwise(g, (), 0) == g
    assert frontiers(g) == frozenset() and compress(g) == g


@settings(max_examples=60, deadline=None)
@given(grids(), colours, any_patch)
def test_writers_match_the_literal_reading(g, c, p):
    located = [(c, loc) for loc in _lit_locs(p)]
    assert fill(g, c, p) == _lit_write(g, located, False)
    assert underfill(g, c, p) == _lit_write(g, located, True)
    assert cover(g, p) == _lit_write(g, [(mostcolor(g), loc) for loc in _lit_locs(p)], False)
    if _lit_is_obj(p):
        assert paint(g, p) == _lit_write(g, list(p), False)
        assert underpaint(g, p) == _lit_write(g, list(p), True)


@settings(max_examples=60, deadline=None)
@given(grids(), colours, any_patch)
def test_fill_then_ofcolor_contains_the_in_range_cells(g, c, p):
    h, w = len(g), len(g[0])
    filled = fill(g, c, p)
    inside = {(i, j) for i, j in _lit_locs(p) if 0 <= i < h and 0 <= j < w}
    assert inside <= {(i, j) for i in range(h) for j in range(w) if filled[i][j] == c}
    assert all(filled[i][j] == g[i][j] for i in range(h) for j in range(w) if (i, j) not in inside)


# ------------------------------------------------------------------------------------------
# 122-127 scaling and concatenation
# ------------------------------------------------------------------------------------------

def test_upscales_observed():
    assert hupscale(((1, 2),), 2) == ((1, 1, 2, 2),)
    assert hupscale(((1, 2), (3, 4)), 0) == ((), ())
    assert hupscale(((1, 2),), -1) == ((),)
    assert vupscale(((1, 2), (3, 4)), 2) == ((1, 2), (1, 2), (3, 4), (3, 4))
    assert vupscale(((1, 2),), 0) == ()
    assert upscale(((1, 2),), 2) == ((1, 1, 2, 2), (1, 1, 2, 2))
    assert upscale(((1, 2),), 0) == ()
    assert upscale(((1, 2),), -2) == ()


def test_upscale_object_keeps_its_corner():
    obj = frozenset({(1, (2, 3)), (2, (2, 4))})
    assert upscale(obj, 2) == {(1, (2, 3)), (1, (2, 4)), (1, (3, 3)), (1, (3, 4)),
                               (2, (2, 5)), (2, (2, 6)), (2, (3, 5)), (2, (3, 6))}
    assert upscale(frozenset(), 3) == frozenset()
    assert upscale(obj, 0) == frozenset() and upscale(obj, -1) == frozenset()
    with fails():
        upscale(locs((0, 0)), 2)
    with fails():
        upscale(locs((0, 0)), 0)


@settings(max_examples=60, deadline=None)
@given(objects_st, st.integers(-1, 3))
def test_upscale_object_construction_order(obj, f):
    same(upscale(obj, f), _lit_upscale_obj(obj, f))


@settings(max_examples=60, deadline=None)
@given(grids(), st.integers(1, 4))
def test_upscale_then_downscale_is_identity(g, f):
    assert downscale(upscale(g, f), f) == g
    assert downscale(g, 1) == g
    assert upscale(g, f) == vupscale(hupscale(g, f), f)
    assert len(upscale(g, f)) == f * len(g) and len(upscale(g, f)[0]) == f * len(g[0])


def test_downscale_samples_block_corners():
    g = tuple(tuple(10 * i + j for j in range(5)) for i in range(5))
    assert downscale(g, 2) == ((0, 2, 4), (20, 22, 24), (40, 42, 44))
    assert downscale(g, -2) == downscale(g, 2)
    assert downscale(g, 7) == ((0,),)
    with fails():
        downscale(g, 0)
    with fails():
        downscale(((),), 0)
    with fails():
        downscale(((1, 2, 3), (1,)), 2)  # the sampled column 2 is missing from row 1
    assert downscale(((1, 2, 3), (0, 0, 0), (4, 5, 6, 7)), 2) == ((1, 3), (4, 6))


@settings(max_examples=60, deadline=None)
@given(grids(), grids())
def test_concat_shapes(a, b):
    hc = hconcat(a, b)
    assert len(hc) == min(len(a), len(b))
    assert all(len(r) == len(a[0]) + len(b[0]) for r in hc)
    vc = vconcat(a, b)
    assert len(vc) == len(a) + len(b) and vc[:len(a)] == a and vc[len(a):] == b
    assert hconcat(lefthalf(a), righthalf(a)) == a or len(a[0]) % 2 == 1 or len(a[0]) == 0


def test_hconcat_truncates_and_vconcat_does_not_check_widths():
    assert hconcat(((1,), (2,)), ((3,),)) == ((1, 3),)
    assert vconcat(((1, 2),), ((3,),)) == ((1, 2), (3,))


# ------------------------------------------------------------------------------------------
# 128-133
# ------------------------------------------------------------------------------------------

def test_subgrid_uses_slice_semantics():
    g = tuple(tuple(10 * i + j for j in range(4)) for i in range(4))
    assert subgrid(locs((1, 1), (2, 2)), g) == ((11, 12), (21, 22))
    assert subgrid(frozenset({(5, (3, 3)), (5, (3, 5))}), g) == ((33,),)
    # negative start: python slices [-1:1] -> nothing
    assert subgrid(locs((-1, 0), (0, 0)), g) == ()
    assert subgrid(locs((0, -1), (1, 0)), g) == ((), ())
    with fails():
        subgrid(frozenset(), g)


@settings(max_examples=60, deadline=None)
@given(grids(), any_patch)
def test_subgrid_is_crop_of_the_bounding_box(g, p):
    t, b, le, r = _lit_bounds(p)
    assert subgrid(p, g) == tuple(row[le:r + 1] for row in g[t:b + 1])


def test_splits_skip_one_separator():
    g7 = (tuple(range(7)),)
    assert hsplit(g7, 2) == (((0, 1, 2),), ((4, 5, 6),))
    g8 = (tuple(range(8)),)
    assert hsplit(g8, 3) == (((0, 1),), ((3, 4),), ((6, 7),))
    assert hsplit(g8, 2) == (((0, 1, 2, 3),), ((4, 5, 6, 7),))
    assert hsplit(g8, -2) == ()
    col = tuple((i,) for i in range(7))
    assert vsplit(col, 2) == (((0,), (1,), (2,)), ((4,), (5,), (6,)))
    assert vsplit(col, 7) == tuple(((i,),) for i in range(7))
    assert hsplit(((1, 2),), 3) == (((),), ((),), ((),))
    for split in (hsplit, vsplit):
        with fails():
            split(g7, 0)


@settings(max_examples=60, deadline=None)
@given(grids(), st.integers(1, 3))
def test_split_then_concat_gives_the_grid_back_when_divisible(g, n):
    if len(g[0]) % n == 0:
        parts = hsplit(g, n)
        joined = parts[0]
        for part in parts[1:]:
            joined = hconcat(joined, part)
        assert joined == g
    if len(g) % n == 0:
        parts = vsplit(g, n)
        assert sum(parts, ()) == g


def test_cellwise():
    a = ((1, 2), (3, 4))
    assert cellwise(a, ((1, 0), (3, 0)), 9) == ((1, 9), (3, 9))
    assert cellwise(a, ((1, 2, 7), (3, 4, 7), (0, 0, 0)), 9) == a
    with fails():
        cellwise(a, ((1, 2),), 0)
    with fails():
        cellwise(a, ((1,), (3,)), 0)
    with fails():
        cellwise((), a, 0)


def test_replace_and_switch():
    g = ((1, 2), (2, 3))
    assert replace(g, 2, 7) == ((1, 7), (7, 3))
    assert replace(g, 5, 7) == g and type(replace(g, 5, 7)[0]) is tuple
    assert switch(g, 1, 2) == ((2, 1), (1, 3))
    assert switch(g, 2, 2) == g
    # a == b: the reference's lookup table maps to a
    assert type(switch(((1,),), 1, True)[0][0]) is int


# ------------------------------------------------------------------------------------------
# 134-137
# ------------------------------------------------------------------------------------------

def test_center_and_position():
    assert center(block(2, 2)) == (1, 1)
    assert center(frozenset({(3, (4, 7))})) == (4, 7)
    assert center(block(3, 4, 1, 1)) == (2, 3)
    with fails():
        center(frozenset())
    a = locs((0, 0))
    assert position(a, locs((0, 5))) == (0, 1)
    assert position(a, locs((0, -5))) == (0, -1)
    assert position(a, locs((3, 0))) == (1, 0)
    assert position(a, locs((-3, 0))) == (-1, 0)
    assert position(a, locs((2, 2))) == (1, 1)
    assert position(a, locs((-2, 2))) == (-1, 1)
    assert position(a, frozenset({(1, (2, -2))})) == (1, -1)
    assert position(a, a) == (0, -1)


def test_index():
    assert index(G32, (2, 1)) == 6
    assert index(G32, (3, 0)) is None and index(G32, (0, 2)) is None
    assert index(G32, (-1, 0)) is None and index(G32, (0, -1)) is None
    assert index(((),), (0, 0)) is None
    with fails():
        index((), (0, 0))


def test_canvas_limit_uses_the_signed_product():
    assert canvas(3, (2, 3)) == ((3, 3, 3), (3, 3, 3))
    assert len(canvas(0, (10, 100))) == 10
    assert canvas(0, (11, 100)) is None
    assert canvas(0, (1001, 1)) is None
    assert canvas(0, (-5, 300)) == ()
    assert canvas(0, (-5, -3)) == ()
    assert canvas(0, (-100, -100)) is None
    assert canvas(0, (4, 0)) == ((), (), (), ())
    assert canvas(0, (0, 5)) == ()
    assert canvas(7, (2, -3)) == ((), ())
    assert type(canvas(1, (1, 1))[0]) is tuple


# ------------------------------------------------------------------------------------------
# 138-142
# ------------------------------------------------------------------------------------------

def test_corners():
    same(corners(block(2, 3, 1, 1)), frozenset({(1, 1), (1, 3), (2, 1), (2, 3)}))
    assert corners(locs((4, 4))) == locs((4, 4))
    assert corners(frozenset()) == frozenset({()})
    assert corners(frozenset({(1, (0, 2)), (1, (5, 0))})) == locs((0, 0), (0, 2), (5, 0), (5, 2))


def test_connect_and_shoot():
    same(connect((1, 1), (1, 4)), frozenset([(1, 1), (1, 2), (1, 3), (1, 4)]))
    same(connect((4, 2), (1, 2)), frozenset([(1, 2), (2, 2), (3, 2), (4, 2)]))
    same(connect((3, 3), (0, 0)), frozenset([(0, 0), (1, 1), (2, 2), (3, 3)]))
    same(connect((0, 3), (3, 0)), frozenset([(0, 3), (1, 2), (2, 1), (3, 0)]))
    same(connect((3, 0), (0, 3)), frozenset([(0, 3), (1, 2), (2, 1), (3, 0)]))
    assert connect((2, 2), (2, 2)) == locs((2, 2))
    assert connect((0, 0), (1, 2)) == frozenset()
    assert len(shoot((0, 0), (1, 0))) == 43 and (-42, 0) in shoot((0, 0), (-1, 0))
    assert shoot((5, 5), (0, 0)) == locs((5, 5))
    assert shoot((0, 0), (1, 2)) == frozenset()
    assert len(shoot((0, 0), (2, 2))) == 85
    same(shoot((2, 3), (-1, 1)), connect((2, 3), (2 - 42, 3 + 42)))
    # bool coordinates stay bools (no caching may conflate True with 1)
    assert all(type(i) is int for i, _ in shoot((1, 1), (0, 1)))
    assert any(i is True for i, _ in shoot((True, 1), (0, 1)))
    assert all(type(i) is int for i, _ in shoot((1, 1), (0, 1)))


@settings(max_examples=60, deadline=None)
@given(st.tuples(coords, coords), st.tuples(coords, coords))
def test_connect_is_symmetric_in_content_and_contains_both_ends(a, b):
    line = connect(a, b)
    di, dj = b[0] - a[0], b[1] - a[1]
    if di == 0 or dj == 0 or abs(di) == abs(dj):
        assert a in line and b in line and len(line) == max(abs(di), abs(dj)) + 1
        same(line, connect(b, a))
    else:
        assert line == frozenset()


def test_cover_trim_move():
    g = ((0, 0, 0), (0, 5, 6), (0, 0, 0))
    obj = frozenset({(5, (1, 1)), (6, (1, 2))})
    assert cover(g, obj) == ((0,) * 3,) * 3
    assert move(g, obj, (1, -1)) == ((0, 0, 0), (0, 0, 0), (5, 6, 0))
    assert move(g, obj, (0, 1)) == ((0, 0, 0), (0, 0, 5), (0, 0, 0))  # 6 falls off the grid
    assert move(g, frozenset(), (0, 1)) == g
    with fails():
        move(g, locs((1, 1)), (0, 1))
    assert trim(((1, 2), (3, 4))) == ()
    assert trim(tuple(tuple(range(3)) for _ in range(3))) == ((1,),)


@settings(max_examples=60, deadline=None)
@given(grids(), objects_st, st.tuples(st.integers(-3, 3), st.integers(-3, 3)))
def test_move_is_paint_of_cover(g, obj, d):
    covered = _lit_write(g, [(mostcolor(g), loc) for loc in _lit_locs(obj)], False)
    assert move(g, obj, d) == _lit_write(covered, list(_lit_shift(obj, d)), False)


# ------------------------------------------------------------------------------------------
# 143-148 halves and frontiers
# ------------------------------------------------------------------------------------------

def test_halves():
    g = tuple(tuple(10 * i + j for j in range(5)) for i in range(5))
    assert tophalf(g) == g[:2] and bottomhalf(g) == g[3:]
    assert lefthalf(g) == tuple(r[:2] for r in g)
    assert righthalf(g) == tuple(r[3:] for r in g)
    assert tophalf(((1,),)) == () and bottomhalf(((1,),)) == ()
    assert lefthalf(((1,), (2,))) == () and righthalf(((1,), (2,))) == ()
    assert lefthalf(((), ())) == () and lefthalf(()) == ()


@settings(max_examples=60, deadline=None)
@given(grids())
def test_halves_are_the_rotated_halves(g):
    assert lefthalf(g) == rot270(tophalf(rot90(g)))
    assert righthalf(g) == rot270(bottomhalf(rot90(g)))
    assert vconcat(tophalf(g), bottomhalf(g)) == g or len(g) % 2 == 1


def test_frontier_lines_span_0_to_29():
    same(vfrontier((7, 3)), frozenset([(i, 3) for i in range(30)]))
    same(hfrontier((3, 7)), frozenset([(3, j) for j in range(30)]))
    same(vfrontier((0, -2)), frozenset([(i, -2) for i in range(30)]))
    same(hfrontier((500, 0)), frozenset([(500, j) for j in range(30)]))
    assert any(j is True for _, j in vfrontier((0, True)))
    assert all(type(j) is int for _, j in vfrontier((0, 1)))


# ------------------------------------------------------------------------------------------
# 149-155
# ------------------------------------------------------------------------------------------

def test_backdrop_delta():
    p = locs((0, 0), (2, 1))
    same(backdrop(p), frozenset([(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]))
    assert delta(p) == locs((0, 1), (1, 0), (1, 1), (2, 0))
    assert delta(frozenset({(1, (0, 0)), (2, (1, 1))})) == locs((0, 1), (1, 0))
    for f in (backdrop, delta, box, inbox, outbox):
        with fails():
            f(frozenset())


def test_boxes_observed():
    assert box(locs((3, 3))) == locs((3, 3))
    assert box(block(3, 3)) == block(3, 3) - {(1, 1)}
    assert inbox(locs((1, 1))) == block(3, 3) - {(1, 1)}
    assert inbox(block(2, 3)) == locs((0, 1), (1, 1))
    assert inbox(block(4, 4)) == block(2, 2, 1, 1)
    assert outbox(locs((0, 0))) == block(3, 3, -1, -1) - {(0, 0)}


@settings(max_examples=60, deadline=None)
@given(any_patch)
def test_box_family_and_backdrop_construction_order(p):
    same(box(p), _lit_box(p, 0))
    same(inbox(p), _lit_box(p, -1))
    same(outbox(p), _lit_box(p, 1))
    t, b, le, r = _lit_bounds(p)
    same(backdrop(p), frozenset((i, j) for i in range(t, b + 1) for j in range(le, r + 1)))
    same(delta(p), backdrop(p) - _lit_locs(p))
    same(corners(p), frozenset({(t, le), (t, r), (b, le), (b, r)}))
    assert box(p) <= backdrop(p) and _lit_locs(p) <= backdrop(p)
    assert outbox(p).isdisjoint(backdrop(p))


@pytest.mark.parametrize("source,destination,expected", [
    (locs((2, 2)), locs((2, 2)), (-1, 0)),
    (block(2, 2), block(2, 2), (-2, 0)),
    (block(3, 3), block(3, 3), (-3, 0)),
    (locs((0, 0), (2, 0)), locs((0, 0), (2, 0)), (-1, 0)),
    (locs((0, 0), (1, 0), (2, 0)), locs((1, 0)), (-2, 0)),
    (locs((0, 0)), locs((0, 0), (1, 0), (2, 0)), (3, 0)),
    (locs((0, 0)), locs((0, 5)), (0, 4)),
    (locs((5, 0)), locs((0, 0)), (-4, 0)),
    (locs((0, 0)), locs((5, 5)), (0, 42)),
    (locs((0, 0)), locs((0, 1)), (0, 0)),
    (frozenset({(3, (0, 9))}), frozenset({(4, (0, 0))}), (0, -8)),
])
def test_gravitate_observed(source, destination, expected):
    assert gravitate(source, destination) == expected


def test_gravitate_of_empty_patches_is_an_error():
    with fails():
        gravitate(frozenset(), locs((0, 0)))
    with fails():
        gravitate(locs((0, 0)), frozenset())


@settings(max_examples=60, deadline=None)
@given(any_patch, any_patch)
def test_gravitate_matches_the_step_loop(a, b):
    assert gravitate(a, b) == _lit_gravitate(a, b)


# ------------------------------------------------------------------------------------------
# 156-160
# ------------------------------------------------------------------------------------------

def test_occurrences_observed():
    g = ((1, 2, 1, 2), (3, 1, 2, 0), (1, 2, 1, 2))
    assert occurrences(g, frozenset({(1, (5, 5)), (2, (5, 6))})) == locs((0, 0), (0, 2), (1, 1), (2, 0), (2, 2))
    # only the object's cells are constrained
    assert occurrences(g, frozenset({(1, (0, 0)), (1, (2, 0))})) == locs((0, 0), (0, 2))
    assert occurrences(g, frozenset({(7, (0, 0))})) == frozenset()
    assert occurrences(g, cells(((0,) * 5,))) == frozenset()  # larger than the grid
    with fails():
        occurrences(g, frozenset())
    with fails():
        occurrences(((1, 2), (3, 4)), locs((0, 0)))
    assert occurrences(((1, 2), (3, 4)), locs((0, 0), (5, 5))) == frozenset()


def test_occurrences_of_long_runs():
    g = ((0, 0, 0, 0, 8), (0, 0, 0, 8, 0), (0, 0, 0, 0, 0))
    run = frozenset({(0, (0, j)) for j in range(3)})
    assert occurrences(g, run) == locs((0, 0), (0, 1), (1, 0), (2, 0), (2, 1), (2, 2))
    two_runs = run | frozenset({(8, (1, 3))})
    assert occurrences(g, two_runs) == locs((0, 0))
    # a ragged grid falls back to the plain scan and keeps the reference's indexing errors
    with fails():
        occurrences(((1, 1), (1,)), frozenset({(1, (0, 0))}))


@settings(max_examples=60, deadline=None)
@given(grids(max_side=7, palette=st.integers(0, 2)), patches(
    st.lists(st.tuples(st.integers(0, 2), st.tuples(st.integers(0, 3), st.integers(0, 3))),
             min_size=1, max_size=6)))
def test_occurrences_match_the_literal_scan(g, obj):
    found = occurrences(g, obj)
    same(found, _lit_occurrences(g, obj))
    t, _, le, _ = _lit_bounds(obj)
    for i, j in found:
        assert all(g[a][b] == v for v, (a, b) in _lit_shift(obj, (i - t, j - le)))


@settings(max_examples=60, deadline=None)
@given(grids(min_side=2, max_side=7, palette=st.integers(0, 2)), st.data())
def test_occurrences_finds_every_subgrid_placement(g, data):
    h, w = len(g), len(g[0])
    i = data.draw(st.integers(0, h - 1))
    j = data.draw(st.integers(0, w - 1))
    piece = tuple(r[j:j + 2] for r in g[i:i + 2])
    found = occurrences(g, cells(piece, (i, j)))
    assert (i, j) in found
    same(found, _lit_occurrences(g, cells(piece)))


def test_frontiers_observed():
    f = frontiers(FRONT)
    assert f == frozenset({cells(((5, 5, 5),)), cells(((5, 5, 5),), (2, 0)),
                           frozenset({(5, (0, 2)), (5, (1, 2)), (5, (2, 2))})})
    assert len(frontiers(((1, 1), (1, 1), (1, 1)))) == 5
    assert frontiers(((4,),)) == frozenset({frozenset({(4, (0, 0))})})
    assert frontiers(((1, 2), (2, 1))) == frozenset()


@settings(max_examples=60, deadline=None)
@given(grids(palette=st.integers(0, 2)))
def test_frontiers_construction_order(g):
    h, w = len(g), len(g[0])
    row_sets, col_sets = set(), set()
    for i in range(h):
        if len(set(g[i])) == 1:
            line = set()
            for j in range(w):
                line.add((g[i][j], (i, j)))
            row_sets.add(frozenset(line))
    for j in range(w):
        if len({g[i][j] for i in range(h)}) == 1:
            line = set()
            for i in range(h):
                line.add((g[i][j], (i, j)))
            col_sets.add(frozenset(line))
    got = frontiers(g)
    same(got, frozenset(row_sets) | frozenset(col_sets))
    assert [list(o) for o in got] == [list(o) for o in frozenset(row_sets) | frozenset(col_sets)]


def test_compress_observed():
    assert compress(FRONT) == ((1, 2),)
    assert compress(((3, 3), (3, 3))) == ()
    assert compress(((1, 2), (3, 4))) == ((1, 2), (3, 4))
    assert compress(()) == ()


@settings(max_examples=60, deadline=None)
@given(grids(palette=st.integers(0, 2)))
def test_compress_removes_exactly_the_uniform_lines(g):
    rows = [i for i, r in enumerate(g) if len(set(r)) > 1]
    cols = [j for j in range(len(g[0])) if len({r[j] for r in g}) > 1]
    assert compress(g) == tuple(tuple(g[i][j] for j in cols) for i in rows)


def test_periods_observed():
    def row(*vs):
        return frozenset((v, (0, j)) for j, v in enumerate(vs) if v is not None)

    assert hperiod(row(1, None, 1)) == 2
    assert hperiod(row(1, 2, 1, 2, 1)) == 2
    assert hperiod(row(1, 2, 3)) == 3
    assert hperiod(row(1, 1, 1)) == 1
    assert hperiod(dmirror(row(1, 2, 1, 2))) == 1
    assert vperiod(dmirror(row(1, 2, 1, 2, 1))) == 2
    assert vperiod(dmirror(row(1, 2, 3))) == 3
    # indices: the colour is only unpacked inside the loop
    assert hperiod(locs((4, 0))) == 1
    assert hperiod(locs((0, 0), (1, 0), (2, 0))) == 1
    assert vperiod(locs((0, 0), (0, 1))) == 1
    with fails():
        hperiod(locs((0, 0), (0, 1)))
    with fails():
        vperiod(locs((0, 0), (1, 0)))
    for f in (hperiod, vperiod):
        with fails():
            f(frozenset())


@settings(max_examples=60, deadline=None)
@given(patches(st.lists(st.tuples(st.integers(0, 2), st.tuples(st.integers(0, 3), st.integers(0, 6))),
                        min_size=1, max_size=12)))
def test_periods_match_the_literal_reading(obj):
    assert hperiod(obj) == _lit_period(obj, 1)
    assert vperiod(obj) == _lit_period(obj, 0)


# ------------------------------------------------------------------------------------------
# arguments of the wrong kind follow the reference's composition
# ------------------------------------------------------------------------------------------

def test_tuple_patches_behave_like_the_reference():
    pts = ((1, 1), (2, 3))  # e.g. totuple(indices)
    g = tuple(tuple(10 * i + j for j in range(5)) for i in range(5))
    assert fill(((0, 0),), 7, ((0, 1),)) == ((0, 7),)
    assert backdrop(pts) == block(2, 3, 1, 1)
    assert corners(pts) == locs((1, 1), (1, 3), (2, 1), (2, 3))
    with fails():
        delta(pts)  # frozenset - tuple
    # shape of a tuple is (len, len of its first element): a tuple patch crops 2 rows x 2 columns
    assert subgrid(pts, g) == ((11, 12), (21, 22))
    assert center(pts) == (1 + 1, 1 + 1)
    assert box(pts) == block(2, 3, 1, 1)


def test_non_grid_arguments_fail_where_the_reference_slices():
    for f in (rot90, rot180, rot270, lefthalf, righthalf, tophalf, trim):
        with fails():
            f(frozenset({(0, 1), (2, 3)}))
    # hupscale/hconcat only iterate, so a frozenset of rows is accepted, as in the reference
    assert hupscale(frozenset({(1, 2)}), 2) == ((1, 1, 2, 2),)
    # compress of indices: rows by iteration, columns through the patch mirror dmirror
    ind = frozenset({(0, 1), (1, 1)})
    rows = list(ind)
    mirrored = list(dmirror(ind))
    cols = [j for j, c in enumerate(mirrored) if len(set(c)) == 1]
    keep = [r for r in rows if len(set(r)) != 1]
    assert compress(ind) == tuple(tuple(v for j, v in enumerate(r) if j not in cols) for r in keep)


@pytest.mark.parametrize("n_cells", [1, 3, 40])
def test_fill_and_paint_agree_on_both_copy_strategies(n_cells):
    """Small patches copy only touched rows, large ones copy everything: same result either way."""
    g = tuple(tuple((i * 7 + j) % 10 for j in range(6)) for i in range(5))
    ind = frozenset(((k * 5) % 7 - 1, (k * 3) % 8 - 1) for k in range(n_cells))
    obj = frozenset((k % 10, loc) for k, loc in enumerate(ind))
    assert fill(g, 9, ind) == _lit_write(g, [(9, loc) for loc in ind], False)
    assert fill(g, 9, obj) == _lit_write(g, [(9, loc) for loc in ind], False)
    assert paint(g, obj) == _lit_write(g, list(obj), False)
    rows_as_lists = tuple(list(r) for r in g)  # not a DSL value, but the copy must still give tuples
    assert all(type(r) is tuple for r in fill(rows_as_lists, 0, ind))

"""DSL primitives 111-160: grid and patch transformations (dsl-spec §3.6).

Everything here must reproduce the reference's observable behaviour exactly: values, container
types, error-versus-value on degenerate input and the iteration order of every frozenset it builds
(dsl-spec §0.5, §0.9).  The implementations are vectorised (comprehensions, ``zip``, slicing) and
inline the measures they need instead of calling other primitives, because ``fill``, ``paint``,
``subgrid``, ``canvas`` and friends sit in the innermost loop of program search.

Frozenset construction vocabulary used in the docstrings (dsl-spec §0.9):

* *direct*: ``frozenset(sequence)`` fed the elements in the listed order (a list comprehension
  yields the same hash table as a generator);
* *freeze*: a mutable ``set`` filled in the listed order, then ``frozenset(that_set)`` (a different
  table size, hence a possibly different iteration order);
* *native*: CPython's own set operator (``|``, ``-``).

Arguments of the wrong kind (e.g. a tuple passed where a patch is expected) are handed to
``_ref_*`` fall-backs that compose the primitives of the other DSL modules exactly as the reference
does, so odd-but-legal programs behave the same; the fast paths only take ``frozenset`` patches.
"""

from __future__ import annotations

from itertools import chain, repeat

from codeit.dsl.measures import mostcolor
from codeit.dsl.registry import primitive
from codeit.dsl.types import (
    Element,
    Grid,
    Indices,
    Integer,
    IntegerTuple,
    Object,
    Objects,
    Patch,
    Piece,
    Tuple,
)

_frozenset = frozenset
_tuple = tuple
_from_iterable = chain.from_iterable


# --------------------------------------------------------------------------------------------
# private helpers
# --------------------------------------------------------------------------------------------

def _locations(patch):
    """Locations of a non-empty patch as a list of ``(i, j)``; an object is reduced to its cells'
    locations (duplicates kept, they never matter where this is used)."""
    if isinstance(next(iter(patch), ())[1], tuple):
        return [loc for _, loc in patch]
    return patch


def _bounds(patch):
    """``(top, bottom, left, right)`` of a non-empty patch (raises ``ValueError`` when empty)."""
    rows, cols = zip(*_locations(patch))
    return min(rows), max(rows), min(cols), max(cols)


def _measures():
    from codeit.dsl import measures
    return measures


def _patches():
    from codeit.dsl import patches
    return patches


def _outline(si, ei, sj, ej):
    """The §0.9 four-set outline of rows si..ei x cols sj..ej: left/right columns and top/bottom rows
    are four mutable sets filled in order, united natively (columns first) and then frozen."""
    irange = range(si, ei + 1)
    jrange = range(sj, ej + 1)
    vlines = {(i, sj) for i in irange} | {(i, ej) for i in irange}
    hlines = {(si, j) for j in jrange} | {(ei, j) for j in jrange}
    return _frozenset(vlines | hlines)


# --------------------------------------------------------------------------------------------
# 111-117: rotations and mirrors
# --------------------------------------------------------------------------------------------

@primitive
def rot90(grid: Grid) -> Grid:
    """Rotate clockwise: new row r is old column r read bottom-to-top (h x w -> w x h).

    Built with ``zip`` like the reference, so ragged grids are cut to their shortest row."""
    return _tuple(zip(*grid[::-1]))


@primitive
def rot180(grid: Grid) -> Grid:
    """Half turn: row order reversed and every row reversed."""
    return _tuple([_tuple(row[::-1]) for row in grid[::-1]])


@primitive
def rot270(grid: Grid) -> Grid:
    """Rotate anticlockwise: new row r is old column w-1-r read top-to-bottom.

    ``grid[:0]`` stands in for the reference's ``grid[::-1]``: a non-sliceable argument must raise."""
    grid[:0]
    return _tuple(zip(*grid))[::-1]


@primitive
def hmirror(piece: Piece) -> Piece:
    """Flip upside-down.  A tuple is a grid (row order reversed); a patch is mirrored inside its own
    bounding box (row i -> top + bottom - i), built direct in the patch's order.  Empty patch -> error."""
    if isinstance(piece, tuple):
        return piece[::-1]
    if isinstance(next(iter(piece), ())[1], tuple):
        rows = [c[1][0] for c in piece]
        d = min(rows) + max(rows)
        return _frozenset([(v, (d - i, j)) for v, (i, j) in piece])
    rows = [loc[0] for loc in piece]
    d = min(rows) + max(rows)
    return _frozenset([(d - i, j) for i, j in piece])


@primitive
def vmirror(piece: Piece) -> Piece:
    """Flip left-right.  A tuple is a grid (each row reversed); a patch is mirrored inside its own
    bounding box (column j -> left + right - j), built direct in the patch's order.  Empty -> error."""
    if isinstance(piece, tuple):
        return _tuple([row[::-1] for row in piece])
    if isinstance(next(iter(piece), ())[1], tuple):
        cols = [c[1][1] for c in piece]
        d = min(cols) + max(cols)
        return _frozenset([(v, (i, d - j)) for v, (i, j) in piece])
    cols = [loc[1] for loc in piece]
    d = min(cols) + max(cols)
    return _frozenset([(i, d - j) for i, j in piece])


@primitive
def dmirror(piece: Piece) -> Piece:
    """Reflect in the main diagonal.  Grid: transpose (via ``zip``).  Patch: transpose about the
    patch's own upper-left corner (a, b): (i, j) -> (j - b + a, i - a + b); built direct in the
    patch's order.  Empty patch -> error."""
    if isinstance(piece, tuple):
        return _tuple(zip(*piece))
    if isinstance(next(iter(piece), ())[1], tuple):
        rows, cols = zip(*[c[1] for c in piece])
        a = min(rows)
        b = min(cols)
        return _frozenset([(v, (j - b + a, i - a + b)) for v, (i, j) in piece])
    rows, cols = zip(*piece)
    a = min(rows)
    b = min(cols)
    return _frozenset([(j - b + a, i - a + b) for i, j in piece])


@primitive
def cmirror(piece: Piece) -> Piece:
    """Reflect in the anti-diagonal.  Grid: result[r][c] = grid[h-1-c][w-1-r].  Patch: vmirror, then
    dmirror, then vmirror, each built direct from the previous step's iteration order (the
    intermediate frozensets are really built because their order decides the final one)."""
    if isinstance(piece, tuple):
        return _tuple(zip(*[row[::-1] for row in piece[::-1]]))
    return vmirror(dmirror(vmirror(piece)))


# --------------------------------------------------------------------------------------------
# 118-121: writing into grids
# --------------------------------------------------------------------------------------------

#: fill/paint copy every row when the patch has more elements than this many per grid row;
#: below it, copying only the touched rows is cheaper.
_FEW_CELLS_PER_ROW = 2

@primitive
def fill(grid: Grid, value: Integer, patch: Patch) -> Grid:
    """Copy of the grid with every in-range location of the patch set to ``value``; out-of-range
    locations are skipped; an object is reduced to its locations.  Grid ``()`` -> error.

    Small patches copy only the rows they touch (untouched rows go through ``tuple()``, which
    returns a tuple row itself and converts anything else exactly as the reference's copy does)."""
    h, w = len(grid), len(grid[0])
    n = len(patch)
    if not n:
        return _tuple(map(_tuple, grid))
    if isinstance(next(iter(patch), ())[1], tuple):
        patch = [loc for _, loc in patch]
    if n > _FEW_CELLS_PER_ROW * h:
        rows = [list(row) for row in grid]
        for i, j in patch:
            if 0 <= i < h and 0 <= j < w:
                rows[i][j] = value
        return _tuple(map(_tuple, rows))
    rows = list(grid)
    touched = {}
    for i, j in patch:
        if 0 <= i < h and 0 <= j < w:
            row = touched.get(i)
            if row is None:
                row = touched[i] = list(rows[i])
            row[j] = value
    for i, row in touched.items():
        rows[i] = row
    return _tuple(map(_tuple, rows))


@primitive
def paint(grid: Grid, obj: Object) -> Grid:
    """Copy of the grid with each in-range cell of the object written in its own colour; cells are
    written in the object's iteration order, so of two cells at one location the later wins.
    Non-empty indices -> error (a location does not unpack as (colour, (i, j)))."""
    h, w = len(grid), len(grid[0])
    if len(obj) > _FEW_CELLS_PER_ROW * h:
        rows = [list(row) for row in grid]
        for v, (i, j) in obj:
            if 0 <= i < h and 0 <= j < w:
                rows[i][j] = v
        return _tuple(map(_tuple, rows))
    rows = list(grid)
    touched = {}
    for v, (i, j) in obj:
        if 0 <= i < h and 0 <= j < w:
            row = touched.get(i)
            if row is None:
                row = touched[i] = list(rows[i])
            row[j] = v
    for i, row in touched.items():
        rows[i] = row
    return _tuple(map(_tuple, rows))


@primitive
def underfill(grid: Grid, value: Integer, patch: Patch) -> Grid:
    """Like ``fill`` but only locations currently holding ``mostcolor(grid)`` (computed once, on the
    input grid, with its tie rule) change.  ``mostcolor`` is evaluated even for an empty patch, so
    ``((),)`` raises."""
    h, w = len(grid), len(grid[0])
    bg = mostcolor(grid)
    rows = [list(row) for row in grid]
    if len(patch):
        if isinstance(next(iter(patch), ())[1], tuple):
            locations = [loc for _, loc in patch]
        else:
            locations = patch
        for i, j in locations:
            if 0 <= i < h and 0 <= j < w:
                row = rows[i]
                if row[j] == bg:
                    row[j] = value
    return _tuple(map(_tuple, rows))


@primitive
def underpaint(grid: Grid, obj: Object) -> Grid:
    """Like ``paint`` but only where the grid being painted currently holds ``mostcolor`` of the input
    grid; the check sees earlier writes of this call (two cells at one location: the second lands
    only if the first wrote the background colour)."""
    h, w = len(grid), len(grid[0])
    bg = mostcolor(grid)
    rows = [list(row) for row in grid]
    for v, (i, j) in obj:
        if 0 <= i < h and 0 <= j < w:
            row = rows[i]
            if row[j] == bg:
                row[j] = v
    return _tuple(map(_tuple, rows))


# --------------------------------------------------------------------------------------------
# 122-127: scaling and concatenation
# --------------------------------------------------------------------------------------------

@primitive
def hupscale(grid: Grid, factor: Integer) -> Grid:
    """Each cell repeated ``factor`` times within its row; factor <= 0 gives empty rows."""
    n = max(0, factor)
    if n == 1:
        return _tuple([_tuple(row) for row in grid])
    return _tuple([_tuple(_from_iterable(zip(*repeat(row, n)))) for row in grid])


@primitive
def vupscale(grid: Grid, factor: Integer) -> Grid:
    """Each row repeated ``factor`` times consecutively; factor <= 0 gives ``()``."""
    return _tuple([row for row in grid for _ in range(factor)])


@primitive
def upscale(element: Element, factor: Integer) -> Element:
    """Scale by ``factor``.  Grid (any tuple): every cell becomes a factor x factor block (factor <= 0
    -> ``()``).  Object: normalise (direct, object order), fill a mutable set block by block, row by
    row, in the normalised object's order, freeze it, shift back to the original upper-left corner
    (direct).  Empty object or factor <= 0 -> empty set; non-empty indices -> error."""
    if isinstance(element, tuple):
        n = max(0, factor)
        out = []
        for row in element:
            up = _tuple(_from_iterable(zip(*repeat(row, n))))
            out.extend(repeat(up, n))
        return _tuple(out)
    if len(element) == 0:
        return _frozenset()
    rows, cols = zip(*[c[1] for c in element])
    top = min(rows)
    left = min(cols)
    normed = _frozenset([(v, (i - top, j - left)) for v, (i, j) in element])
    blocks = set()
    add = blocks.add
    span = range(factor)
    for v, (i, j) in normed:
        i0 = i * factor
        j0 = j * factor
        for io in span:
            r = i0 + io
            for jo in span:
                add((v, (r, j0 + jo)))
    if not blocks:
        return _frozenset(blocks)
    return _frozenset([(v, (i + top, j + left)) for v, (i, j) in _frozenset(blocks)])


@primitive
def downscale(grid: Grid, factor: Integer) -> Grid:
    """Keep rows and columns whose index is a multiple of ``factor`` (the top-left cell of each
    block; a trailing partial block still counts).  Factor 0 -> error; grid ``()`` -> error;
    ``((),)`` -> ``((),)``.  Every row must reach the first row's width (else error, as in the
    reference's indexing)."""
    h, w = len(grid), len(grid[0])
    if factor == 0:
        raise ZeroDivisionError("downscale by zero")
    step = factor if factor > 0 else -factor
    if w == 0:
        return _tuple([()] * ((h + step - 1) // step))
    last = (w - 1) // step * step
    for row in grid:
        if len(row) <= last:
            raise IndexError("downscale: a row is shorter than the first row")
    return _tuple([_tuple(row[:w:step]) for row in grid[::step]])


@primitive
def hconcat(a: Grid, b: Grid) -> Grid:
    """Side by side: row k is a[k] + b[k]; truncated to the smaller height (no error)."""
    return _tuple([ra + rb for ra, rb in zip(a, b)])


@primitive
def vconcat(a: Grid, b: Grid) -> Grid:
    """a's rows followed by b's rows (no width check: may produce a ragged grid)."""
    return a + b


# --------------------------------------------------------------------------------------------
# 128-133: cutting and recolouring grids
# --------------------------------------------------------------------------------------------

def _ref_subgrid(patch, grid):
    m = _measures()
    return m.crop(grid, m.ulcorner(patch), m.shape(patch))


@primitive
def subgrid(patch: Patch, grid: Grid) -> Grid:
    """``crop`` of the grid to the patch's bounding box (start = ulcorner, dims = shape), with Python
    slice semantics for locations outside the grid (negative start counts from the end, overlong
    ranges are cut short).  Empty patch -> error."""
    if type(patch) is not _frozenset:
        return _ref_subgrid(patch, grid)
    if isinstance(next(iter(patch), ())[1], tuple):
        rows, cols = zip(*[c[1] for c in patch])
    else:
        rows, cols = zip(*patch)
    left = min(cols)
    right = max(cols) + 1
    return _tuple([r[left:right] for r in grid[min(rows):max(rows) + 1]])


@primitive
def hsplit(grid: Grid, n: Integer) -> Tuple:
    """``n`` full-height parts of width ``w // n``; when ``w % n != 0`` one separator column is
    skipped between parts (part k starts at column k * (w // n + 1)).  n = 0 -> error; n < 0 -> ``()``."""
    h, w = len(grid), len(grid[0]) // n
    offset = len(grid[0]) % n != 0
    step = w + offset
    return _tuple([_tuple([r[s:s + w] for r in grid[0:h]]) for s in [k * step for k in range(n)]])


@primitive
def vsplit(grid: Grid, n: Integer) -> Tuple:
    """``n`` stacked parts of height ``h // n`` (rows cut to the first row's width); when
    ``h % n != 0`` one separator row is skipped between parts.  n = 0 -> error; n < 0 -> ``()``."""
    h, w = len(grid) // n, len(grid[0])
    offset = len(grid) % n != 0
    step = h + offset
    return _tuple([_tuple([r[0:w] for r in grid[s:s + h]]) for s in [k * step for k in range(n)]])


@primitive
def cellwise(a: Grid, b: Grid, fallback: Integer) -> Grid:
    """Grid of a's dimensions (height len(a), width len(a[0])): a[i][j] where a[i][j] == b[i][j], else
    ``fallback``.  b may be larger (ignored); smaller -> error; a = ``()`` -> error."""
    h, w = len(a), len(a[0])
    if w == 0:
        return _tuple([()] * h)
    last = w - 1
    out = []
    for i in range(h):
        ra = a[i]
        rb = b[i]
        ra[last]
        rb[last]
        out.append(_tuple([x if x == y else fallback for x, y in zip(ra[:w], rb)]))
    return _tuple(out)


@primitive
def replace(grid: Grid, replacee: Integer, replacer: Integer) -> Grid:
    """Every cell equal to ``replacee`` becomes ``replacer`` (rows without it are kept as they are)."""
    return _tuple([_tuple([replacer if v == replacee else v for v in row])
                   if replacee in row else _tuple(row) for row in grid])


@primitive
def switch(grid: Grid, a: Integer, b: Integer) -> Grid:
    """Swap colours a and b.  With a == b the reference's lookup table {a: b, b: a} maps to a."""
    if a == b:
        return _tuple([_tuple([a if v == a else v for v in row]) for row in grid])
    return _tuple([_tuple([b if v == a else (a if v == b else v) for v in row]) for row in grid])


# --------------------------------------------------------------------------------------------
# 134-136: centres, directions, lookup
# --------------------------------------------------------------------------------------------

def _ref_center(patch):
    p = _patches()
    m = _measures()
    return (p.uppermost(patch) + m.height(patch) // 2, p.leftmost(patch) + m.width(patch) // 2)


@primitive
def center(patch: Patch) -> IntegerTuple:
    """Bounding-box centre rounded down: (top + height // 2, left + width // 2).  Empty -> error."""
    if type(patch) is not _frozenset:
        return _ref_center(patch)
    if isinstance(next(iter(patch), ())[1], tuple):
        rows, cols = zip(*[c[1] for c in patch])
    else:
        rows, cols = zip(*patch)
    top = min(rows)
    left = min(cols)
    return (top + (max(rows) - top + 1) // 2, left + (max(cols) - left + 1) // 2)


@primitive
def position(a: Patch, b: Patch) -> IntegerTuple:
    """Direction from a's centre to b's centre: same row -> (0, +-1); else same column -> (+-1, 0);
    else diagonal (+-1, +-1).  ``+1`` only for a strictly smaller coordinate, so equal centres ->
    (0, -1)."""
    if type(a) is _frozenset and type(b) is _frozenset:
        ia, ja = center(a)
        ib, jb = center(b)
    else:
        m = _measures()
        ia, ja = center(m.toindices(a))
        ib, jb = center(m.toindices(b))
    if ia == ib:
        return (0, 1 if ja < jb else -1)
    if ja == jb:
        return (1 if ia < ib else -1, 0)
    if ia < ib:
        return (1, 1 if ja < jb else -1)
    if ia > ib:
        return (-1, 1 if ja < jb else -1)
    return None


@primitive
def index(grid: Grid, loc: IntegerTuple) -> Integer:
    """Colour at ``loc``, or ``None`` when outside the grid (negative indices do not wrap).  The
    grid ``()`` raises (its first row is read for the width); ``((),)`` gives ``None``."""
    i, j = loc
    if 0 <= i < len(grid) and 0 <= j < len(grid[0]):
        return grid[i][j]
    len(grid[0])
    return None


@primitive
def canvas(value: Integer, dimensions: IntegerTuple) -> Grid:
    """h x w grid of ``value`` -- but ``None`` when the *signed* product h * w exceeds 1000 (CodeIt's
    addition).  Negative h gives ``()``; w <= 0 gives h empty rows."""
    h = dimensions[0]
    w = dimensions[1]
    if h * w > 1000:
        return None
    return ((value,) * w,) * h


# --------------------------------------------------------------------------------------------
# 138-142
# --------------------------------------------------------------------------------------------

def _ref_corners(patch):
    m = _measures()
    return _frozenset({m.ulcorner(patch), m.urcorner(patch), m.llcorner(patch), m.lrcorner(patch)})


@primitive
def corners(patch: Patch) -> Indices:
    """The bounding box's corners, a freeze of {ul, ur, ll, lr} inserted in that order (coinciding
    corners collapse).  Empty patch -> ``{()}`` (every corner of an empty patch is ``()``)."""
    if type(patch) is not _frozenset:
        return _ref_corners(patch)
    if len(patch) == 0:
        return _frozenset({()})
    try:
        top, bottom, left, right = _bounds(patch)
    except ValueError:  # locations that are not pairs: the reference's corners still take min/max
        return _ref_corners(patch)
    return _frozenset({(top, left), (top, right), (bottom, left), (bottom, right)})


@primitive
def connect(a: IntegerTuple, b: IntegerTuple) -> Indices:
    """Inclusive segment a..b if horizontal, vertical, diagonal or anti-diagonal, else the empty
    set; built direct by increasing row (increasing column for a horizontal line; on the
    anti-diagonal rows ascend while columns descend)."""
    ai, aj = a
    bi, bj = b
    si = min(ai, bi)
    ei = max(ai, bi) + 1
    sj = min(aj, bj)
    ej = max(aj, bj) + 1
    if ai == bi:
        return _frozenset([(ai, j) for j in range(sj, ej)])
    if aj == bj:
        return _frozenset([(i, aj) for i in range(si, ei)])
    if bi - ai == bj - aj:
        return _frozenset(zip(range(si, ei), range(sj, ej)))
    if bi - ai == aj - bj:
        return _frozenset(zip(range(si, ei), range(ej - 1, sj - 1, -1)))
    return _frozenset()


@primitive
def cover(grid: Grid, patch: Patch) -> Grid:
    """``fill`` the patch's locations with ``mostcolor(grid)`` (erase to the background)."""
    bg = mostcolor(grid)
    return fill(grid, bg, patch)


@primitive
def trim(grid: Grid) -> Grid:
    """Drop the first and last row and column (2 x 2 -> ``()``, 3 x 3 -> 1 x 1)."""
    return _tuple([r[1:-1] for r in grid[1:-1]])


@primitive
def move(grid: Grid, obj: Object, offset: IntegerTuple) -> Grid:
    """``cover`` the object (background = mostcolor of the input grid), then ``paint`` it shifted by
    ``offset``.  The shifted object is really built (direct, object order) because its iteration
    order decides which of two cells at one location wins.  Non-empty indices -> error."""
    bg = mostcolor(grid)
    h, w = len(grid), len(grid[0])
    rows = [list(row) for row in grid]
    if len(obj):
        if not isinstance(next(iter(obj), ())[1], tuple):
            raise TypeError("move: indices cannot be painted")
        for _, (i, j) in obj:
            if 0 <= i < h and 0 <= j < w:
                rows[i][j] = bg
        di, dj = offset
        for v, (i, j) in _frozenset([(v, (i + di, j + dj)) for v, (i, j) in obj]):
            if 0 <= i < h and 0 <= j < w:
                rows[i][j] = v
    return _tuple(map(_tuple, rows))


# --------------------------------------------------------------------------------------------
# 143-148: halves and frontiers
# --------------------------------------------------------------------------------------------

@primitive
def tophalf(grid: Grid) -> Grid:
    """The first h // 2 rows (odd h: middle row dropped)."""
    return grid[:len(grid) // 2]


@primitive
def bottomhalf(grid: Grid) -> Grid:
    """The last h // 2 rows (odd h: middle row dropped)."""
    return grid[len(grid) // 2 + len(grid) % 2:]


@primitive
def lefthalf(grid: Grid) -> Grid:
    """The first w // 2 columns.  Computed (like the reference's rotations) through ``zip``, so the
    width is the shortest row's and zero columns give ``()`` rather than empty rows."""
    cols = _tuple(zip(*grid[::-1]))  # rot90
    return _tuple(zip(*cols[:len(cols) // 2]))[::-1]  # rot270 of the top half


@primitive
def righthalf(grid: Grid) -> Grid:
    """The last w // 2 columns (odd w: middle column dropped; zero columns -> ``()``)."""
    cols = _tuple(zip(*grid[::-1]))  # rot90
    n = len(cols)
    return _tuple(zip(*cols[n // 2 + n % 2:]))[::-1]  # rot270 of the bottom half


_FRONTIER_CACHE_LIMIT = 64
_VFRONTIERS: dict = {}
_HFRONTIERS: dict = {}


@primitive
def vfrontier(location: IntegerTuple) -> Indices:
    """The location's column for rows 0..29 (always 30 locations; the row is ignored), direct."""
    j = location[1]
    if type(j) is int and -_FRONTIER_CACHE_LIMIT <= j < _FRONTIER_CACHE_LIMIT:
        found = _VFRONTIERS.get(j)
        if found is None:
            found = _VFRONTIERS[j] = _frozenset([(i, j) for i in range(30)])
        return found
    return _frozenset([(i, j) for i in range(30)])


@primitive
def hfrontier(location: IntegerTuple) -> Indices:
    """The location's row for columns 0..29 (always 30 locations; the column is ignored), direct."""
    i = location[0]
    if type(i) is int and -_FRONTIER_CACHE_LIMIT <= i < _FRONTIER_CACHE_LIMIT:
        found = _HFRONTIERS.get(i)
        if found is None:
            found = _HFRONTIERS[i] = _frozenset([(i, j) for j in range(30)])
        return found
    return _frozenset([(i, j) for j in range(30)])


# --------------------------------------------------------------------------------------------
# 149-155: boxes, gravitation, rays
# --------------------------------------------------------------------------------------------

def _ref_backdrop(patch):
    m = _measures()
    indices = m.toindices(patch)
    si, sj = m.ulcorner(indices)
    ei, ej = m.lrcorner(indices)
    return _frozenset([(i, j) for i in range(si, ei + 1) for j in range(sj, ej + 1)])


@primitive
def backdrop(patch: Patch) -> Indices:
    """Every location of the bounding box, direct in row-major order.  Empty -> error."""
    if type(patch) is not _frozenset:
        return _ref_backdrop(patch)
    top, bottom, left, right = _bounds(patch)
    jrange = range(left, right + 1)
    return _frozenset([(i, j) for i in range(top, bottom + 1) for j in jrange])


@primitive
def delta(patch: Patch) -> Indices:
    """Bounding-box locations not in the patch: native ``backdrop(patch) - toindices(patch)``.
    Empty -> error."""
    if type(patch) is not _frozenset:
        return backdrop(patch) - _measures().toindices(patch)
    box_ = backdrop(patch)
    if isinstance(next(iter(patch), ())[1], tuple):
        return box_ - _frozenset([loc for _, loc in patch])
    return box_ - patch


def _ref_gravitate(source, destination):
    m = _measures()
    p = _patches()
    si, sj = center(source)
    di, dj = center(destination)
    i, j = 0, 0
    if p.vmatching(source, destination):
        i = 1 if si < di else -1
    else:
        j = 1 if sj < dj else -1
    c = 0
    while not p.adjacent(source, destination) and c < 42:
        c += 1
        source = m.shift(source, (i, j))
    return (c * i, c * j)


@primitive
def gravitate(source: Patch, destination: Patch) -> IntegerTuple:
    """Offset moving ``source`` step by step toward ``destination`` until they are adjacent
    (Manhattan distance exactly 1).  Vertical when they share a column (down iff source's centre row
    is smaller), else horizontal (right iff source's centre column is smaller).  At most 42 steps;
    returns steps x direction.  Overlapping patches keep moving until they touch without overlap."""
    if type(source) is not _frozenset or type(destination) is not _frozenset:
        return _ref_gravitate(source, destination)
    src = list(_locations(source)) if len(source) else []
    dst = _locations(destination) if len(destination) else []
    si, sj = center(source)
    di, dj = center(destination)
    dset = set(dst)
    if {loc[1] for loc in src} & {loc[1] for loc in dst}:
        i, j = (1 if si < di else -1), 0
    else:
        i, j = 0, (1 if sj < dj else -1)
    near = set()
    for a, b in dset:
        near.update(((a - 1, b), (a + 1, b), (a, b - 1), (a, b + 1)))
    for c in range(42):
        ci = c * i
        cj = c * j
        moved = {(a + ci, b + cj) for a, b in src}
        if moved.isdisjoint(dset) and not moved.isdisjoint(near):
            return (ci, cj)
    return (42 * i, 42 * j)


def _ref_inbox(patch, grow):
    p = _patches()
    ai, aj = p.uppermost(patch) - grow, p.leftmost(patch) - grow
    bi, bj = p.lowermost(patch) + grow, p.rightmost(patch) + grow
    return _outline(min(ai, bi), max(ai, bi), min(aj, bj), max(aj, bj))


@primitive
def inbox(patch: Patch) -> Indices:
    """Outline of the rectangle one step inside the bounding box; the bounds are re-ordered with
    min/max, so thin boxes turn inside out (a single cell at (1, 1) -> the ring rows 0-2 x cols
    0-2).  Four-set construction (§0.9).  Empty -> error."""
    if type(patch) is not _frozenset:
        return _ref_inbox(patch, -1)
    top, bottom, left, right = _bounds(patch)
    ai, aj, bi, bj = top + 1, left + 1, bottom - 1, right - 1
    return _outline(min(ai, bi), max(ai, bi), min(aj, bj), max(aj, bj))


@primitive
def outbox(patch: Patch) -> Indices:
    """Outline of the rectangle one step outside the bounding box (may hold negative locations).
    Four-set construction (§0.9).  Empty -> error."""
    if type(patch) is not _frozenset:
        return _ref_inbox(patch, 1)
    top, bottom, left, right = _bounds(patch)
    return _outline(top - 1, bottom + 1, left - 1, right + 1)


@primitive
def box(patch: Patch) -> Indices:
    """Outline of the bounding box itself (single cell -> that cell).  Four-set construction
    (§0.9).  Empty -> error."""
    if type(patch) is not _frozenset:
        m = _measures()
        ai, aj = m.ulcorner(patch)
        bi, bj = m.lrcorner(patch)
        return _outline(min(ai, bi), max(ai, bi), min(aj, bj), max(aj, bj))
    top, bottom, left, right = _bounds(patch)
    return _outline(top, bottom, left, right)


@primitive
def shoot(start: IntegerTuple, direction: IntegerTuple) -> Indices:
    """``connect(start, start + 42 * direction)``: 43 unclipped locations for a unit direction,
    ``{start}`` for (0, 0), the empty set for a non-line direction such as (1, 2)."""
    return connect(start, (start[0] + 42 * direction[0], start[1] + 42 * direction[1]))


# --------------------------------------------------------------------------------------------
# 156-160: pattern search and compression
# --------------------------------------------------------------------------------------------

def _ref_occurrences(grid, obj):
    m = _measures()
    occs = set()
    normed = m.normalize(obj)
    h, w = len(grid), len(grid[0])
    oh, ow = m.shape(obj)
    for i in range(h - oh + 1):
        for j in range(w - ow + 1):
            for v, (a, b) in m.shift(normed, (i, j)):
                if not (0 <= a < h and 0 <= b < w and grid[a][b] == v):
                    break
            else:
                occs.add((i, j))
    return _frozenset(occs)


@primitive
def occurrences(grid: Grid, obj: Object) -> Indices:
    """Upper-left corners (i, j) where the normalised object matches the grid at every one of its
    cells (other bounding-box cells are free); only placements whose box fits are tried.  A freeze
    of a set filled in row-major scan order.  Empty object -> error; grid ``()`` -> error; non-empty
    indices -> error as soon as one placement is tried (empty set if none fits)."""
    if type(obj) is not _frozenset:
        return _ref_occurrences(grid, obj)
    top, bottom, left, right = _bounds(obj)
    h, w = len(grid), len(grid[0])
    h2 = h - (bottom - top)
    w2 = w - (right - left)
    occs = set()
    if h2 <= 0 or w2 <= 0:
        return _frozenset(occs)
    if not isinstance(next(iter(obj), ())[1], tuple):
        raise TypeError("occurrences: indices have no colours")
    cells = [(i - top, j - left, v) for v, (i, j) in obj]
    tables = _grid_tables(grid, w)
    if tables is None:
        return _scan_occurrences(grid, cells, h2, w2)
    # one check per horizontal run of equally coloured cells: (count, row masks, row offset, col offset)
    try:
        cells.sort()
    except TypeError:  # incomparable colours at one location: order by location only
        cells.sort(key=_row_col)
    checks = []
    a0 = b0 = v0 = None
    k = 0
    for a, b, v in cells:
        if a == a0 and b == b0 + k and v == v0:
            k += 1
            continue
        if k:
            entry = _run_masks(tables, v0, k)
            if entry is None:  # a colour the grid lacks: no placement can match
                return _frozenset(occs)
            checks.append((entry[0], entry[1], a0, b0))
        a0, b0, v0, k = a, b, v, 1
    entry = _run_masks(tables, v0, k)
    if entry is None:
        return _frozenset(occs)
    checks.append((entry[0], entry[1], a0, b0))
    # rarest run first: the AND below then usually dies after a check or two
    checks.sort(key=_first_item)
    if not checks[0][0]:
        return _frozenset(occs)
    full = (1 << w2) - 1
    add = occs.add
    for i in range(h2):
        m = full
        for _, rowmasks, a, b in checks:
            m &= rowmasks[i + a] >> b
            if not m:
                break
        while m:
            low = m & -m
            add((i, low.bit_length() - 1))
            m ^= low
    return _frozenset(occs)


def _first_item(item):
    return item[0]


def _row_col(cell):
    return cell[0], cell[1]


_GRID_TABLES: dict = {}
_GRID_TABLES_SIZE = 16


def _grid_tables(grid, w):
    """Per-grid lookup tables for ``occurrences``, cached by grid value (equal grids give equal
    tables): ``{(colour, k): (count, row masks)}`` where bit j of row mask r is set when columns
    j..j+k-1 of row r all hold that colour.  Filled for k = 1 here and for longer runs on demand.
    ``None`` when some row is shorter than ``w`` or a cell is unhashable: the plain scan then
    reproduces the reference's indexing errors."""
    try:
        found = _GRID_TABLES.get(grid)
    except TypeError:
        return None
    if found is not None:
        return found
    rows: dict = {}
    try:
        for row in grid:
            if len(row) < w:
                return None
        h = len(grid)
        for i, row in enumerate(grid):
            bit = 1
            for v in row:
                rowmasks = rows.get(v)
                if rowmasks is None:
                    rowmasks = rows[v] = [0] * h
                rowmasks[i] |= bit
                bit <<= 1
    except TypeError:
        return None
    tables = {(v, 1): (sum(m.bit_count() for m in rowmasks), rowmasks) for v, rowmasks in rows.items()}
    if len(_GRID_TABLES) >= _GRID_TABLES_SIZE:
        del _GRID_TABLES[next(iter(_GRID_TABLES))]
    _GRID_TABLES[grid] = tables
    return tables


def _run_masks(tables, v, k):
    """``tables[(v, k)]``, computed from the single-cell masks on first use; ``None`` if the grid
    has no cell of colour ``v``."""
    entry = tables.get((v, k))
    if entry is None and k > 1:
        single = tables.get((v, 1))
        if single is None:
            return None
        runs = []
        for m in single[1]:
            r = m
            for t in range(1, k):
                r &= m >> t
            runs.append(r)
        entry = tables[(v, k)] = (sum(m.bit_count() for m in runs), runs)
    return entry


def _scan_occurrences(grid, cells, h2, w2):
    """Placement-by-placement scan (used when the grid is ragged or has unhashable cells)."""
    occs = set()
    for i in range(h2):
        for j in range(w2):
            for a, b, v in cells:
                if grid[i + a][j + b] != v:
                    break
            else:
                occs.add((i, j))
    return _frozenset(occs)


@primitive
def frontiers(grid: Grid) -> Objects:
    """One object per uniform row and per uniform column (the whole line).  Each frontier is a freeze
    of its cells (left-to-right / top-to-bottom); rows' and columns' sets are freezes; the result is
    the native union rows | columns (identical objects collapse).  ``()`` -> error."""
    h, w = len(grid), len(grid[0])
    row_ids = [i for i, row in enumerate(grid) if len(set(row)) == 1]
    col_ids = [j for j, col in enumerate(zip(*grid)) if len(set(col)) == 1]
    hfront = _frozenset({_frozenset({(grid[i][j], (i, j)) for j in range(w)}) for i in row_ids})
    vfront = _frozenset({_frozenset({(grid[i][j], (i, j)) for i in range(h)}) for j in col_ids})
    return hfront | vfront


@primitive
def compress(grid: Grid) -> Grid:
    """Remove every uniform row and every uniform column (any colour); uniform grid -> ``()``.
    A non-tuple argument takes the reference's route, where the columns come from ``dmirror``."""
    if type(grid) is not tuple:
        ri = _tuple(i for i, r in enumerate(grid) if len(set(r)) == 1)
        ci = _tuple(j for j, c in enumerate(dmirror(grid)) if len(set(c)) == 1)
        return _tuple(_tuple(v for j, v in enumerate(r) if j not in ci)
                      for i, r in enumerate(grid) if i not in ri)
    drop_rows = {i for i, row in enumerate(grid) if len(set(row)) == 1}
    drop_cols = {j for j, col in enumerate(zip(*grid)) if len(set(col)) == 1}
    if drop_cols:
        return _tuple([_tuple([v for j, v in enumerate(row) if j not in drop_cols])
                       for i, row in enumerate(grid) if i not in drop_rows])
    return _tuple([_tuple(row) for i, row in enumerate(grid) if i not in drop_rows])


def _ref_period(obj, horizontal):
    m = _measures()
    normalized = m.normalize(obj)
    size = m.width(normalized) if horizontal else m.height(normalized)
    for p in range(1, size):
        offset = (0, -p) if horizontal else (-p, 0)
        shifted = m.shift(normalized, offset)
        if horizontal:
            pruned = _frozenset({(c, (i, j)) for c, (i, j) in shifted if j >= 0})
        else:
            pruned = _frozenset({(c, (i, j)) for c, (i, j) in shifted if i >= 0})
        if pruned.issubset(normalized):
            return p
    return size


def _period(obj, axis):
    """Smallest p >= 1 such that the normalised object, shifted by p toward 0 along ``axis`` (1 =
    columns, 0 = rows) with cells falling off dropped, is a subset of itself; else the extent."""
    top, bottom, left, right = _bounds(obj)
    size = (right - left + 1) if axis else (bottom - top + 1)
    if size < 2:
        return size
    if not isinstance(next(iter(obj), ())[1], tuple):
        raise TypeError("period: indices have no colours")
    cells = {(v, i - top, j - left) for v, (i, j) in obj}
    if axis:
        for p in range(1, size):
            if all((v, i, j - p) in cells for v, i, j in cells if j >= p):
                return p
    else:
        for p in range(1, size):
            if all((v, i - p, j) in cells for v, i, j in cells if i >= p):
                return p
    return size


@primitive
def hperiod(obj: Object) -> Integer:
    """Smallest horizontal period of the object (cells absent from the object are unconstrained);
    none -> the width.  Empty -> error.  Indices: width 1 -> 1 without error, wider -> error (the
    reference unpacks colours only inside the loop)."""
    if type(obj) is not _frozenset:
        return _ref_period(obj, True)
    return _period(obj, 1)


@primitive
def vperiod(obj: Object) -> Integer:
    """Smallest vertical period (shift up, drop negative rows); none -> the height.  Empty -> error.
    Indices of height 1 -> 1, taller -> error."""
    if type(obj) is not _frozenset:
        return _ref_period(obj, False)
    return _period(obj, 0)

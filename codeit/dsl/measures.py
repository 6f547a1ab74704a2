"""Colours, sizes and shape measures: primitives 67-89 of dsl-spec §3.3.

Every frozenset is built the way dsl-spec §0.9 prescribes, so iteration orders (which leak into
``first``, ``argmax`` ties, ``color`` and friends) match the reference.  Hot paths avoid calling
other primitives and do their per-element work in comprehensions or C-level builtins.

Dispatch rules shared by most functions here (dsl-spec §0.3): a ``tuple`` is a grid, anything else
a patch; a non-empty patch is an object when its first element's second component is a tuple.
The helpers below keep the reference's unpacking (``value, (i, j)`` / ``i, j``) so malformed inputs
fail where the reference fails.
"""

from __future__ import annotations

from itertools import compress

from codeit.dsl.cells import (
    SAME,
    byte_grid,
    cols_of,
    counter,
    flatten,
    is_byte,
    row_major,
    rows_of,
)
from codeit.dsl.registry import primitive
from codeit.dsl.types import (
    Boolean,
    Container,
    Element,
    FrozenSet,
    Grid,
    Indices,
    Integer,
    IntegerTuple,
    Object,
    Objects,
    Patch,
    Piece,
)


@primitive
def mostcolor(element: Element) -> Integer:
    """Most frequent colour of a grid (any tuple, row-major) or of an object's cells.

    Ties go to the first candidate in the iteration order of a ``set`` built from the colour
    sequence (so ``((9, 1),)`` → 9 but ``((1, 9),)`` → 1); empty → error. Indices count row numbers.
    (Counting runs on a ``bytes`` copy when every colour fits a byte — same counts, C speed.)
    """
    values = list(flatten(element)) if isinstance(element, tuple) else [v for v, _ in element]
    return max(set(values), key=counter(values))


@primitive
def leastcolor(element: Element) -> Integer:
    """Least frequent colour; same value collection and set-order tie rule as ``mostcolor``."""
    values = list(flatten(element)) if isinstance(element, tuple) else [v for v, _ in element]
    return min(set(values), key=counter(values))


@primitive
def height(piece: Piece) -> Integer:
    """Rows of a grid, or bounding-box height of a patch; anything empty → 0."""
    if len(piece) == 0:
        return 0
    if isinstance(piece, tuple):
        return len(piece)
    rows = rows_of(piece)
    return max(rows) - min(rows) + 1


@primitive
def width(piece: Piece) -> Integer:
    """Length of a grid's first row, or bounding-box width of a patch; anything empty → 0."""
    if len(piece) == 0:
        return 0
    if isinstance(piece, tuple):
        return len(piece[0])
    cols = cols_of(piece)
    return max(cols) - min(cols) + 1


@primitive
def shape(piece: Piece) -> IntegerTuple:
    """``(height, width)`` of a grid or of a patch's bounding box."""
    if len(piece) == 0:
        return (0, 0)
    if isinstance(piece, tuple):
        return (len(piece), len(piece[0]))
    rows = rows_of(piece)
    cols = cols_of(piece)
    return (max(rows) - min(rows) + 1, max(cols) - min(cols) + 1)


@primitive
def portrait(piece: Piece) -> Boolean:
    """Whether the height is strictly greater than the width."""
    return height(piece) > width(piece)


@primitive
def colorcount(element: Element, value: Integer) -> Integer:
    """Number of grid cells (or object cells) whose colour equals ``value``."""
    if isinstance(element, tuple):
        return sum([row.count(value) for row in element])
    return sum([v == value for v, _ in element])


@primitive
def colorfilter(objs: Objects, value: Integer) -> Objects:
    """Objects whose colour is ``value``; the colour is the object's first cell in iteration order.

    (Arbitrary but deterministic for multi-coloured objects; an empty object raises.) Built directly
    in the input's order.
    """
    return frozenset([obj for obj in objs if next(iter(obj))[0] == value])


@primitive
def sizefilter(container: Container, n: Integer) -> FrozenSet:
    """Items whose length equals ``n``, always as a frozenset (duplicates of a tuple collapse)."""
    return frozenset([item for item in container if len(item) == n])


@primitive
def asindices(grid: Grid) -> Indices:
    """Every location of the grid (width from the first row), built row-major; ``()`` → empty."""
    h = len(grid)
    if h == 0:
        return frozenset()
    return frozenset(row_major(h, len(grid[0])))


@primitive
def ofcolor(grid: Grid, value: Integer) -> Indices:
    """Locations whose colour equals ``value``, built row-major."""
    if is_byte(value):
        packed = byte_grid(grid)
        if packed is not None:
            return frozenset(compress(row_major(len(grid), len(grid[0])), packed[1].translate(SAME[value])))
    return frozenset([(i, j) for i, r in enumerate(grid) for j, v in enumerate(r) if v == value])


@primitive
def ulcorner(patch: Patch) -> IntegerTuple:
    """``(min row, min column)`` of the patch's locations; empty patch → ``()`` (no error)."""
    if len(patch) == 0:
        return ()
    if isinstance(next(iter(patch))[1], tuple):
        patch = [index for _, index in patch]
    return tuple(map(min, zip(*patch)))


def _mixed_corner(patch: Patch, first, second) -> IntegerTuple:
    """Corner with ``first`` applied to the rows and ``second`` to the columns (reference zip rule)."""
    if len(patch) == 0:
        return ()
    if isinstance(next(iter(patch))[1], tuple):
        patch = [index for _, index in patch]
    columns = list(zip(*patch))
    if len(columns) == 2:
        return (first(columns[0]), second(columns[1]))
    if len(columns) > 2:
        raise KeyError(2)
    return tuple([first(c) for c in columns])


@primitive
def urcorner(patch: Patch) -> IntegerTuple:
    """``(min row, max column)``; empty patch → ``()``."""
    return _mixed_corner(patch, min, max)


@primitive
def llcorner(patch: Patch) -> IntegerTuple:
    """``(max row, min column)``; empty patch → ``()``."""
    return _mixed_corner(patch, max, min)


@primitive
def lrcorner(patch: Patch) -> IntegerTuple:
    """``(max row, max column)``; empty patch → ``()``."""
    if len(patch) == 0:
        return ()
    if isinstance(next(iter(patch))[1], tuple):
        patch = [index for _, index in patch]
    return tuple(map(max, zip(*patch)))


@primitive
def crop(grid: Grid, start: IntegerTuple, dims: IntegerTuple) -> Grid:
    """Sub-grid from ``start`` of size ``dims`` with Python slice semantics (truncation, negative wrap)."""
    rows = grid[start[0]:start[0] + dims[0]]
    if not rows:
        return ()
    j0 = start[1]
    j1 = j0 + dims[1]
    return tuple([r[j0:j1] for r in rows])


@primitive
def toindices(patch: Patch) -> Indices:
    """Locations of a patch. Empty → new empty frozenset; object → frozenset of its locations (built in
    the object's order); indices → the very same value (so a grid whose first row has ≥ 2 cells comes
    back unchanged, and one whose first row has < 2 cells raises, as in the reference)."""
    if len(patch) == 0:
        return frozenset()
    if isinstance(next(iter(patch))[1], tuple):
        return frozenset([index for _, index in patch])
    return patch


@primitive
def recolor(value: Integer, patch: Patch) -> Object:
    """Object of colour ``value`` on the patch's locations, built in ``toindices`` order."""
    if len(patch) == 0:
        return frozenset()
    if isinstance(next(iter(patch))[1], tuple):
        patch = frozenset([index for _, index in patch])
    return frozenset([(value, index) for index in patch])


@primitive
def shift(patch: Patch, directions: IntegerTuple) -> Patch:
    """Translate every location by ``(di, dj)`` (colours kept); empty patch → returned as is."""
    if len(patch) == 0:
        return patch
    di, dj = directions
    if isinstance(next(iter(patch))[1], tuple):
        return frozenset([(v, (i + di, j + dj)) for v, (i, j) in patch])
    return frozenset([(i + di, j + dj) for i, j in patch])


@primitive
def normalize(patch: Patch) -> Patch:
    """Shift so the bounding box's upper-left corner is ``(0, 0)``. Empty → error (CodeIt's version
    has no empty guard)."""
    if len(patch) == 0:
        raise ValueError("normalize of an empty patch")
    if isinstance(next(iter(patch))[1], tuple):
        di = -min([i for _, (i, _) in patch])
        dj = -min([j for _, (_, j) in patch])
        return frozenset([(v, (i + di, j + dj)) for v, (i, j) in patch])
    di = -min([i for i, _ in patch])
    dj = -min([j for _, j in patch])
    return frozenset([(i + di, j + dj) for i, j in patch])


@primitive
def dneighbors(loc: IntegerTuple) -> Indices:
    """The 4 orthogonal neighbours (unclipped): freeze of {up, down, left, right} in that order."""
    i = loc[0]
    j = loc[1]
    return frozenset({(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)})


@primitive
def ineighbors(loc: IntegerTuple) -> Indices:
    """The 4 diagonal neighbours (unclipped): freeze of {UL, UR, DL, DR} in that order."""
    i = loc[0]
    j = loc[1]
    return frozenset({(i - 1, j - 1), (i - 1, j + 1), (i + 1, j - 1), (i + 1, j + 1)})


@primitive
def neighbors(loc: IntegerTuple) -> Indices:
    """All 8 neighbours: native union ``dneighbors(loc) | ineighbors(loc)`` (iteration order)."""
    i = loc[0]
    j = loc[1]
    return (frozenset({(i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)})
            | frozenset({(i - 1, j - 1), (i - 1, j + 1), (i + 1, j - 1), (i + 1, j + 1)}))

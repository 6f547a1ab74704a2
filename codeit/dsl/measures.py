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

from itertools import chain, compress

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

_flatten = chain.from_iterable

# Row-major location tuples per grid shape (immutable tuples of immutable pairs; callers always build
# a fresh frozenset from them, so no cached value is ever handed out as a result).
_ROW_MAJOR: dict[tuple[int, int], tuple] = {}
_ROW_MAJOR_LIMIT = 256  # shapes
_CACHED_CELLS = 4096  # larger shapes (never ARC-sized) are computed afresh each time
# One shared tuple per location used by the caches (equal tuples are interchangeable in sets and
# dicts; sharing them keeps the per-shape caches small).
_LOCATIONS: dict[tuple[int, int], tuple[int, int]] = {}
_LOCATIONS_LIMIT = 40_000


def _location(loc: tuple[int, int]) -> tuple[int, int]:
    """The shared tuple equal to ``loc``."""
    shared = _LOCATIONS.get(loc)
    if shared is None:
        if len(_LOCATIONS) >= _LOCATIONS_LIMIT:
            return loc
        shared = _LOCATIONS[loc] = loc
    return shared


def _row_major(h: int, w: int) -> tuple:
    """All locations of an h×w grid in row-major order (cached per shape)."""
    key = (h, w)
    locs = _ROW_MAJOR.get(key)
    if locs is None:
        if h * w > _CACHED_CELLS:
            return tuple([(i, j) for i in range(h) for j in range(w)])
        locs = tuple([_location((i, j)) for i in range(h) for j in range(w)])
        if len(_ROW_MAJOR) >= _ROW_MAJOR_LIMIT:
            _ROW_MAJOR.clear()
        _ROW_MAJOR[key] = locs
    return locs


def _rect_flat(grid: Grid) -> list | None:
    """The grid's cells row-major as a list when all rows have the first row's length, else None.

    Lets grid primitives pair cells with the cached row-major locations; ragged grids (which programs
    can build, e.g. with ``vconcat``) go through the reference's row-by-row path instead.
    Requires a non-empty grid.
    """
    w = len(grid[0])
    flat = list(_flatten(grid))
    if len(flat) != len(grid) * w:
        return None
    for row in grid:
        if len(row) != w:
            return None
    return flat


def _byte_grid(grid: Grid) -> tuple[list, bytes] | None:
    """``(flat cells, bytes of them)`` for a non-empty rectangular tuple grid of byte-sized ints.

    Cells that are ``bool`` pass too (``True`` counts as 1, consistent with ``==``); actual cell values
    are always taken from the list, never from the bytes.
    """
    if not isinstance(grid, tuple) or not grid:
        return None
    row0 = grid[0]
    if not isinstance(row0, tuple) or not row0:
        return None
    flat = _rect_flat(grid)
    if flat is None:
        return None
    try:
        return flat, bytes(flat)
    except (TypeError, ValueError):
        return None


def _is_byte(value) -> bool:
    """Whether ``value`` is an int (or bool) usable as a byte, i.e. ``bytes`` search gives ``==``."""
    return (value.__class__ is int or value.__class__ is bool) and 0 <= value < 256


# _SAME[c]: translation table mapping byte c to 1 and every other byte to 0; _OTHER[c] the converse.
_SAME = tuple(bytes([int(x == c) for x in range(256)]) for c in range(256))
_OTHER = tuple(bytes([int(x != c) for x in range(256)]) for c in range(256))


def _counter(values: list):
    """``values.count``, or the same counts from a ``bytes`` copy (C speed) for long byte-sized lists."""
    if len(values) > 48:
        try:
            return bytes(values).count
        except (TypeError, ValueError):
            pass
    return values.count


@primitive
def mostcolor(element: Element) -> Integer:
    """Most frequent colour of a grid (any tuple, row-major) or of an object's cells.

    Ties go to the first candidate in the iteration order of a ``set`` built from the colour
    sequence (so ``((9, 1),)`` → 9 but ``((1, 9),)`` → 1); empty → error. Indices count row numbers.
    (Counting runs on a ``bytes`` copy when every colour fits a byte — same counts, C speed.)
    """
    values = list(_flatten(element)) if isinstance(element, tuple) else [v for v, _ in element]
    return max(set(values), key=_counter(values))


@primitive
def leastcolor(element: Element) -> Integer:
    """Least frequent colour; same value collection and set-order tie rule as ``mostcolor``."""
    values = list(_flatten(element)) if isinstance(element, tuple) else [v for v, _ in element]
    return min(set(values), key=_counter(values))


def _rows_of(patch: Patch) -> list:
    """Row indices of a non-empty patch, unpacked exactly as ``toindices`` + ``i, j`` would."""
    if isinstance(next(iter(patch))[1], tuple):
        return [i for _, (i, _) in patch]
    return [i for i, _ in patch]


def _cols_of(patch: Patch) -> list:
    """Column indices of a non-empty patch, unpacked exactly as ``toindices`` + ``i, j`` would."""
    if isinstance(next(iter(patch))[1], tuple):
        return [j for _, (_, j) in patch]
    return [j for _, j in patch]


@primitive
def height(piece: Piece) -> Integer:
    """Rows of a grid, or bounding-box height of a patch; anything empty → 0."""
    if len(piece) == 0:
        return 0
    if isinstance(piece, tuple):
        return len(piece)
    rows = _rows_of(piece)
    return max(rows) - min(rows) + 1


@primitive
def width(piece: Piece) -> Integer:
    """Length of a grid's first row, or bounding-box width of a patch; anything empty → 0."""
    if len(piece) == 0:
        return 0
    if isinstance(piece, tuple):
        return len(piece[0])
    cols = _cols_of(piece)
    return max(cols) - min(cols) + 1


@primitive
def shape(piece: Piece) -> IntegerTuple:
    """``(height, width)`` of a grid or of a patch's bounding box."""
    if len(piece) == 0:
        return (0, 0)
    if isinstance(piece, tuple):
        return (len(piece), len(piece[0]))
    rows = _rows_of(piece)
    cols = _cols_of(piece)
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
    return frozenset(_row_major(h, len(grid[0])))


@primitive
def ofcolor(grid: Grid, value: Integer) -> Indices:
    """Locations whose colour equals ``value``, built row-major."""
    if _is_byte(value):
        packed = _byte_grid(grid)
        if packed is not None:
            return frozenset(compress(_row_major(len(grid), len(grid[0])), packed[1].translate(_SAME[value])))
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

"""Bounding boxes, predicates, distances: primitives 93-110 of dsl-spec §3.5.

Patch measures read the locations straight from the cells with the reference's unpacking
(``value, (i, j)`` for objects, ``i, j`` for indices, decided by the first element as ``toindices``
decides) instead of materialising ``toindices`` and walking it once per extreme.  Frozensets are
built as dsl-spec §0.9 prescribes.
"""

from __future__ import annotations

from itertools import chain

from codeit.dsl.cells import cols_of, rect_flat, row_major, rows_of
from codeit.dsl.measures import height, toindices, width
from codeit.dsl.registry import primitive
from codeit.dsl.types import Boolean, Element, Grid, Integer, IntegerSet, IntegerTuple, Object, Patch, Piece


def _empty_error(name: str) -> ValueError:
    return ValueError(f"{name} of an empty patch")


@primitive
def uppermost(patch: Patch) -> Integer:
    """Smallest row index among the patch's locations. Empty → error."""
    if len(patch) == 0:
        raise _empty_error("uppermost")
    return min(rows_of(patch))


@primitive
def lowermost(patch: Patch) -> Integer:
    """Largest row index. Empty → error."""
    if len(patch) == 0:
        raise _empty_error("lowermost")
    return max(rows_of(patch))


@primitive
def leftmost(patch: Patch) -> Integer:
    """Smallest column index. Empty → error."""
    if len(patch) == 0:
        raise _empty_error("leftmost")
    return min(cols_of(patch))


@primitive
def rightmost(patch: Patch) -> Integer:
    """Largest column index. Empty → error."""
    if len(patch) == 0:
        raise _empty_error("rightmost")
    return max(cols_of(patch))


@primitive
def square(piece: Piece) -> Boolean:
    """Grid: rows == first row's length (``()`` → error). Patch: bounding box square and completely
    filled (element count == height × width); empty patch → True (0 == 0·0)."""
    if isinstance(piece, tuple):
        return len(piece) == len(piece[0])
    h = height(piece)
    w = width(piece)
    return h * w == len(piece) and h == w


@primitive
def vline(patch: Patch) -> Boolean:
    """Element count == height and width == 1 (gap-free vertical segment). Empty → False."""
    return height(patch) == len(patch) and width(patch) == 1


@primitive
def hline(patch: Patch) -> Boolean:
    """Element count == width and height == 1 (gap-free horizontal segment). Empty → False."""
    return width(patch) == len(patch) and height(patch) == 1


@primitive
def hmatching(a: Patch, b: Patch) -> Boolean:
    """Whether the patches share a row index (empty → False)."""
    rows_a = set(rows_of(a)) if len(a) else set()
    rows_b = set(rows_of(b)) if len(b) else set()
    return not rows_a.isdisjoint(rows_b)


@primitive
def vmatching(a: Patch, b: Patch) -> Boolean:
    """Whether the patches share a column index (empty → False)."""
    cols_a = set(cols_of(a)) if len(a) else set()
    cols_b = set(cols_of(b)) if len(b) else set()
    return not cols_a.isdisjoint(cols_b)


@primitive
def manhattan(a: Patch, b: Patch) -> Integer:
    """Minimum ``|Δi| + |Δj|`` over all location pairs (0 when overlapping). Either empty → error."""
    ia = toindices(a)
    if len(ia) == 0:
        raise _empty_error("manhattan")
    ib = toindices(b)
    return min([abs(ai - bi) + abs(aj - bj) for ai, aj in ia for bi, bj in ib])


@primitive
def adjacent(a: Patch, b: Patch) -> Boolean:
    """``manhattan(a, b) == 1``: orthogonal contact only (diagonal contact or overlap → False)."""
    return manhattan(a, b) == 1


@primitive
def bordering(patch: Patch, grid: Grid) -> Boolean:
    """Whether the patch reaches the first/last row or column of the grid (checked top, left, bottom,
    right, short-circuiting like the reference). Empty → error."""
    if len(patch) == 0:
        raise _empty_error("bordering")
    rows = rows_of(patch)
    if min(rows) == 0:
        return True
    cols = cols_of(patch)
    return min(cols) == 0 or max(rows) == len(grid) - 1 or max(cols) == len(grid[0]) - 1


@primitive
def centerofmass(patch: Patch) -> IntegerTuple:
    """``(Σrows // n, Σcols // n)`` with sums over the *distinct locations* (``toindices``) but n = the
    number of elements of the patch as given (cells for an object) — the reference's quirk, visible
    only for objects with several cells at one location. Floor division; empty → ``()``."""
    n = len(patch)
    return tuple([sum(axis) // n for axis in zip(*toindices(patch))])


@primitive
def palette(element: Element) -> IntegerSet:
    """Colours of a grid (any tuple) or of an object's cells: freeze of a set filled in order."""
    if isinstance(element, tuple):
        return frozenset(set(chain.from_iterable(element)))
    return frozenset({v for v, _ in element})


@primitive
def numcolors(element: Element) -> IntegerSet:
    """The *number* of distinct colours (an int, despite the reference's annotation)."""
    if isinstance(element, tuple):
        return len(set(chain.from_iterable(element)))
    return len({v for v, _ in element})


@primitive
def color(obj: Object) -> Integer:
    """Colour of the object's first cell in iteration order. Empty → error."""
    return next(iter(obj))[0]


@primitive
def toobject(patch: Patch, grid: Grid) -> Object:
    """Object taking each patch location's colour from the grid (in ``toindices`` order); locations
    outside the grid are dropped; an object's own colours are ignored. Grid ``()`` → error."""
    h = len(grid)
    w = len(grid[0])
    return frozenset([(grid[i][j], (i, j)) for i, j in toindices(patch) if 0 <= i < h and 0 <= j < w])


@primitive
def asobject(grid: Grid) -> Object:
    """Every grid cell as ``(colour, (i, j))``, built row-major."""
    if isinstance(grid, tuple) and grid and isinstance(grid[0], tuple) and grid[0]:
        flat = rect_flat(grid)
        if flat is not None:
            return frozenset(zip(flat, row_major(len(grid), len(grid[0]))))
    return frozenset([(v, (i, j)) for i, r in enumerate(grid) for j, v in enumerate(r)])

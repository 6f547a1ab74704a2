"""Cell-level helpers shared by the primitives: row-major locations (cached per shape), a grid's cells
as one flat list, and the row or column indices of a patch.

Not primitives themselves; kept in one module so that measures, patches and transforms share one
implementation and one cache.
"""

from __future__ import annotations

from itertools import chain

from codeit.dsl.types import Grid, Patch

__all__ = ["CACHED_CELLS", "OTHER", "SAME", "byte_grid", "cols_of", "counter", "flatten", "is_byte", "location",
           "rect_flat", "row_major", "rows_of"]

flatten = chain.from_iterable

# Row-major location tuples per grid shape (immutable tuples of immutable pairs; callers always build
# a fresh frozenset from them, so no cached value is ever handed out as a result).
_ROW_MAJOR: dict[tuple[int, int], tuple] = {}
_ROW_MAJOR_LIMIT = 256  # shapes
CACHED_CELLS = 4096  # larger shapes (never ARC-sized) are computed afresh each time
# One shared tuple per location used by the caches (equal tuples are interchangeable in sets and
# dicts; sharing them keeps the per-shape caches small).
_LOCATIONS: dict[tuple[int, int], tuple[int, int]] = {}
_LOCATIONS_LIMIT = 40_000


def location(loc: tuple[int, int]) -> tuple[int, int]:
    """The shared tuple equal to ``loc``."""
    shared = _LOCATIONS.get(loc)
    if shared is None:
        if len(_LOCATIONS) >= _LOCATIONS_LIMIT:
            return loc
        shared = _LOCATIONS[loc] = loc
    return shared


def row_major(h: int, w: int) -> tuple:
    """All locations of an h×w grid in row-major order (cached per shape)."""
    key = (h, w)
    locs = _ROW_MAJOR.get(key)
    if locs is None:
        if h * w > CACHED_CELLS:
            return tuple([(i, j) for i in range(h) for j in range(w)])
        locs = tuple([location((i, j)) for i in range(h) for j in range(w)])
        if len(_ROW_MAJOR) >= _ROW_MAJOR_LIMIT:
            _ROW_MAJOR.clear()
        _ROW_MAJOR[key] = locs
    return locs


def rect_flat(grid: Grid) -> list | None:
    """The grid's cells row-major as a list when all rows have the first row's length, else None.

    Lets grid primitives pair cells with the cached row-major locations; ragged grids (which programs
    can build, e.g. with ``vconcat``) go through the reference's row-by-row path instead.
    Requires a non-empty grid.
    """
    w = len(grid[0])
    flat = list(flatten(grid))
    if len(flat) != len(grid) * w:
        return None
    for row in grid:
        if len(row) != w:
            return None
    return flat


def rows_of(patch: Patch) -> list:
    """Row indices of a non-empty patch, unpacked exactly as ``toindices`` + ``i, j`` would."""
    if isinstance(next(iter(patch))[1], tuple):
        return [i for _, (i, _) in patch]
    return [i for i, _ in patch]


def cols_of(patch: Patch) -> list:
    """Column indices of a non-empty patch, unpacked exactly as ``toindices`` + ``i, j`` would."""
    if isinstance(next(iter(patch))[1], tuple):
        return [j for _, (_, j) in patch]
    return [j for _, j in patch]


def byte_grid(grid: Grid) -> tuple[list, bytes] | None:
    """``(flat cells, bytes of them)`` for a non-empty rectangular tuple grid of byte-sized ints.

    Cells that are ``bool`` pass too (``True`` counts as 1, consistent with ``==``); actual cell values
    are always taken from the list, never from the bytes.
    """
    if not isinstance(grid, tuple) or not grid:
        return None
    row0 = grid[0]
    if not isinstance(row0, tuple) or not row0:
        return None
    flat = rect_flat(grid)
    if flat is None:
        return None
    try:
        return flat, bytes(flat)
    except (TypeError, ValueError):
        return None


def is_byte(value) -> bool:
    """Whether ``value`` is an int (or bool) usable as a byte, i.e. ``bytes`` search gives ``==``."""
    return (value.__class__ is int or value.__class__ is bool) and 0 <= value < 256


# SAME[c]: translation table mapping byte c to 1 and every other byte to 0; OTHER[c] the converse.
SAME = tuple(bytes([int(x == c) for x in range(256)]) for c in range(256))
OTHER = tuple(bytes([int(x != c) for x in range(256)]) for c in range(256))


def counter(values: list):
    """``values.count``, or the same counts from a ``bytes`` copy (C speed) for long byte-sized lists."""
    if len(values) > 48:
        try:
            return bytes(values).count
        except (TypeError, ValueError):
            pass
    return values.count

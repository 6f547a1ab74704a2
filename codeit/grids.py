"""What counts as an ARC grid: the one validity rule for program inputs and outputs.

A grid is a non-empty tuple of equal-length, non-empty tuples of ints 0–9.  Booleans are ints in
Python (and the DSL computes with them), so ``True``/``False`` cells are accepted and returned as
``1``/``0``.  This is stricter than the reference in two deliberate ways (dsl-spec §4.4): ``()`` and
``((),)`` are not grids, and the 0–9 range is really enforced (the reference's lenient check has an
operator-precedence slip that accepts any integer).
"""

from __future__ import annotations

import operator

__all__ = ["COLOURS", "Grid", "GridTable", "check_grid"]

Grid = tuple[tuple[int, ...], ...]

#: The ten ARC colours.
COLOURS = frozenset(range(10))

_TUPLE = frozenset({tuple})
_SEQUENCES = frozenset({tuple, list})
_INT_OR_BOOL = frozenset({int, bool})
_COLOUR_BYTES = bytes(range(10))


def check_grid(value: object, *, sequences: bool = False) -> tuple[Grid | None, str | None]:
    """``(grid, None)`` if ``value`` is a valid grid, else ``(None, reason)``.

    The grid comes back as a tuple of tuples of plain ints (booleans converted).  With
    ``sequences=True`` lists are accepted as well and converted (grids read from JSON); program
    outputs are checked without it, because a DSL value that is a list is not a grid.
    """
    kinds = _SEQUENCES if sequences else _TUPLE
    if type(value) not in kinds:
        return None, f"{_a(value)}, not a grid"
    if not value:
        return None, "a grid with no rows"
    width = len(value[0]) if type(value[0]) in kinds else 0
    if not set(map(type, value)) <= kinds or set(map(len, value)) != {width} or not width:
        return None, _bad_row(value, kinds)
    # Every row through bytes(): C-speed proof that each cell is an int (bool included) in 0-255,
    # and the rebuilt rows hold plain ints (no booleans) -- five times faster than a type scan.
    try:
        rows = list(map(bytes, value))
    except (TypeError, ValueError):  # not an integer, or outside 0-255
        return None, _bad_cell(value)
    if b"".join(rows).translate(None, _COLOUR_BYTES):  # something is left: a byte above 9
        return None, _bad_cell(value)
    return tuple(map(tuple, rows)), None


class GridTable:
    """One shared object per distinct grid, and per distinct row (an interning table).

    :meth:`grid` returns the table's object equal to a grid, registering it (its rows first) when the
    table has none: the first object seen stays the shared one, so the grids of a search task remain
    those of the relabelled tasks built on it, and distinct grids that differ in a few cells (the outputs
    of one program's variants) share their equal rows.  A replay buffer of a million entries holds a few
    distinct grids per entry at most; each costs its outer tuple and its new rows, not a full copy.
    Tuples cannot be weakly referenced, so the table keeps what it holds alive: :meth:`clear` it and
    register the grids still in use again to let the others go.
    """

    __slots__ = ("_grids", "_rows")

    def __init__(self) -> None:
        self._grids: dict[Grid, Grid] = {}
        self._rows: dict[tuple[int, ...], tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self._grids)

    def __contains__(self, grid: object) -> bool:
        return grid in self._grids

    @property
    def rows(self) -> int:
        """How many distinct rows the table holds."""
        return len(self._rows)

    def grid(self, grid: Grid) -> Grid:
        """The shared object equal to ``grid`` (``grid`` itself when it is the first of its value)."""
        found = self._grids.get(grid)
        if found is not None:
            return found
        setdefault = self._rows.setdefault
        rows = [setdefault(row, row) for row in grid]
        if not all(map(operator.is_, rows, grid)):
            grid = tuple(rows)
        self._grids[grid] = grid
        return grid

    def clear(self) -> None:
        self._grids.clear()
        self._rows.clear()


def _bad_row(value, kinds) -> str:
    """Describe the first row that is not a row of cells (called only when there is one)."""
    width = len(value[0]) if type(value[0]) in kinds else 0
    for i, row in enumerate(value):
        if type(row) not in kinds:
            return f"row {i} is {_a(row)}, not a row of cells"
        if len(row) != width:
            return f"ragged rows: row {i} has {len(row)} cells but row 0 has {width}"
    return "a grid with empty rows"


def _bad_cell(value) -> str:
    """Describe the first cell that is not a colour (called only when there is one)."""
    for i, row in enumerate(value):
        for j, cell in enumerate(row):
            if type(cell) not in _INT_OR_BOOL:
                return f"cell ({i}, {j}) is {_a(cell)} ({_short(cell)}), not an int"
            if cell not in COLOURS:
                return f"cell ({i}, {j}) is {cell}, not a colour 0-9"
    return "not a grid"


def _a(value: object) -> str:
    """``a frozenset``, ``an int``: the type of ``value`` with its article."""
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiouAEIOU" else f"a {name}"


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."

"""Object extraction: primitives 90-92 of dsl-spec §3.4 (``objects``, ``partition``, ``fgpartition``).

``objects`` is the hottest primitive of the published programs, and the iteration order of every
object it returns (and of the returned set) is decided by its construction (dsl-spec §3 entry 90).
It therefore runs the reference's wave-by-wave algorithm operation for operation — mutable sets, one
separate neighbour set per qualifying candidate merged into the wave's set with in-place union,
candidates = next − assigned — and gets its speed elsewhere:

* the in-grid neighbour set of every location is built once, exactly as the reference builds it
  (a set comprehension over ``dneighbors``/``neighbors`` of the location keeping in-grid locations),
  and afterwards only read: ``set |= other`` reads nothing but ``other``'s table, so merging a cached
  set is indistinguishable from merging a freshly built one.  Such a set depends only on the location
  and on whether it lies on the grid's last row / last column, so one set serves every grid shape:
  interior locations are looked up in a shape-independent table, and each shape keeps only its last
  row and column;
* the first wave (whose only candidate is the seed) is unrolled, starting from a cached copy of the
  wave set it produces;
* the seed order (iteration order of ``asindices(grid)``) is computed once per shape, and on grids of
  byte-sized colours the background seeds are skipped in C;
* the loops are specialised per flag combination, with method lookups hoisted out.

This module must not import :mod:`codeit.dsl.patches` at import time: the registry order follows the
order in which primitives are defined.
"""

from __future__ import annotations

from itertools import chain, compress
from operator import itemgetter

from codeit.dsl.cells import CACHED_CELLS, OTHER, SAME, byte_grid, location, row_major
from codeit.dsl.measures import dneighbors, mostcolor, neighbors
from codeit.dsl.registry import primitive
from codeit.dsl.types import Boolean, Grid, Objects

# Nothing below is ever mutated after it is built, and nothing is ever returned to a caller.
#
# (i, j, on last row, on last column, diagonal) -> (in-grid neighbour set, first-wave set).  The
# first-wave set is what the reference's fresh wave set holds after merging the seed's neighbour
# set into it (``set() |= nbrs``); it need not have the same table layout as ``nbrs`` itself.
_POOL: dict[tuple, tuple[set, set]] = {}
_POOL_LIMIT = 20_000  # ARC-sized grids (<= 30×30) need at most 4 entries per location and flag
# diagonal -> ({interior location: neighbour set}, {interior location: first-wave set}); interior =
# neither on the last row nor on the last column, which makes the sets shape-independent.
_INTERIOR: dict[bool, tuple[dict, dict]] = {False: ({}, {}), True: ({}, {})}
# (h, w) -> (seed locations in asindices order, itemgetter taking row-major cells into seed order).
_SEEDS: dict[tuple[int, int], tuple] = {}
# (h, w, diagonal) -> (seeds, getter, interior sets, interior first-wave sets, edge sets, edge first).
_SHAPES: dict[tuple[int, int, bool], tuple] = {}
_SHAPES_LIMIT = 2048
_INTS = tuple(range(CACHED_CELLS))  # shared int objects for the getters' index tuples


def _seed_order(h: int, w: int, cache: bool) -> tuple:
    """Seeds of an h×w grid (iteration order of ``asindices``) and a getter putting cells in that order."""
    data = _SEEDS.get((h, w))
    if data is None:
        locs = row_major(h, w)
        seeds = tuple(frozenset(locs))  # iteration order of asindices(grid)
        position = {loc: k for k, loc in enumerate(locs)}
        order = [position[loc] for loc in seeds]
        if cache:
            order = [_INTS[k] for k in order]
        getter = itemgetter(*order) if len(order) > 1 else (lambda flat: (flat[0],))
        data = (seeds, getter)
        if cache:
            if len(_SEEDS) >= _SHAPES_LIMIT:
                _SEEDS.clear()
            _SEEDS[(h, w)] = data
    return data


def _shape_data(h: int, w: int, diagonal: bool) -> tuple:
    """Seeds, getter and neighbour / first-wave set tables for an h×w grid (cached per shape)."""
    diagonal = bool(diagonal)
    key = (h, w, diagonal)
    data = _SHAPES.get(key)
    if data is not None:
        return data
    cache = h * w <= CACHED_CELLS
    if cache:
        if len(_POOL) > _POOL_LIMIT:
            # Start afresh.  Replace (never clear) the tables: shape data handed out earlier keeps
            # referring to complete ones.
            _POOL.clear()
            _SHAPES.clear()
            _INTERIOR[False] = ({}, {})
            _INTERIOR[True] = ({}, {})
        elif len(_SHAPES) >= _SHAPES_LIMIT:
            _SHAPES.clear()
        pool = _POOL
        inner, inner_first = _INTERIOR[diagonal]
    else:  # a huge grid: private tables
        pool = {}
        inner, inner_first = {}, {}
    nfun = neighbors if diagonal else dneighbors
    edge = {}
    edge_first = {}
    last_i = h - 1
    last_j = w - 1
    for loc in row_major(h, w):
        i, j = loc
        if i < last_i and j < last_j:
            if loc in inner:
                continue
            target, target_first = inner, inner_first
        else:
            target, target_first = edge, edge_first
        pkey = (i, j, i == last_i, j == last_j, diagonal)
        entry = pool.get(pkey)
        if entry is None:
            # The reference's construction (for interior locations the bounds only cut at 0).
            nbrs = {location((a, b)) for a, b in nfun(loc) if 0 <= a < h and 0 <= b < w}
            wave = set()
            wave |= nbrs
            entry = pool[pkey] = (nbrs, wave)
        target[loc] = entry[0]
        target_first[loc] = entry[1]
    seeds, getter = _seed_order(h, w, cache)
    data = (seeds, getter, inner, inner_first, edge, edge_first)
    if cache:
        _SHAPES[key] = data
    return data


@primitive
def objects(grid: Grid, univalued: Boolean, diagonal: Boolean, without_bg: Boolean) -> Objects:
    """Connected components (4- or 8-connected) as a frozenset of objects.

    ``univalued``: a cell joins when its colour equals the seed's (else: when it is not background).
    ``without_bg``: background = ``mostcolor(grid)`` (tie rule) and is excluded; otherwise there is no
    background (bg is ``None``, so ``None``-valued cells behave like background, as in the reference).
    Built wave by wave exactly as dsl-spec §3 entry 90 prescribes, which fixes every iteration order.
    ``()`` → error; ``((),)`` → empty set unless ``without_bg`` (then error).
    """
    packed = byte_grid(grid)
    if packed is None:
        return _objects_general(grid, univalued, diagonal, without_bg)
    flat, packed = packed
    last_i = len(grid) - 1
    last_j = len(grid[0]) - 1
    seeds, getter, inner, inner_first, edge, edge_first = _shape_data(last_i + 1, last_j + 1, diagonal)
    values = getter(flat)
    if without_bg:
        bg = max(set(flat), key=packed.count)  # = mostcolor(grid)
        # The reference skips background seeds; drop them up front.
        seeds = compress(zip(seeds, values), bytes(values).translate(OTHER[bg]))
    else:
        # All cells are ints here, none equals None: every seed is eligible, every cell qualifies.
        bg = None
        seeds = zip(seeds, values)
    objs = set()
    occupied = set()
    mark = occupied.add
    for loc, val in seeds:
        if loc in occupied:
            continue
        # First wave, unrolled: the only candidate is the seed, which qualifies; adding its cell
        # again is a no-op, and its wave set is the cached first-wave set.
        obj = {(val, loc)}
        add = obj.add
        mark(loc)
        r, c = loc
        cands = (inner_first[loc] if r < last_i and c < last_j else edge_first[loc]) - occupied
        if univalued:
            while cands:
                nxt = set()
                for cand in cands:
                    r, c = cand
                    v = grid[r][c]
                    if val == v:
                        add((v, cand))
                        mark(cand)
                        if r < last_i and c < last_j:
                            nxt |= inner[cand]
                        else:
                            nxt |= edge[cand]
                cands = nxt - occupied
        elif without_bg:
            while cands:
                nxt = set()
                for cand in cands:
                    r, c = cand
                    v = grid[r][c]
                    if v != bg:
                        add((v, cand))
                        mark(cand)
                        if r < last_i and c < last_j:
                            nxt |= inner[cand]
                        else:
                            nxt |= edge[cand]
                cands = nxt - occupied
        else:
            while cands:
                nxt = set()
                for cand in cands:
                    r, c = cand
                    add((grid[r][c], cand))
                    mark(cand)
                    if r < last_i and c < last_j:
                        nxt |= inner[cand]
                    else:
                        nxt |= edge[cand]
                cands = nxt - occupied
        objs.add(frozenset(obj))
    return frozenset(objs)


def _objects_general(grid: Grid, univalued: Boolean, diagonal: Boolean, without_bg: Boolean) -> Objects:
    """``objects`` for any input (ragged grids, colours outside 0-255, None cells, non-grids)."""
    bg = mostcolor(grid) if without_bg else None
    h = len(grid)
    w = len(grid[0])
    if h == 0 or w == 0:
        return frozenset()
    seeds, _, inner, _, edge, _ = _shape_data(h, w, diagonal)
    last_i = h - 1
    last_j = w - 1
    objs = set()
    occupied = set()
    mark = occupied.add
    for loc in seeds:
        if loc in occupied:
            continue
        r, c = loc
        val = grid[r][c]
        if val == bg:
            continue
        obj = {(val, loc)}
        add = obj.add
        cands = {loc}
        while cands:
            nxt = set()
            for cand in cands:
                r, c = cand
                v = grid[r][c]
                if (val == v) if univalued else (v != bg):
                    add((v, cand))
                    mark(cand)
                    if r < last_i and c < last_j:
                        nxt |= inner[cand]
                    else:
                        nxt |= edge[cand]
            cands = nxt - occupied
        objs.add(frozenset(obj))
    return frozenset(objs)


def _palette_of(element: Grid) -> frozenset:
    """``palette(element)``: freeze of a set filled with the colours (grid row-major, or cell order)."""
    if isinstance(element, tuple):
        return frozenset(set(chain.from_iterable(element)))
    return frozenset({v for v, _ in element})


def _colour_objects(grid: Grid, colours) -> Objects:
    """One object per colour in ``colours``' iteration order, each holding the colour's cells row-major."""
    packed = byte_grid(grid)
    if packed is not None:
        flat, packed = packed
        cells = list(zip(flat, row_major(len(grid), len(grid[0]))))
        return frozenset([frozenset(compress(cells, packed.translate(SAME[c]))) for c in colours])
    return frozenset([
        frozenset([(v, (i, j)) for i, r in enumerate(grid) for j, v in enumerate(r) if v == value])
        for value in colours
    ])


@primitive
def partition(grid: Grid) -> Objects:
    """One object per colour present (background included) with all cells of that colour.

    Outer set built directly in ``palette`` order; each object built row-major. ``()`` → empty set.
    """
    return _colour_objects(grid, _palette_of(grid))


@primitive
def fgpartition(grid: Grid) -> Objects:
    """``partition`` without the ``mostcolor`` object; colours = native ``palette - {mostcolor}``.

    (The native difference fixes the colour order, hence the outer set's order.) Empty grid → error.
    """
    return _colour_objects(grid, _palette_of(grid) - {mostcolor(grid)})

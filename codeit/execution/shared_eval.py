"""Evaluate many related programs on the same inputs, computing every shared sub-expression once.

Mutants of one program share every line the mutation does not touch, and programs written for ARC
share common steps (``objects(I, T, F, T)``, ``fgpartition(I)`` …).  A :class:`NodeTable` hash-conses
program lines into *nodes*: a line's node is keyed by its callee and the nodes (or names) of its
arguments, so ``x3 = vmirror(x2)`` in two programs is one node when their ``x2`` are one node, whatever
the variables are called.  An *environment* holds, for one input grid, a slot per node: the node's
value once computed (``MISSING`` before, ``ERROR`` if it failed), so each node is computed at most once
per input however many programs use it.

Semantics follow :class:`codeit.execution.runner.CompiledProgram` for programs without dead lines
(:meth:`codeit.program.Program.normalise`): a line that raises, runs longer than
``limits.line_timeout``, or returns a sized value with ``len() >= limits.max_elements`` fails, and so
does every program that uses it.  Each line is watched (:data:`codeit.execution.interrupt.WATCH`), so
under :func:`codeit.execution.interrupt.guard` a line running longer than ``limits.line_timeout`` is
interrupted (main thread only; worker processes guard themselves, in-process callers may).  Memory is
capped only by the guard's resident-memory check: run untrusted programs in worker processes with
``RLIMIT_AS`` (as the mutation baseline does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from codeit.dsl import CONSTANTS, PRIMITIVES
from codeit.execution.interrupt import WATCH, ProgramInterrupt
from codeit.execution.limits import DEFAULT_LIMITS, ExecutionLimits
from codeit.program import INPUT, Line, Program, ProgramError, parse

__all__ = ["ERROR", "MISSING", "NodeTable", "ProgramSet", "ShapePlan", "leaf_shape", "memoised", "shape_plan"]


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Slot markers: not computed yet / failed.
MISSING = _Sentinel("MISSING")
ERROR = _Sentinel("ERROR")

_SIZED = frozenset({tuple, frozenset, list, set, dict, str})
_MOSTCOLOR = PRIMITIVES["mostcolor"].function


_FUNCTION = type(lambda: None)

#: Entries the function memos of one environment may still add (reset per input by
#: :meth:`ProgramSet.matching`): remembering every call of every closure can take gigabytes on a
#: large grid (functions mapped over all cells), so memoisation stops when the budget is spent.
MEMO_ENTRIES = 100_000
MEMO_BUDGET = [MEMO_ENTRIES]


def memoised(function: Any) -> Any:
    """``function`` (a closure a line built: ``fork``, ``compose``, ``rbind`` …) with its results
    remembered by the *identity* of its arguments, with the same arity (``rbind``/``lbind`` read
    ``__code__.co_argcount``).

    Mutants share most function-building lines with their parent, so the parent's closures are the
    same objects inside the mutants' ``apply``/``mapply``/``fork`` calls, applied to the same element
    objects (the shared ``objects(I, …)`` value): the mutants get those results for free.  Entries
    keep their arguments alive, so an identity is never reused while remembered.  Results and
    ordinary exceptions are remembered (type and arguments); an interrupt (a BaseException) is not.
    """
    arity = function.__code__.co_argcount
    memo: dict[Any, tuple[Any, Any, bool]] = {}
    get = memo.get
    budget = MEMO_BUDGET

    if arity == 1:
        def memo1(x):
            entry = get(id(x))
            if entry is not None and entry[0] is x:
                if entry[2]:
                    raise _again(entry[1])
                return entry[1]
            try:
                result = function(x)
            except Exception as exc:
                if budget[0] > 0:
                    budget[0] -= 1
                    memo[id(x)] = (x, (type(exc), exc.args), True)
                raise
            if budget[0] > 0:
                budget[0] -= 1
                memo[id(x)] = (x, result, False)
            return result
        return memo1
    if arity == 2:
        def memo2(x, y):
            key = (id(x), id(y))
            entry = get(key)
            if entry is not None and entry[0][0] is x and entry[0][1] is y:
                if entry[2]:
                    raise _again(entry[1])
                return entry[1]
            try:
                result = function(x, y)
            except Exception as exc:
                if budget[0] > 0:
                    budget[0] -= 1
                    memo[key] = ((x, y), (type(exc), exc.args), True)
                raise
            if budget[0] > 0:
                budget[0] -= 1
                memo[key] = ((x, y), result, False)
            return result
        return memo2
    return function


def _again(error: tuple[type, tuple]) -> Exception:
    """A fresh exception like a remembered one.  Only its type and arguments are kept: an exception
    object holds its traceback, whose frames would tie the memo (and the whole environment) into a
    reference cycle."""
    kind, args = error
    try:
        return kind(*args)
    except Exception:  # noqa: BLE001 - an exception type with an unusual constructor
        return RuntimeError(f"{kind.__name__}{args!r}")


class ValueSharing:
    """Per-input sharing by value: a call of the same function on the same argument objects as an
    earlier call (of any line of any program) reuses that call's result.

    Arguments are compared by identity, but results are first replaced by a canonical object when
    an equal one was computed before, for values whose equality implies identical behaviour
    downstream (ints, and tuples of ints or of tuples of ints: grids, pairs, cells) -- not
    frozensets, whose iteration order may differ between equal sets.  So a mutant whose changed
    line yields a value equal to one already computed (e.g. ``replace(I, 3, 0)`` where the input has
    no 3) shares every later line with the programs that computed it.
    """

    __slots__ = ("calls", "canon", "keep", "pending")

    def __init__(self) -> None:
        self.calls: dict[tuple, Any] = {}
        self.canon: dict[Any, Any] = {}
        self.keep: list[tuple] = []
        self.pending: tuple | None = None

    def lookup(self, function: Any, args: Any, single: bool) -> Any:
        key = (id(function), id(args)) if single else (id(function), *map(id, args))
        value = self.calls.get(key, MISSING)
        self.pending = None if value is not MISSING else (key, function, args)
        return value

    def store(self, value: Any) -> Any:
        kind = type(value)
        if kind is tuple and value:
            first = value[0]
            if type(first) is int or (type(first) is tuple and (not first or type(first[0]) is int)):
                try:
                    value = self.canon.setdefault(value, value)
                except TypeError:
                    pass
        elif kind is int:
            value = self.canon.setdefault(value, value)
        pending = self.pending
        if pending is not None:
            # keep the function and arguments alive with the entry, so their ids stay unique
            self.calls[pending[0]] = value
            self.keep.append(pending)
            self.pending = None
        return value


class NodeTable:
    """Hash-consed program lines and their evaluation on environments (module docstring).

    Slot 0 is ``I``; constants and primitives used as values get a slot each when first seen; every
    distinct line gets one.  With ``memoise=True`` function values built by lines remember their
    results (:func:`memoised`): faster for program families, but a line then takes only the time of
    the work not already done, so a line near the time limit may pass where a lone run would not.  :meth:`add` returns a program's slots (one per line, in line order, the
    last one ``O``); :meth:`new_env` makes the environment of one input grid; :meth:`run` evaluates a
    program's slots on an environment, reusing whatever is already computed there.
    """

    def __init__(self, limits: ExecutionLimits | None = None, memoise: bool = False) -> None:
        self.limits = limits or DEFAULT_LIMITS
        self.memoise = memoise
        self._template: list[Any] = [None]
        self._slot_of: dict[Any, int] = {INPUT: 0}
        # per slot: None for I/names, else (callee slot, argument getter, one argument?)
        self._nodes: list[tuple[int, Any, bool] | None] = [None]

    def __len__(self) -> int:
        return len(self._template)

    def name_slot(self, name: str) -> int:
        """The slot of ``I``, a constant or a primitive used by name."""
        slot = self._slot_of.get(name)
        if slot is None:
            if name in PRIMITIVES:
                value = PRIMITIVES[name].function
            elif name in CONSTANTS:
                value = CONSTANTS[name]
            else:
                raise KeyError(f"unknown name {name!r}")
            slot = self._slot_of[name] = len(self._template)
            self._template.append(value)
            self._nodes.append(None)
        return slot

    def add(self, program: Program | Sequence[Line]) -> tuple[int, ...]:
        """Register ``program``'s lines (or a sequence of checked lines, e.g. a program being built);
        returns their slots in line order (shared lines share slots)."""
        local: dict[str, int] = {INPUT: 0}
        slots = []
        slot_of = self._slot_of
        for line in program.lines if isinstance(program, Program) else program:
            callee = local.get(line.callee)
            if callee is None:
                callee = self.name_slot(line.callee)
            args = tuple(local[a] if a in local else self.name_slot(a) for a in line.args)
            key = (callee, args)
            slot = slot_of.get(key)
            if slot is None:
                slot = slot_of[key] = len(self._template)
                self._template.append(MISSING)
                self._nodes.append((callee, itemgetter(*args), len(args) == 1))
            local[line.target] = slot
            slots.append(slot)
        return tuple(slots)

    def new_env(self, grid: Any) -> list[Any]:
        """A fresh environment for one input grid (nothing computed yet)."""
        env = self._template.copy()
        env[0] = grid
        return env

    def extend(self, env: list[Any]) -> list[Any]:
        """Grow ``env`` (made before more programs were added) to the current table size."""
        if len(env) < len(self._template):
            env.extend(self._template[len(env):])
        return env

    @staticmethod
    def is_value(value: Any) -> bool:
        return value is not MISSING and value is not ERROR

    def run(self, slots: Sequence[int], env: list[Any], stop: bool = True,
            shared: ValueSharing | None = None) -> Any:
        """Evaluate the lines ``slots`` (one program, in line order) on ``env``; return the value of
        the last (``O``) or :data:`ERROR`.

        Lines already computed in ``env`` are reused.  ``stop=False`` goes on after a failed line and
        computes every line whose inputs are available (used to trace programs with dead lines).
        ``shared`` (one per environment) also reuses the value of any earlier call of the same
        function on equal arguments (:class:`ValueSharing`).
        """
        if len(env) < len(self._template):  # programs were added after the environment was made
            env.extend(self._template[len(env):])
        nodes = self._nodes
        max_elements = self.limits.max_elements
        line_limit = self.limits.line_timeout
        clock = time.perf_counter
        watch = WATCH
        memoise = self.memoise
        value = ERROR
        for slot in slots:
            value = env[slot]
            if value is MISSING:
                callee, get, single = nodes[slot]
                function = env[callee]
                args = get(env)
                if not stop and (function is ERROR or function is MISSING or (
                        (args is ERROR or args is MISSING) if single else (ERROR in args or MISSING in args))):
                    value = ERROR
                elif shared is not None and (value := shared.lookup(function, args, single)) is not MISSING:
                    pass
                else:
                    start = clock()
                    try:
                        watch[0] = start  # WATCH[LINE]: this line is watched from now
                        value = function(args) if single else function(*args)
                        watch[0] = 0.0
                    except (Exception, ProgramInterrupt):  # noqa: BLE001 - any failure fails the line
                        watch[0] = 0.0
                        value = ERROR
                    if clock() - start > line_limit or (
                            max_elements and type(value) in _SIZED and len(value) >= max_elements):
                        value = ERROR
                    elif memoise and type(value) is _FUNCTION:
                        value = memoised(value)
                    if shared is not None:
                        value = shared.store(value)
                env[slot] = value
            if value is ERROR and stop:
                return ERROR
        return value


# --------------------------------------------------------------------------------------------------
# Output-shape pruning.
#
# Only an output equal to the target grid counts when scoring, and the shape of many programs' output
# is fixed by a cheap early value: ``O = fill(I, c, x7)`` has the input's shape whatever ``x7`` is.
# A shape plan follows O back through primitives whose result shape is a known function of their
# grid arguments' shapes (and of integer arguments), to *leaves* whose values must be computed; the
# program's remaining lines are computed only if the predicted shape equals the target's.  Each rule
# is exact for rectangular grid leaves (every grid a DSL primitive builds, and every input): when a
# leaf is not a grid the output cannot be a grid, so the program is pruned too.

_SAME = ("fill", "paint", "underfill", "underpaint", "cover", "move", "replace", "switch", "cellwise",
         "hmirror", "vmirror", "rot180", "identity")
_TRANSPOSE = ("dmirror", "cmirror", "rot90", "rot270")
#: primitive -> (rule, positions of grid arguments, positions of integer arguments)
SHAPE_RULES: dict[str, tuple[str, tuple[int, ...], tuple[int, ...]]] = {
    **{name: ("same", (0,), ()) for name in _SAME},
    **{name: ("transpose", (0,), ()) for name in _TRANSPOSE},
    "vconcat": ("vconcat", (0, 1), ()),
    "hconcat": ("hconcat", (0, 1), ()),
    "upscale": ("upscale", (0,), (1,)),
    "hupscale": ("hupscale", (0,), (1,)),
    "vupscale": ("vupscale", (0,), (1,)),
    "tophalf": ("vhalf", (0,), ()),
    "bottomhalf": ("vhalf", (0,), ()),
    "lefthalf": ("hhalf", (0,), ()),
    "righthalf": ("hhalf", (0,), ()),
    "trim": ("trim", (0,), ()),
    "canvas": ("dims", (), (1,)),
}


def leaf_shape(value: Any) -> tuple[int, int] | None:
    """(rows, columns) of a grid-like value; ``(0, 0)`` for ``()``; ``None`` if it is no grid."""
    if type(value) is not tuple:
        return None
    if not value:
        return (0, 0)
    first = value[0]
    if type(first) is not tuple:
        return None
    return (len(value), len(first))


def _int(value: Any) -> int | None:
    return value if type(value) in (int, bool) else None


def _apply_rule(rule: str, shapes: list, ints: list) -> tuple[int, int] | None:
    if any(s is None for s in shapes) or any(k is None for k in ints):
        return None
    if rule == "same":
        return shapes[0]
    if rule == "transpose":
        h, w = shapes[0]
        return (w, h)
    if rule == "vconcat":
        (ha, wa), (hb, wb) = shapes
        return (hb, wb) if ha == 0 else (ha, wa) if hb == 0 else (ha + hb, wa)
    if rule == "hconcat":
        (ha, wa), (hb, wb) = shapes
        return (min(ha, hb), wa + wb)
    if rule == "dims":
        return None  # handled by the caller (the value is the shape)
    (h, w), k = shapes[0], (max(0, ints[0]) if ints else 0)
    if rule == "upscale":
        return (h * k, w * k)
    if rule == "hupscale":
        return (h, w * k)
    if rule == "vupscale":
        return (h * k, w)
    if rule == "vhalf":
        return (h // 2, w)
    if rule == "hhalf":
        return (h, w // 2)
    if rule == "trim":
        return (max(h - 2, 0), w - 2)
    raise ValueError(f"unknown shape rule {rule!r}")


class ShapePlan(NamedTuple):
    """How to evaluate one program with output pruning: compute ``first`` (slots, in order), then the
    shape ``expr`` must equal the target's and the ``cells`` check must pass, then compute ``rest``.

    ``cells`` is ``None`` or ``(kind, grid slot, colour slot)`` for a last line ``fill(G, c, P)``,
    ``underfill(G, c, P)`` (kind ``"fill"``) or ``cover(G, P)`` (kind ``"cover"``, colour slot -1):
    such a line only changes cells to ``c`` (``cover``: to ``G``'s most common colour), so every cell
    where ``G`` differs from the target must have that colour in the target -- checked before the
    patch ``P`` (usually the expensive part) is computed.
    """

    first: tuple[int, ...]
    expr: Any  # ("leaf", slot) | (rule, (sub-expressions...), (integer slots...)) | None: no pruning
    rest: tuple[int, ...]
    cells: tuple[str, int, int] | None = None


def shape_plan(program: Program, table: NodeTable) -> ShapePlan:
    """Add ``program`` to ``table`` and return its :class:`ShapePlan`."""
    slots = table.add(program)
    lines = program.lines
    where = {line.target: i for i, line in enumerate(lines)}
    leaves: set[str] = set()

    def build(var: str) -> Any:
        i = where.get(var)
        if i is None:  # I (constants and primitives are no grids: the program is pruned anyway)
            leaves.add(var)
            return ("leaf", var)
        line = lines[i]
        rule = SHAPE_RULES.get(line.callee)
        if rule is None:
            leaves.add(var)
            return ("leaf", var)
        name, grids, ints = rule
        if name == "dims":
            leaves.add(line.args[1])
            return ("dims", line.args[1])
        for k in ints:
            leaves.add(line.args[k])
        return (name, tuple(build(line.args[k]) for k in grids), tuple(line.args[k] for k in ints))

    expr = build(lines[-1].target)
    if expr == ("leaf", lines[-1].target):
        return ShapePlan(tuple(slots), None, ())
    last = lines[-1]
    cells = None
    if last.callee in ("fill", "underfill", "cover"):
        cells = (last.callee, last.args[0], last.args[1] if last.callee != "cover" else None)
        leaves.update(a for a in cells[1:] if a is not None)
    # the leaves' ancestors first (in line order), then the rest
    needed = {v for v in leaves if v in where}
    for line in reversed(lines):
        if line.target in needed:
            needed.add(line.callee)
            needed.update(line.args)
    first = tuple(s for line, s in zip(lines, slots) if line.target in needed)
    rest = tuple(s for line, s in zip(lines, slots) if line.target not in needed)
    slot_of = {line.target: s for line, s in zip(lines, slots)}
    slot_of[INPUT] = 0

    def slot(name: str) -> int:
        return slot_of[name] if name in slot_of else table.name_slot(name)

    def resolve(e: Any) -> Any:
        if e[0] == "leaf" or e[0] == "dims":
            return (e[0], slot(e[1]))
        return (e[0], tuple(resolve(x) for x in e[1]), tuple(slot(v) for v in e[2]))

    if cells is not None:
        cells = ("cover" if cells[0] == "cover" else "fill", slot(cells[1]),
                 -1 if cells[2] is None else slot(cells[2]))
    return ShapePlan(first, resolve(expr), rest, cells)


def predicted_shape(expr: Any, env: list[Any]) -> tuple[int, int] | None:
    """The output shape a plan's expression predicts on ``env`` (whose ``first`` slots are computed)."""
    kind = expr[0]
    if kind == "leaf":
        return leaf_shape(env[expr[1]])
    if kind == "dims":
        dims = env[expr[1]]
        if type(dims) is tuple and len(dims) == 2 and _int(dims[0]) is not None and _int(dims[1]) is not None:
            return (dims[0], dims[1])
        return None
    shapes = [predicted_shape(e, env) for e in expr[1]]
    ints = [_int(env[s]) for s in expr[2]]
    return _apply_rule(kind, shapes, ints)


def _cells_ok(cells: tuple[str, int, int], env: list[Any], target: Any, memo: dict) -> bool:
    """The ``cells`` check of a :class:`ShapePlan` (``G`` has the target's shape already)."""
    kind, grid_slot, colour_slot = cells
    grid = env[grid_slot]
    colour = env[colour_slot] if colour_slot >= 0 else None
    try:
        key = (grid_slot, colour_slot, colour)
        hash(key)
    except TypeError:
        return True
    ok = memo.get(key)
    if ok is None:
        if kind == "cover":
            try:
                colour = _MOSTCOLOR(grid)
            except Exception:  # noqa: BLE001 - the program fails: nothing to prune here
                colour = None
        ok = colour is None and kind == "cover" or all(
            t == colour for row_g, row_t in zip(grid, target) for g, t in zip(row_g, row_t) if g != t)
        memo[key] = ok
    return ok


class ProgramSet:
    """Many programs scored together against tasks: which ones reproduce a target grid exactly.

    Built from program texts (normalised here, so dead lines never run); programs that do not parse
    are kept as never-matching.  :meth:`matching` evaluates the programs on one input with shared
    lines computed once and output pruning (:func:`shape_plan`); ``memoise`` also shares the results
    of function values between programs (see :class:`NodeTable`: a program found this way should be
    confirmed by a lone run, as the mutation baseline does).
    """

    def __init__(self, programs: Sequence[str], limits: ExecutionLimits | None = None, *,
                 memoise: bool = True, share_values: bool = True) -> None:
        self.table = NodeTable(limits, memoise=memoise)
        self.share_values = share_values
        self.plans: list[ShapePlan | None] = []
        self.texts = list(programs)
        for text in self.texts:
            try:
                program = parse(text).normalise()
            except ProgramError:
                self.plans.append(None)
                continue
            self.plans.append(shape_plan(program, self.table))

    def __len__(self) -> int:
        return len(self.plans)

    def matching(self, indices: Iterable[int], grid: Any, target: Any,
                 tick: Callable[[], None] | None = None) -> list[int]:
        """The programs among ``indices`` whose output on ``grid`` equals ``target``, in order.

        ``tick`` is called every 64 programs (e.g. a worker's heartbeat)."""
        table = self.table
        env = table.new_env(grid)
        shared = ValueSharing() if self.share_values else None
        MEMO_BUDGET[0] = MEMO_ENTRIES

        def run(slots: Sequence[int], env: list[Any]) -> Any:
            return table.run(slots, env, True, shared)

        shape = leaf_shape(target)
        plans = self.plans
        found = []
        checked: dict[tuple, bool] = {}
        for count, i in enumerate(indices):
            if tick is not None and not count & 63:
                tick()
            plan = plans[i]
            if plan is None:
                continue
            if plan.expr is not None:
                if (plan.first and run(plan.first, env) is ERROR) or predicted_shape(plan.expr, env) != shape:
                    continue
                if plan.cells is not None and not _cells_ok(plan.cells, env, target, checked):
                    continue
                if plan.rest and run(plan.rest, env) is ERROR:
                    continue
            elif run(plan.first, env) is ERROR:
                continue
            out_slot = plan.rest[-1] if plan.rest else plan.first[-1]
            if env[out_slot] == target:
                found.append(i)
        return found

    def solving(self, examples: Sequence[Any], indices: Iterable[int] | None = None,
                tick: Callable[[], None] | None = None) -> list[int]:
        """The programs (among ``indices``, default all) that reproduce every example's output,
        trying the examples in the given order and dropping a program at its first miss."""
        return self.at_least(examples, len(examples), indices, tick)

    def at_least(self, examples: Sequence[Any], need: int, indices: Iterable[int] | None = None,
                 tick: Callable[[], None] | None = None) -> list[int]:
        """The programs (among ``indices``, default all) that reproduce at least ``need`` of the
        examples' outputs, in index order.

        The examples are tried in the given order and a program is dropped as soon as the examples
        left cannot bring it to ``need`` (``need == len(examples)``: at its first miss; ``need == 1``:
        every program runs on every example until it has a match)."""
        alive = list(range(len(self.plans))) if indices is None else sorted(indices)
        hits = dict.fromkeys(alive, 0)
        left = len(examples)
        for example in examples:
            if not alive:
                break
            left -= 1
            running = [i for i in alive if hits[i] < need]  # those already there need no more runs
            for i in self.matching(running, example.input, example.output, tick):
                hits[i] += 1
            alive = [i for i in alive if hits[i] + left >= need]
        return [i for i in alive if hits[i] >= need]

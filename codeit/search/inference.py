"""Type inference over the DSL registry: the type of every variable of a program, the primitives that
can produce a type, and the terms (constants, variables, primitives) that fit a parameter.

The DSL checks nothing at run time (dsl-spec §0.3), and many primitives are declared with broad types
(``Any``, ``Container``, ``Piece`` …), so the *declared* return type of a line often says little
(``first`` returns ``Any``; ``apply`` a ``Container``).  As CodeIt's mutation code does (dsl-spec §1,
the type-checker note), types are therefore read off the values a program actually computes:
:func:`value_type` classifies one value into a *concrete* type, :func:`unify` merges the concrete types
a variable takes on several inputs, and :func:`infer_types` falls back to the registry's declared
return types for variables that produced no value.  The rules (also in docs/mutation.md):

**Concrete types** (:func:`value_type`), checked in this order:

* ``bool`` → ``Boolean``; ``int`` → ``Integer``;
* a tuple: empty → ``EmptyTuple``; two ints → ``IntegerTuple``; an int and an int pair → ``Cell``;
  equal-length tuples of ints → ``Grid``; tuples that are all grids → ``GridTuple``; other tuples of
  tuples → ``TupleTuple``; anything else → ``Tuple``;
* a frozenset: empty → ``EmptySet``; ints → ``IntegerSet``; ``(colour, (i, j))`` cells → ``Object``;
  ``(i, j)`` pairs → ``Indices``; objects → ``Objects``; indices → ``IndicesSet``; else ``FrozenSet``;
* a function → ``Callable1`` … ``Callable4`` by its arity (``__code__.co_argcount``, what
  ``rbind``/``lbind`` read), ``Callable`` when unknown;
* ``None`` → ``None`` (no information: ``index`` off the grid, ``canvas`` too large); else ``Any``.

**Unification** over the inputs (:func:`unify`): ``None`` values are ignored; equal types stay;
``EmptyTuple`` joins any tuple type and ``EmptySet`` any set type; ``Integer`` with ``Boolean`` gives
``Integer``; ``Object`` with ``Indices`` gives ``Patch``; callables of different arities give
``Callable``; anything else gives ``Any``.

**Compatibility**: every type name (declared or concrete) stands for a set of concrete types
(:func:`admits`; e.g. ``Patch`` = {Object, Indices, EmptySet}, ``Piece`` = {Grid, Object, Indices, …},
``Container`` = every tuple and set type).  A term of type ``t`` *fits* a parameter declared ``p`` when
``admits(t) ⊆ admits(p)`` (:func:`fits`); a primitive *may produce* ``t`` when the sets of its declared
return type and of ``t`` intersect (:func:`may_produce`).  ``Integer`` does not admit ``Boolean`` and
vice versa (``T``/``F`` are not proposed where a number is expected).

Programs whose types cannot be inferred (text that does not parse, a parent that fails on an input
the caller requires) are rejected with :class:`InferenceError`, whose message says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from codeit.dsl import CONSTANT_TYPE_OF, CONSTANT_TYPES, PRIMITIVES
from codeit.program import INPUT, Program, ProgramError, parse

__all__ = ["CONCRETE_TYPES", "InferenceError", "ProgramTypes", "admits", "arity_of", "callable_type",
           "constants_fitting", "fits", "infer_types", "may_produce", "name_type", "primitive_arity",
           "producers", "static_types", "unify", "value_type"]

BOOLEAN, INTEGER, INTEGER_TUPLE = "Boolean", "Integer", "IntegerTuple"
GRID, CELL, TUPLE, TUPLE_TUPLE, GRID_TUPLE, EMPTY_TUPLE = "Grid", "Cell", "Tuple", "TupleTuple", "GridTuple", \
    "EmptyTuple"
INTEGER_SET, OBJECT, INDICES, OBJECTS, INDICES_SET, FROZEN_SET, EMPTY_SET = "IntegerSet", "Object", "Indices", \
    "Objects", "IndicesSet", "FrozenSet", "EmptySet"
CALLABLE, NONE, ANY, PATCH = "Callable", "None", "Any", "Patch"
MAX_ARITY = 4
CALLABLES = tuple(f"Callable{k}" for k in range(1, MAX_ARITY + 1))

_TUPLES = frozenset({INTEGER_TUPLE, GRID, CELL, TUPLE, TUPLE_TUPLE, GRID_TUPLE, EMPTY_TUPLE})
_SETS = frozenset({INTEGER_SET, OBJECT, INDICES, OBJECTS, INDICES_SET, FROZEN_SET, EMPTY_SET})

#: Every concrete type :func:`value_type` can return (besides ``None`` and ``Any``).
CONCRETE_TYPES: tuple[str, ...] = (BOOLEAN, INTEGER, *sorted(_TUPLES), *sorted(_SETS), *CALLABLES)

_ADMITS: dict[str, frozenset[str]] = {
    BOOLEAN: frozenset({BOOLEAN}),
    INTEGER: frozenset({INTEGER}),
    INTEGER_TUPLE: frozenset({INTEGER_TUPLE}),
    "Numerical": frozenset({INTEGER, INTEGER_TUPLE}),
    INTEGER_SET: frozenset({INTEGER_SET, EMPTY_SET}),
    GRID: frozenset({GRID, EMPTY_TUPLE}),
    CELL: frozenset({CELL}),
    OBJECT: frozenset({OBJECT, EMPTY_SET}),
    INDICES: frozenset({INDICES, EMPTY_SET}),
    PATCH: frozenset({OBJECT, INDICES, EMPTY_SET}),
    OBJECTS: frozenset({OBJECTS, EMPTY_SET}),
    INDICES_SET: frozenset({INDICES_SET, EMPTY_SET}),
    "Element": frozenset({OBJECT, GRID, EMPTY_SET, EMPTY_TUPLE}),
    "Piece": frozenset({GRID, OBJECT, INDICES, EMPTY_SET, EMPTY_TUPLE}),
    "Container": _TUPLES | _SETS,
    "ContainerContainer": frozenset({GRID, TUPLE_TUPLE, GRID_TUPLE, OBJECTS, INDICES_SET, FROZEN_SET, TUPLE,
                                     EMPTY_TUPLE, EMPTY_SET}),
    FROZEN_SET: _SETS,
    TUPLE: _TUPLES,
    TUPLE_TUPLE: frozenset({GRID, TUPLE_TUPLE, GRID_TUPLE, EMPTY_TUPLE}),
    GRID_TUPLE: frozenset({GRID_TUPLE, EMPTY_TUPLE}),
    EMPTY_TUPLE: frozenset({EMPTY_TUPLE}),
    EMPTY_SET: frozenset({EMPTY_SET}),
    CALLABLE: frozenset(CALLABLES),
    **{name: frozenset({name}) for name in CALLABLES},
    NONE: frozenset(),
}
_ADMITS[ANY] = frozenset(CONCRETE_TYPES)


class InferenceError(ValueError):
    """The types of a program cannot be inferred; the message says why."""


def admits(type_name: str) -> frozenset[str]:
    """The concrete types a (declared, concrete or union) type name stands for."""
    try:
        return _ADMITS[type_name]
    except KeyError:
        raise KeyError(f"unknown type name {type_name!r}") from None


@cache
def fits(type_name: str, declared: str) -> bool:
    """True if a term of type ``type_name`` may be passed where ``declared`` is expected."""
    inner = admits(type_name)
    return bool(inner) and inner <= admits(declared)


@cache
def may_produce(declared: str, type_name: str) -> bool:
    """True if a value declared ``declared`` (e.g. a primitive's return type) can be of ``type_name``."""
    return bool(admits(declared) & admits(type_name))


# --------------------------------------------------------------------------------------------------
# classifying values

_INTS = (int, bool)


def _int_pair(value: Any) -> bool:
    return type(value) is tuple and len(value) == 2 and type(value[0]) in _INTS and type(value[1]) in _INTS


def _is_grid(value: tuple) -> bool:
    width = -1
    for row in value:
        if type(row) is not tuple:
            return False
        if width < 0:
            width = len(row)
        elif len(row) != width:
            return False
        for cell in row:
            if type(cell) not in _INTS:
                return False
    return width > 0


def _set_type(value: frozenset) -> str:
    element = next(iter(value))
    kind = type(element)
    if kind in _INTS:
        return INTEGER_SET if all(type(e) in _INTS for e in value) else FROZEN_SET
    if kind is tuple and len(element) == 2:
        if type(element[1]) is tuple:
            return OBJECT if all(type(e) is tuple and len(e) == 2 and _int_pair(e[1]) for e in value) \
                else FROZEN_SET
        return INDICES if all(_int_pair(e) for e in value) else FROZEN_SET
    if kind is frozenset:
        inner = {_set_type(e) if e else EMPTY_SET for e in value if type(e) is frozenset}
        if len(inner) != 1 or not all(type(e) is frozenset for e in value):
            inner.discard(EMPTY_SET)
            if inner == {OBJECT} or inner == {INDICES}:
                return OBJECTS if inner == {OBJECT} else INDICES_SET
            return FROZEN_SET
        (only,) = inner
        return {OBJECT: OBJECTS, INDICES: INDICES_SET}.get(only, FROZEN_SET)
    return FROZEN_SET


def arity_of(function: Any) -> int | None:
    """The number of positional parameters of a function value (what ``rbind``/``lbind`` read)."""
    code = getattr(function, "__code__", None)
    return code.co_argcount if code is not None else None


def callable_type(arity: int | None) -> str:
    """``Callable1`` … ``Callable4`` for a known arity, else ``Callable``."""
    return f"Callable{arity}" if arity is not None and 1 <= arity <= MAX_ARITY else CALLABLE


def value_type(value: Any) -> str:
    """The concrete type of one DSL value (rules in the module docstring)."""
    kind = type(value)
    if kind is bool:
        return BOOLEAN
    if kind is int:
        return INTEGER
    if kind is tuple:
        if not value:
            return EMPTY_TUPLE
        first = value[0]
        if len(value) == 2 and type(first) in _INTS:
            if type(value[1]) in _INTS:
                return INTEGER_TUPLE
            if _int_pair(value[1]):
                return CELL
        if type(first) is tuple:
            if _is_grid(value):
                return GRID
            if all(type(v) is tuple for v in value):
                return GRID_TUPLE if all(v and _is_grid(v) for v in value) else TUPLE_TUPLE
        return TUPLE
    if kind is frozenset:
        return _set_type(value) if value else EMPTY_SET
    if value is None:
        return NONE
    if callable(value):
        return callable_type(arity_of(value))
    return ANY


def unify(types: Iterable[str]) -> str:
    """One type for a variable that took the concrete ``types`` on different inputs."""
    seen = {t for t in types if t != NONE}
    if not seen:
        return ANY
    if len(seen) > 1 and EMPTY_TUPLE in seen and seen <= _TUPLES:
        seen.discard(EMPTY_TUPLE)
    if len(seen) > 1 and EMPTY_SET in seen and seen <= _SETS:
        seen.discard(EMPTY_SET)
    if len(seen) == 1:
        return seen.pop()
    if seen == {INTEGER, BOOLEAN}:
        return INTEGER
    if seen == {OBJECT, INDICES}:
        return PATCH
    if seen <= set(CALLABLES) | {CALLABLE}:
        return CALLABLE
    return ANY


# --------------------------------------------------------------------------------------------------
# the registry seen through types


def primitive_arity(name: str) -> int:
    return PRIMITIVES[name].arity


def name_type(name: str) -> str:
    """The type of a name used as an argument: a constant's type, or ``CallableK`` for a primitive."""
    if name in CONSTANT_TYPE_OF:
        return CONSTANT_TYPE_OF[name]
    if name in PRIMITIVES:
        return callable_type(PRIMITIVES[name].arity)
    raise KeyError(f"{name!r} is neither a constant nor a primitive")


@cache
def producers(type_name: str, arity: int | None = None) -> tuple[str, ...]:
    """Primitives (registry order) whose declared return type may produce ``type_name``, optionally
    only those with ``arity`` parameters."""
    return tuple(name for name, p in PRIMITIVES.items()
                 if may_produce(p.returns, type_name) and (arity is None or p.arity == arity))


@cache
def constants_fitting(declared: str) -> tuple[str, ...]:
    """Constants (registry order) whose type fits a parameter declared ``declared``."""
    return tuple(name for type_name, names in CONSTANT_TYPES.items() if fits(type_name, declared)
                 for name in names)


# --------------------------------------------------------------------------------------------------
# programs


@dataclass(frozen=True)
class ProgramTypes:
    """The inferred type of ``I`` and of every variable of a program.

    ``types`` maps each variable (and ``I``) to a type name; ``observed`` holds the variables whose
    type was read off computed values (the others have their declared return type).
    """

    program: Program
    types: Mapping[str, str]
    observed: frozenset[str]

    def __getitem__(self, name: str) -> str:
        return self.types[name]

    def of(self, name: str) -> str:
        """The type of any argument name: a variable, ``I``, a constant or a primitive."""
        if name in self.types:
            return self.types[name]
        return name_type(name)


def static_types(program: Program) -> dict[str, str]:
    """Declared types only: ``I`` is a ``Grid``; a line calling a primitive has its declared return
    type, refined for function-building primitives to the arity of the function they return; a line
    calling a variable is ``Any``."""
    types = {INPUT: GRID}

    def arity(name: str) -> int | None:
        t = types.get(name) if name not in PRIMITIVES else name_type(name)
        return int(t[-1]) if t and t.startswith(CALLABLE) and t != CALLABLE else None

    for line in program.lines:
        if line.callee in PRIMITIVES:
            result = PRIMITIVES[line.callee].returns
            if line.callee in ("compose", "chain", "fork", "matcher"):
                result = callable_type(1)
            elif line.callee in ("rbind", "lbind"):
                n = arity(line.args[0])
                result = callable_type({2: 1, 3: 2}.get(n, 3) if n is not None else None)
            elif line.callee == "power":
                n = arity(line.args[0])
                result = callable_type(n if line.args[1] == "ONE" else 1) if n is not None else CALLABLE
            types[line.target] = result
        else:
            types[line.target] = ANY
    return types


def infer_types(program: Program | str, values: Sequence[Mapping[str, Any]] | None = None, *,
                inputs: Sequence[Any] | None = None) -> ProgramTypes:
    """Infer the type of every variable of ``program``.

    ``values`` holds, per input, the value each variable took (a variable missing from a mapping
    failed or was not reached on that input); alternatively pass ``inputs`` and the program is run
    on them here (in this process, with the default limits).  Variables with no value on any input
    keep their declared type (:func:`static_types`).  Raises :class:`InferenceError` if the program
    does not parse.
    """
    if isinstance(program, str):
        try:
            program = parse(program)
        except ProgramError as err:
            raise InferenceError(f"cannot infer types: {err}") from None
    if values is None:
        values = trace(program, inputs or ())
    declared = static_types(program)
    types = {INPUT: GRID}
    observed = {INPUT}
    for line in program.lines:
        seen = [value_type(v[line.target]) for v in values if line.target in v]
        t = unify(seen) if seen else ANY
        if t == ANY or (t == CALLABLE and declared[line.target].startswith(CALLABLE)):
            types[line.target] = declared[line.target]
        else:
            types[line.target] = t
            observed.add(line.target)
    return ProgramTypes(program, types, frozenset(observed))


def trace(program: Program, inputs: Iterable[Any]) -> list[dict[str, Any]]:
    """Run ``program`` on each input in this process (default limits, no isolation: for trusted
    programs) and return, per input, ``{variable: value}`` for the lines that succeeded."""
    from codeit.execution.shared_eval import NodeTable

    table = NodeTable()
    slots = table.add(program)
    result = []
    for grid in inputs:
        env = table.new_env(grid)
        table.run(slots, env)
        result.append({line.target: env[s] for line, s in zip(program.lines, slots) if table.is_value(env[s])})
    return result

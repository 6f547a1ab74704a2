"""DSL primitives 40-66 (dsl-spec §3.2): containers and higher-order functions.

Container results keep the input's type (§0.4): a tuple in gives a tuple (order and duplicates kept),
a frozenset in gives a frozenset built directly from the elements in the order the reference feeds
them (§0.9), so CPython's iteration order matches the reference's (§0.5).  A list comprehension fed
to ``frozenset`` builds the same table as a generator (both insert one element at a time, in order).

Function values: ``rbind``/``lbind`` read ``f.__code__.co_argcount`` (§0.8), so every closure made
here is a plain Python function with exactly the arity the reference's has.

Callbacks are called inside list comprehensions, never through ``map``/``filter``: those C iterators
take a ``StopIteration`` escaping the callback for the end of the input and silently truncate the
result, whereas the reference's generators turn it into an error.  Some primitives do raise
``StopIteration`` on empty input (e.g. ``color`` via ``next(iter(obj))``), so ``apply(color, objs)``
must still fail when an object is empty.  (A comprehension costs about 0.1-0.2 µs more per call than
``map``; nothing measurable per program.)  ``first``/``extract``/``other`` themselves raise
``ValueError`` on empty input.
"""

from __future__ import annotations

from itertools import chain as _chain

from codeit.dsl.registry import primitive
from codeit.dsl.types import (
    Any,
    Boolean,
    Callable,
    Container,
    ContainerContainer,
    FrozenSet,
    Integer,
    IntegerTuple,
    Tuple,
    TupleTuple,
)

_from_iterable = _chain.from_iterable
#: ``power`` with this many or more applications fails like the reference, whose recursive
#: construction hits CPython's default recursion limit (1000 frames) long before it finishes.
_POWER_LIMIT = 1000


@primitive
def sfilter(container: Container, condition: Callable) -> Container:
    """Elements for which ``condition`` is truthy; same container type, built in iteration order."""
    t = type(container)
    if t is frozenset:
        return frozenset([e for e in container if condition(e)])
    if t is tuple:
        return tuple([e for e in container if condition(e)])
    return t(e for e in container if condition(e))


@primitive
def mfilter(container: Container, function: Callable) -> FrozenSet:
    """``merge(sfilter(container, function))``: keep the inner containers that pass, then flatten.

    For a frozenset the filtered frozenset is really built first: ``merge`` walks *its* iteration
    order, which can differ from the input's.
    """
    t = type(container)
    if t is frozenset:
        return frozenset(_from_iterable(frozenset([e for e in container if function(e)])))
    if t is tuple:
        return tuple(_from_iterable([e for e in container if function(e)]))
    kept = t(e for e in container if function(e))
    return type(kept)(e for c in kept for e in c)


@primitive
def extract(container: Container, condition: Callable) -> Any:
    """First element (iteration order) satisfying ``condition``; none raises (ValueError)."""
    for e in container:
        if condition(e):
            return e
    raise ValueError("extract: no element satisfies the condition")


@primitive
def totuple(container: FrozenSet) -> Tuple:
    """Tuple of the elements in iteration order (a tuple comes back equal)."""
    return tuple(container)


@primitive
def first(container: Container) -> Any:
    """First element in iteration order (a grid's first row, a pair's first component); empty raises."""
    for e in container:
        return e
    raise ValueError("first: empty container")


@primitive
def last(container: Container) -> Any:
    """Last element in iteration order (a pair's second component); empty raises (IndexError)."""
    if type(container) is tuple:
        return container[-1]
    return tuple(container)[-1]


@primitive
def insert(value: Any, container: FrozenSet) -> FrozenSet:
    """Native union of ``container`` with ``{value}`` (CPython's order); a tuple container raises."""
    return container | {value}


@primitive
def remove(value: Any, container: Container) -> Container:
    """Same container type without *every* element equal to ``value`` (tuple order kept).

    A frozenset result is built directly in the input's iteration order (§0.9).
    """
    t = type(container)
    if t is frozenset:
        return frozenset([e for e in container if e != value])
    if t is tuple:
        return tuple([e for e in container if e != value])
    return t(e for e in container if e != value)


@primitive
def other(container: Container, value: Any) -> Any:
    """``first(remove(value, container))``: first element of the *rebuilt* container.

    For a frozenset the rebuilt set can iterate differently from the original
    (``other(frozenset([9, 1, 2]), 9)`` is 1 although the original iterates 9, 2, 1), so it is
    really rebuilt.  Nothing left raises.
    """
    t = type(container)
    if t is frozenset:
        for e in frozenset([e for e in container if e != value]):
            return e
    elif t is tuple:
        for e in container:
            if e != value:
                return e
    else:
        for e in t(e for e in container if e != value):
            return e
    raise ValueError("other: nothing left")


@primitive
def interval(start: Integer, stop: Integer, step: Integer) -> Tuple:
    """Tuple of Python's ``range(start, stop, step)`` (stop excluded); step 0 raises."""
    return tuple(range(start, stop, step))


@primitive
def astuple(a: Integer, b: Integer) -> IntegerTuple:
    """The pair ``(a, b)``; values are not checked (programs pair grids, tuples, ...)."""
    return (a, b)


@primitive
def product(a: Container, b: Container) -> FrozenSet:
    """Frozenset of all ``(x, y)``, x from ``a``, y from ``b``: outer loop over b, inner over a (§0.9).

    ``a`` is only iterated once per element of ``b``: with ``b`` empty, ``a`` is never touched.
    """
    return frozenset([(i, j) for j in b for i in a])


@primitive
def pair(a: Tuple, b: Tuple) -> TupleTuple:
    """Tuple of ``(a[k], b[k])``, truncated to the shorter input (zip; sets in iteration order)."""
    return tuple(zip(a, b))


@primitive
def branch(condition: Boolean, a: Any, b: Any) -> Any:
    """``a`` if ``condition`` is truthy else ``b`` (both already evaluated)."""
    return a if condition else b


@primitive
def compose(outer: Callable, inner: Callable) -> Callable:
    """The one-argument function x -> outer(inner(x))."""
    return lambda x: outer(inner(x))


@primitive
def chain(h: Callable, g: Callable, f: Callable) -> Callable:
    """The one-argument function x -> h(g(f(x))) (``f`` applied first)."""
    return lambda x: h(g(f(x)))


@primitive
def matcher(function: Callable, target: Any) -> Callable:
    """The one-argument predicate x -> function(x) == target."""
    return lambda x: function(x) == target


@primitive
def rbind(function: Callable, fixed: Any) -> Callable:
    """Fix the *last* parameter, by the arity n of ``function`` (§0.8).

    n = 2 gives x -> f(x, fixed); n = 3 gives (x, y) -> f(x, y, fixed); any other arity gives the
    3-argument (x, y, z) -> f(x, y, z, fixed), which only works for a 4-parameter ``function``.
    """
    n = function.__code__.co_argcount
    if n == 2:
        return lambda x: function(x, fixed)
    if n == 3:
        return lambda x, y: function(x, y, fixed)
    return lambda x, y, z: function(x, y, z, fixed)


@primitive
def lbind(function: Callable, fixed: Any) -> Callable:
    """Fix the *first* parameter, by the arity n of ``function`` (§0.8).

    n = 2 gives y -> f(fixed, y); n = 3 gives (y, z) -> f(fixed, y, z); any other arity gives the
    3-argument (y, z, w) -> f(fixed, y, z, w).
    """
    n = function.__code__.co_argcount
    if n == 2:
        return lambda y: function(fixed, y)
    if n == 3:
        return lambda y, z: function(fixed, y, z)
    return lambda y, z, w: function(fixed, y, z, w)


@primitive
def power(function: Callable, n: Integer) -> Callable:
    """n-fold self-composition: n = 1 returns ``function`` itself (same arity); n >= 2 a one-argument
    function applying it n times.

    The reference recurses on n - 1 until n == 1, so n <= 0 (or any n that never reaches 1) recurses
    forever, and a very large n exhausts the recursion limit; both raise ``RecursionError`` here at
    once instead of burning the stack.
    """
    if n == 1:
        return function
    count = 1
    m = n
    while m != 1:
        if not m > 1 or count >= _POWER_LIMIT:
            raise RecursionError(f"power: n={n!r} never reaches 1 (the reference recurses forever)")
        m = m - 1
        count += 1
    if count == 2:
        return lambda x: function(function(x))
    if count == 3:
        return lambda x: function(function(function(x)))

    def powered(x):
        for _ in range(count):
            x = function(x)
        return x

    return powered


@primitive
def fork(outer: Callable, a: Callable, b: Callable) -> Callable:
    """The one-argument function x -> outer(a(x), b(x))."""
    return lambda x: outer(a(x), b(x))


@primitive
def apply(function: Callable, container: Container) -> Container:
    """``function(e)`` for every element, in the container's type (a frozenset collapses duplicates:
    ``apply(size, objs)`` is the *set* of sizes); built in iteration order."""
    t = type(container)
    if t is frozenset:
        return frozenset([function(e) for e in container])
    if t is tuple:
        return tuple([function(e) for e in container])
    return t(function(e) for e in container)


@primitive
def rapply(functions: Container, value: Any) -> Container:
    """``f(value)`` for each function ``f``, in the container's type and iteration order."""
    t = type(functions)
    if t is tuple:
        return tuple([f(value) for f in functions])
    if t is frozenset:
        return frozenset([f(value) for f in functions])
    return t(f(value) for f in functions)


@primitive
def mapply(function: Callable, container: ContainerContainer) -> FrozenSet:
    """``merge(apply(function, container))``: apply, then flatten in the outer container's type.

    For a frozenset the applied frozenset is really built first (duplicates collapse, and ``merge``
    walks its iteration order).
    """
    t = type(container)
    if t is frozenset:
        return frozenset(_from_iterable(frozenset([function(e) for e in container])))
    if t is tuple:
        return tuple(_from_iterable([function(e) for e in container]))
    applied = t(function(e) for e in container)
    return type(applied)(e for c in applied for e in c)


@primitive
def papply(function: Callable, a: Tuple, b: Tuple) -> Tuple:
    """Tuple of ``function(a[k], b[k])``, truncated to the shorter input (sets in iteration order)."""
    return tuple([function(i, j) for i, j in zip(a, b)])


@primitive
def mpapply(function: Callable, a: Tuple, b: Tuple) -> Tuple:
    """``merge(papply(...))``: always a tuple of all elements of all results (duplicates kept, even
    when each result is a frozenset)."""
    return tuple(_from_iterable([function(i, j) for i, j in zip(a, b)]))


@primitive
def prapply(function: Callable, a: Container, b: Container) -> FrozenSet:
    """Frozenset of ``function(x, y)`` for x in ``a``, y in ``b``: outer loop over b, inner over a."""
    return frozenset([function(i, j) for j in b for i in a])

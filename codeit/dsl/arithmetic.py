"""DSL primitives 1-39 (dsl-spec §3.1): basic values, arithmetic and logic.

Arithmetic dispatches at run time on "is it an ``int``?" (``bool`` counts, §0.3); anything else is
indexed as a pair with ``[0]`` and ``[1]``.  Those plain index expressions are kept on purpose: they
make odd inputs behave like the reference (``add`` of two grids concatenates rows 0 and 1, a frozenset
raises).  Container primitives keep the input's container type (§0.4) and build frozensets with the
construction the spec prescribes, so CPython's iteration order matches (§0.5, §0.9).

Key functions are only called by ``max``/``min``/``sorted`` (never through ``map``), so an exception
escaping a key function, ``StopIteration`` included, always propagates as an error.
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
    IntegerSet,
    IntegerTuple,
    Numerical,
    Tuple,
)

_from_iterable = _chain.from_iterable
_MISSING = object()


@primitive
def identity(x: Any) -> Any:
    """Return ``x`` itself (mostly used as a function value, e.g. inside ``fork``)."""
    return x


@primitive
def add(a: Numerical, b: Numerical) -> Numerical:
    """Sum: int+int, component-wise pair+pair, or the int broadcast over the pair's two components."""
    if isinstance(a, int):
        if isinstance(b, int):
            return a + b
        return (a + b[0], a + b[1])
    if isinstance(b, int):
        return (a[0] + b, a[1] + b)
    return (a[0] + b[0], a[1] + b[1])


@primitive
def subtract(a: Numerical, b: Numerical) -> Numerical:
    """Difference ``a - b`` with ``add``'s dispatch (``subtract(2, (1, 5))`` is ``(1, -3)``)."""
    if isinstance(a, int):
        if isinstance(b, int):
            return a - b
        return (a - b[0], a - b[1])
    if isinstance(b, int):
        return (a[0] - b, a[1] - b)
    return (a[0] - b[0], a[1] - b[1])


@primitive
def multiply(a: Numerical, b: Numerical) -> Numerical:
    """Product with ``add``'s dispatch; pair×pair is component-wise (not a dot product)."""
    if isinstance(a, int):
        if isinstance(b, int):
            return a * b
        return (a * b[0], a * b[1])
    if isinstance(b, int):
        return (a[0] * b, a[1] * b)
    return (a[0] * b[0], a[1] * b[1])


@primitive
def divide(a: Numerical, b: Numerical) -> Numerical:
    """Floor division (rounds toward -inf) with ``add``'s dispatch; division by zero raises."""
    if isinstance(a, int):
        if isinstance(b, int):
            return a // b
        return (a // b[0], a // b[1])
    if isinstance(b, int):
        return (a[0] // b, a[1] // b)
    return (a[0] // b[0], a[1] // b[1])


@primitive
def invert(n: Numerical) -> Numerical:
    """Negation of an int or of both components of a pair."""
    if isinstance(n, int):
        return -n
    return (-n[0], -n[1])


@primitive
def even(n: Integer) -> Boolean:
    """``n % 2 == 0`` with Python's modulo (right for negatives); a pair raises."""
    return n % 2 == 0


@primitive
def double(n: Numerical) -> Numerical:
    """Times two, int or component-wise."""
    if isinstance(n, int):
        return n * 2
    return (n[0] * 2, n[1] * 2)


@primitive
def halve(n: Numerical) -> Numerical:
    """Floor division by two, int or component-wise (``halve(-3)`` is -2)."""
    if isinstance(n, int):
        return n // 2
    return (n[0] // 2, n[1] // 2)


@primitive
def flip(b: Boolean) -> Boolean:
    """Logical not of the argument's truthiness; always a bool (``flip(0)`` is True)."""
    return not b


@primitive
def equality(a: Any, b: Any) -> Boolean:
    """Python ``==`` (structural; ``True == 1``; a tuple never equals a frozenset)."""
    return a == b


@primitive
def contained(value: Any, container: Container) -> Boolean:
    """``value in container``: hash lookup for sets, equality scan for tuples (rows for a grid)."""
    return value in container


@primitive
def combine(a: Container, b: Container) -> Container:
    """All of ``a`` then all of ``b``, in the type of ``a``.

    tuple+tuple concatenates (duplicates kept), tuple+frozenset appends b in b's iteration order; a
    frozenset result is built directly from a's elements then b's (§0.9), not with the native ``|``,
    whose table (and so iteration order) can differ.
    """
    ta = type(a)
    if ta is tuple:
        if type(b) is tuple:
            return a + b
        return (*a, *b)
    if ta is frozenset:
        return frozenset((*a, *b))
    return ta((*a, *b))


@primitive
def intersection(a: FrozenSet, b: FrozenSet) -> FrozenSet:
    """Native set intersection ``a & b`` (its iteration order is CPython's); tuples raise."""
    return a & b


@primitive
def difference(a: FrozenSet, b: FrozenSet) -> FrozenSet:
    """Elements of ``a`` not in ``b``, type of ``a``, inserted in a's iteration order (§0.9).

    Works for a tuple ``a`` too (order kept, every excluded occurrence dropped).  ``b`` is only asked
    for membership, so an empty ``a`` never looks at ``b`` at all.  Fast path: when ``b`` is a
    frozenset and ``len(a) // 4 <= len(b)`` CPython's native ``a - b`` walks ``a`` in order and
    inserts the survivors into a fresh table, which is exactly the direct construction (same table,
    same order); outside that range the native operator copies ``a`` instead, so we build directly.
    """
    ta = type(a)
    if ta is frozenset:
        if type(b) is frozenset and len(a) >> 2 <= len(b):
            return a - b
        return frozenset([e for e in a if e not in b])
    if ta is tuple:
        return tuple([e for e in a if e not in b])
    return ta(e for e in a if e not in b)


@primitive
def dedupe(tup: Tuple) -> Tuple:
    """Tuple keeping the first occurrence of each value (by equality), order preserved.

    Only tuples work: a non-empty frozenset raises (it has no ``index``), an empty one gives ``()``.
    """
    if type(tup) is tuple:
        return tuple(dict.fromkeys(tup))
    return tuple(e for i, e in enumerate(tup) if tup.index(e) == i)


@primitive
def order(container: Container, compfunc: Callable) -> Tuple:
    """Tuple of the elements sorted ascending by ``compfunc``; stable, so ties keep iteration order."""
    return tuple(sorted(container, key=compfunc))


@primitive
def repeat(item: Any, num: Integer) -> Tuple:
    """Tuple of ``num`` copies of ``item`` (0 or negative: empty)."""
    return (item,) * num


@primitive
def greater(a: Integer, b: Integer) -> Boolean:
    """Strict ``a > b`` (pairs compare lexicographically)."""
    return a > b


@primitive
def size(container: Container) -> Integer:
    """Number of elements (``len``): cells of an object, rows of a grid; an int raises."""
    return len(container)


@primitive
def merge(containers: ContainerContainer) -> Container:
    """Flatten one level, in the type of the *outer* container (§0.4).

    Elements are taken inner container by inner container in outer iteration order; a tuple of
    frozensets gives a tuple with duplicates, a frozenset of tuples a frozenset (built directly).
    """
    t = type(containers)
    if t is frozenset:
        return frozenset(_from_iterable(containers))
    if t is tuple:
        return tuple(_from_iterable(containers))
    return t(e for c in containers for e in c)


@primitive
def maximum(container: IntegerSet) -> Integer:
    """Largest element; an empty container gives 0 (not an error)."""
    return max(container, default=0)


@primitive
def minimum(container: IntegerSet) -> Integer:
    """Smallest element; an empty container gives 0 (not an error)."""
    return min(container, default=0)


@primitive
def valmax(container: Container, compfunc: Callable) -> Integer:
    """The largest key ``compfunc(e)`` (the key, not the element).

    Python's ``max`` semantics (first maximal in iteration order; frozenset keys by subset).  Empty
    container: the key function is applied to the integer 0 and that is returned (so it can raise).
    The winning element's key is computed once more (an equal value).
    """
    best = max(container, key=compfunc, default=_MISSING)
    return compfunc(0 if best is _MISSING else best)


@primitive
def valmin(container: Container, compfunc: Callable) -> Integer:
    """The smallest key ``compfunc(e)``; empty container: ``compfunc(0)``, like ``valmax``."""
    best = min(container, key=compfunc, default=_MISSING)
    return compfunc(0 if best is _MISSING else best)


@primitive
def argmax(container: Container, compfunc: Callable) -> Any:
    """Element with the largest key; ties go to the first in iteration order; empty raises.

    Keys compare with Python ordering, frozenset keys by the subset relation (a partial order), which
    is what the reference program of task 1b60fb0c relies on (and is wrong because of).
    """
    return max(container, key=compfunc)


@primitive
def argmin(container: Container, compfunc: Callable) -> Any:
    """Element with the smallest key; ties go to the first in iteration order; empty raises."""
    return min(container, key=compfunc)


@primitive
def mostcommon(container: Container) -> Any:
    """Most frequent value of a tuple; ties follow the iteration order of ``set(container)``.

    The candidates are walked in the order of a Python set built from the tuple (so usually the
    smallest small int, not the first occurrence, wins a tie: ``(3, 1, 1, 3)`` gives 1).  Needs a
    per-value count, so a frozenset raises; so does an empty tuple.
    """
    return max(set(container), key=container.count)


@primitive
def leastcommon(container: Container) -> Any:
    """Least frequent value of a tuple; same set-order tie rule and errors as ``mostcommon``."""
    return min(set(container), key=container.count)


@primitive
def initset(value: Any) -> FrozenSet:
    """Frozenset holding exactly ``value`` (a frozen one-element set, §0.9)."""
    return frozenset({value})


@primitive
def both(a: Boolean, b: Boolean) -> Boolean:
    """Python ``a and b``: returns an operand (``both(0, 5)`` is 0), a bool for bool inputs."""
    return a and b


@primitive
def either(a: Boolean, b: Boolean) -> Boolean:
    """Python ``a or b``: returns an operand (``either(0, 5)`` is 5)."""
    return a or b


@primitive
def increment(x: Numerical) -> Numerical:
    """Plus one (int, or both components of a pair)."""
    if isinstance(x, int):
        return x + 1
    return (x[0] + 1, x[1] + 1)


@primitive
def decrement(x: Numerical) -> Numerical:
    """Minus one (int, or both components of a pair)."""
    if isinstance(x, int):
        return x - 1
    return (x[0] - 1, x[1] - 1)


@primitive
def crement(x: Numerical) -> Numerical:
    """One step away from zero: positive +1, negative -1, zero stays (the int 0); per component."""
    if isinstance(x, int):
        return 0 if x == 0 else (x + 1 if x > 0 else x - 1)
    a, b = x[0], x[1]
    return (0 if a == 0 else (a + 1 if a > 0 else a - 1),
            0 if b == 0 else (b + 1 if b > 0 else b - 1))


@primitive
def sign(x: Numerical) -> Numerical:
    """-1, 0 or 1 (per component for a pair)."""
    if isinstance(x, int):
        return 0 if x == 0 else (1 if x > 0 else -1)
    a, b = x[0], x[1]
    return (0 if a == 0 else (1 if a > 0 else -1),
            0 if b == 0 else (1 if b > 0 else -1))


@primitive
def positive(x: Integer) -> Boolean:
    """``x > 0`` (0 is not positive)."""
    return x > 0


@primitive
def toivec(i: Integer) -> IntegerTuple:
    """The vertical vector ``(i, 0)``."""
    return (i, 0)


@primitive
def tojvec(j: Integer) -> IntegerTuple:
    """The horizontal vector ``(0, j)``."""
    return (0, j)

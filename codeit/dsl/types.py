"""Names of the DSL's value types (dsl-spec §1).

Primitives are annotated with these names; the registry reads the annotations as strings, so the
names below are the single vocabulary of the typed signatures.  At run time nothing is checked:
the aliases only point at the Python representation so annotations stay importable and lintable.
"""

from collections.abc import Callable as _Callable
from typing import Any as _Any

Boolean = bool
Integer = int
IntegerTuple = tuple
Numerical = _Any
IntegerSet = frozenset
Grid = tuple
Cell = tuple
Object = frozenset
Indices = frozenset
Patch = frozenset
Objects = frozenset
IndicesSet = frozenset
Element = _Any
Piece = _Any
Container = _Any
ContainerContainer = _Any
FrozenSet = frozenset
Tuple = tuple
TupleTuple = tuple
Callable = _Callable
Any = _Any

#: Every type name a primitive signature may use, in the order of dsl-spec §1.
TYPE_NAMES = (
    "Boolean", "Integer", "IntegerTuple", "Numerical", "IntegerSet", "Grid", "Cell", "Object",
    "Indices", "Patch", "Objects", "IndicesSet", "Element", "Piece", "Container",
    "ContainerContainer", "FrozenSet", "Tuple", "TupleTuple", "Callable", "Any",
)

#: Union types and the concrete types they admit (used by type inference and mutation).
UNIONS = {
    "Numerical": ("Integer", "IntegerTuple"),
    "Patch": ("Object", "Indices"),
    "Element": ("Object", "Grid"),
    "Piece": ("Grid", "Object", "Indices"),
}

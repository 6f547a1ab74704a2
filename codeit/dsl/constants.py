"""The 28 named constants of the DSL (dsl-spec §2), grouped by type in the registry's order."""

from __future__ import annotations

F = False
T = True

ZERO = 0
ONE = 1
TWO = 2
THREE = 3
FOUR = 4
FIVE = 5
SIX = 6
SEVEN = 7
EIGHT = 8
NINE = 9
TEN = 10
NEG_ONE = -1
NEG_TWO = -2

DOWN = (1, 0)
RIGHT = (0, 1)
UP = (-1, 0)
LEFT = (0, -1)
ORIGIN = (0, 0)
UNITY = (1, 1)
NEG_UNITY = (-1, -1)
UP_RIGHT = (-1, 1)
DOWN_LEFT = (1, -1)
ZERO_BY_TWO = (0, 2)
TWO_BY_ZERO = (2, 0)
TWO_BY_TWO = (2, 2)
THREE_BY_THREE = (3, 3)

#: type name -> constant names, in the order CodeIt's token whitelist and mutation sampler use.
CONSTANT_TYPES: dict[str, tuple[str, ...]] = {
    "Boolean": ("F", "T"),
    "Integer": ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE",
                "TEN", "NEG_ONE", "NEG_TWO"),
    "IntegerTuple": ("DOWN", "RIGHT", "UP", "LEFT", "ORIGIN", "UNITY", "NEG_UNITY", "UP_RIGHT",
                     "DOWN_LEFT", "ZERO_BY_TWO", "TWO_BY_ZERO", "TWO_BY_TWO", "THREE_BY_THREE"),
}

#: constant name -> value, in the order of :data:`CONSTANT_TYPES`.
CONSTANTS: dict[str, object] = {
    name: globals()[name] for names in CONSTANT_TYPES.values() for name in names
}

#: constant name -> type name.
CONSTANT_TYPE_OF: dict[str, str] = {
    name: type_name for type_name, names in CONSTANT_TYPES.items() for name in names
}

"""The ARC DSL: value types, constants, the 160 primitives and their registry.

Importing this package registers every primitive, section by section in the order of
dsl-spec §3, so :data:`PRIMITIVES` lists them in the reference's source order.
"""

from codeit.dsl import arithmetic, containers, measures, objects, patches, transforms  # noqa: F401  (registration order)
from codeit.dsl.constants import CONSTANT_TYPE_OF, CONSTANT_TYPES, CONSTANTS
from codeit.dsl.registry import PRIMITIVES, Primitive, primitive

#: Every name a program may use besides its variables and ``I``: primitives, then constants.
NAMESPACE: dict[str, object] = {name: p.function for name, p in PRIMITIVES.items()}
NAMESPACE.update(CONSTANTS)

__all__ = ["CONSTANTS", "CONSTANT_TYPES", "CONSTANT_TYPE_OF", "NAMESPACE", "PRIMITIVES", "Primitive",
           "primitive"]

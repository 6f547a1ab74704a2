"""The primitive registry: name -> callable and typed signature, the single source of truth.

Every primitive module decorates its functions with :func:`primitive`; importing
:mod:`codeit.dsl` imports those modules in the order of dsl-spec §3, so :data:`PRIMITIVES`
iterates in the spec's source order.  Program parsing, execution, type inference, mutation and
the tokenizer all read this table instead of keeping lists of their own.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from codeit.dsl.types import TYPE_NAMES


@dataclass(frozen=True)
class Primitive:
    """One DSL primitive: its name, the callable, parameter (name, type) pairs and return type."""

    name: str
    function: Callable
    params: tuple[tuple[str, str], ...]
    returns: str

    @property
    def arity(self) -> int:
        return len(self.params)

    @property
    def param_types(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.params)

    def signature(self) -> str:
        args = ", ".join(f"{n}: {t}" for n, t in self.params)
        return f"{self.name}({args}) -> {self.returns}"


#: name -> Primitive, in dsl-spec §3 order once :mod:`codeit.dsl` is imported.
PRIMITIVES: dict[str, Primitive] = {}


def primitive(function: Callable) -> Callable:
    """Register ``function`` as a DSL primitive; its annotations are its typed signature.

    The function is returned unchanged (no wrapper), so calling a primitive costs nothing extra
    and ``function.__code__.co_argcount`` is its arity, as ``rbind``/``lbind`` require.
    """
    name = function.__name__
    if name in PRIMITIVES:
        raise ValueError(f"primitive {name!r} registered twice")
    annotations = function.__annotations__
    params = []
    for param in inspect.signature(function).parameters.values():
        type_name = annotations.get(param.name)
        if type_name not in TYPE_NAMES:
            raise TypeError(f"primitive {name}: parameter {param.name!r} has type {type_name!r}, "
                            f"expected one of the DSL type names")
        params.append((param.name, type_name))
    returns = annotations.get("return")
    if returns not in TYPE_NAMES:
        raise TypeError(f"primitive {name}: return type {returns!r} is not a DSL type name")
    PRIMITIVES[name] = Primitive(name, function, tuple(params), returns)
    return function

"""Type inference over the DSL registry (codeit.search.inference)."""

from __future__ import annotations

import pytest
from mutation_support import needs_data, published_training

from codeit.dsl import PRIMITIVES
from codeit.program import parse
from codeit.search.inference import (
    CONCRETE_TYPES,
    InferenceError,
    admits,
    constants_fitting,
    fits,
    infer_types,
    may_produce,
    name_type,
    producers,
    static_types,
    unify,
    value_type,
)

GRID = ((0, 1), (2, 3))
OBJECT = frozenset({(1, (0, 0)), (2, (0, 1))})
INDICES = frozenset({(0, 0), (1, 1)})


@pytest.mark.parametrize(("value", "expected"), [
    (True, "Boolean"),
    (3, "Integer"),
    ((1, 2), "IntegerTuple"),
    ((True, 0), "IntegerTuple"),
    (GRID, "Grid"),
    (((1, 2, 3),), "Grid"),
    ((5, (1, 2)), "Cell"),
    ((), "EmptyTuple"),
    ((GRID, GRID), "GridTuple"),
    (((1, 2, 3), (4,)), "TupleTuple"),
    ((1, 2, 3), "Tuple"),
    (frozenset({1, 2}), "IntegerSet"),
    (OBJECT, "Object"),
    (INDICES, "Indices"),
    (frozenset({OBJECT}), "Objects"),
    (frozenset({INDICES}), "IndicesSet"),
    (frozenset({OBJECT, frozenset()}), "Objects"),
    (frozenset(), "EmptySet"),
    (frozenset({"a"}), "FrozenSet"),
    (None, "None"),
    ("text", "Any"),
])
def test_value_type(value, expected):
    assert value_type(value) == expected


def test_callable_types_carry_arity():
    fns = {name: p.function for name, p in PRIMITIVES.items()}
    assert value_type(fns["size"]) == "Callable1"
    assert value_type(fns["shift"]) == "Callable2"
    assert value_type(fns["objects"]) == "Callable4"
    assert value_type(fns["rbind"](fns["shift"], (1, 0))) == "Callable1"
    assert value_type(fns["lbind"](fns["fill"], GRID)) == "Callable2"
    assert value_type(fns["compose"](fns["size"], fns["first"])) == "Callable1"


def test_unify_rules():
    assert unify(["Grid", "Grid"]) == "Grid"
    assert unify(["Grid", "EmptyTuple"]) == "Grid"
    assert unify(["Object", "EmptySet"]) == "Object"
    assert unify(["Integer", "Boolean"]) == "Integer"
    assert unify(["Object", "Indices"]) == "Patch"
    assert unify(["Callable1", "Callable2"]) == "Callable"
    assert unify(["Grid", "None"]) == "Grid"
    assert unify(["Grid", "Object"]) == "Any"
    assert unify([]) == "Any"


def test_compatibility():
    assert fits("Object", "Patch") and fits("Indices", "Patch") and fits("Patch", "Piece")
    assert not fits("Grid", "Patch")
    assert fits("Grid", "Element") and fits("Object", "Element") and not fits("Indices", "Element")
    assert fits("Integer", "Numerical") and fits("IntegerTuple", "Numerical")
    assert not fits("Boolean", "Integer") and not fits("Integer", "Boolean")
    assert fits("Callable2", "Callable") and not fits("Callable2", "Callable1")
    assert fits("Objects", "Container") and fits("Grid", "Tuple") and not fits("Grid", "FrozenSet")
    assert fits("EmptySet", "Objects")
    assert not fits("None", "Any")
    assert all(fits(t, "Any") for t in CONCRETE_TYPES)
    assert may_produce("Piece", "Grid") and may_produce("Any", "Objects") and not may_produce("Integer", "Grid")
    with pytest.raises(KeyError):
        admits("Nonsense")


def test_registry_views():
    grid_makers = producers("Grid")
    assert "rot90" in grid_makers and "fill" in grid_makers and "size" not in grid_makers
    assert "first" in grid_makers  # declared Any: may be a grid
    assert set(producers("Grid", arity=1)) <= {n for n, p in PRIMITIVES.items() if p.arity == 1}
    assert len(constants_fitting("Integer")) == 13
    assert constants_fitting("Boolean") == ("F", "T")
    assert len(constants_fitting("Numerical")) == 26
    assert constants_fitting("Grid") == ()
    assert name_type("DOWN") == "IntegerTuple" and name_type("fill") == "Callable3"


def test_infer_types_from_values():
    program = parse("x1 = objects(I, T, F, T)\nx2 = argmax(x1, size)\nx3 = color(x2)\n"
                    "x4 = rbind(shift, DOWN)\nx5 = x4(x2)\nO = fill(I, x3, x5)")
    grids = [((0, 0, 0), (0, 5, 5), (0, 0, 0)), ((1, 0), (0, 0), (0, 0))]
    types = infer_types(program, inputs=grids)
    assert types["I"] == "Grid"
    assert types["x1"] == "Objects"
    assert types["x2"] == "Object"
    assert types["x3"] == "Integer"
    assert types["x4"] == "Callable1"
    assert types["x5"] == "Object"
    assert types["O"] == "Grid"
    assert types.observed >= {"x1", "x2", "x3", "x4", "x5", "O"}
    assert types.of("T") == "Boolean" and types.of("size") == "Callable1"


def test_declared_types_where_nothing_ran():
    program = parse("x1 = first(I)\nx2 = rbind(fill, ONE)\nx3 = power(rot90, TWO)\nO = rot90(I)")
    types = infer_types(program, values=[{"O": ((1,),)}])
    assert types["x1"] == "Any"  # declared, nothing observed
    assert types["x2"] == "Callable2"  # rbind of an arity-3 function
    assert types["x3"] == "Callable1"
    assert types["O"] == "Grid"
    assert "x1" not in types.observed
    assert static_types(parse("x1 = lbind(objects, I)\nO = canvas(ONE, UNITY)"))["x1"] == "Callable3"


def test_uninferable_programs_are_rejected_with_a_reason():
    with pytest.raises(InferenceError, match="cannot infer types"):
        infer_types("x1 = nonsense(I)\nO = x1")
    with pytest.raises(InferenceError, match="cannot infer types"):
        infer_types("O = rot90(I, I, I")


@needs_data
def test_published_programs_infer():
    tasks = sorted(published_training().values(), key=lambda t: t.key)[:60]
    for task in tasks:
        types = infer_types(task.program, inputs=[e.input for e in task.train])
        assert set(types.types) == {"I", *(line.target for line in parse(task.program).lines)}
        assert types["O"] in ("Grid", "Any"), task.key

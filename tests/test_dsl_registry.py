"""The registry is the single source of truth: 160 primitives in spec order, typed, callable."""

from pathlib import Path

from codeit import dsl
from codeit.dsl.registry import PRIMITIVES
from codeit.dsl.types import TYPE_NAMES

SIGNATURES = (Path(__file__).parent / "dsl_signatures.txt").read_text().split("\n")
SIGNATURES = [s for s in SIGNATURES if s]


def test_all_160_primitives_registered_in_spec_order_with_spec_signatures():
    assert len(SIGNATURES) == 160
    assert [p.signature() for p in PRIMITIVES.values()] == SIGNATURES


def test_arity_equals_code_argcount_for_rbind_and_lbind():
    for p in PRIMITIVES.values():
        assert p.function.__code__.co_argcount == p.arity, p.name
        assert p.function.__code__.co_flags & 0x0C == 0, f"{p.name} must not take *args/**kwargs"
        assert p.function.__defaults__ is None, f"{p.name} must not have defaults"


def test_types_are_known_names():
    for p in PRIMITIVES.values():
        assert p.returns in TYPE_NAMES
        assert all(t in TYPE_NAMES for t in p.param_types)


def test_namespace_holds_primitives_and_28_constants():
    assert len(dsl.CONSTANTS) == 28
    assert len(dsl.NAMESPACE) == 160 + 28
    assert dsl.NAMESPACE["T"] is True and dsl.NAMESPACE["NEG_UNITY"] == (-1, -1)
    assert dsl.NAMESPACE["rot90"] is PRIMITIVES["rot90"].function
    assert list(dsl.CONSTANTS)[:3] == ["F", "T", "ZERO"]

"""Primitives 1-39 (dsl-spec §3.1): basic values, arithmetic and logic."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeit.dsl import arithmetic as A
from codeit.dsl.arithmetic import (
    add,
    argmax,
    argmin,
    both,
    combine,
    contained,
    crement,
    decrement,
    dedupe,
    difference,
    divide,
    double,
    either,
    equality,
    even,
    flip,
    greater,
    halve,
    identity,
    increment,
    initset,
    intersection,
    invert,
    leastcommon,
    maximum,
    merge,
    minimum,
    mostcommon,
    multiply,
    order,
    positive,
    repeat,
    sign,
    size,
    subtract,
    toivec,
    tojvec,
    valmax,
    valmin,
)
from codeit.dsl.registry import PRIMITIVES

FS = frozenset
ints = st.integers(-50, 50)
pairs = st.tuples(ints, ints)
numericals = st.one_of(ints, pairs)
locs = st.tuples(st.integers(-3, 12), st.integers(-3, 12))
cells = st.tuples(st.integers(0, 9), locs)
small_ints = st.integers(0, 40)


def _as_frozenset(draw_list, how):
    """Build a frozenset from a list in one of several ways (different tables / histories)."""
    if how == 0:
        return FS(draw_list)
    if how == 1:
        return FS(set(draw_list))
    if how == 2:
        return FS(reversed(draw_list))
    half = FS(draw_list[::2])
    return FS(draw_list) - half | half  # native ops: copies, dummies, merges


@st.composite
def frozensets_of(draw, elements, max_size=20):
    return _as_frozenset(draw(st.lists(elements, max_size=max_size)), draw(st.integers(0, 3)))


def fails():
    """Any exception type will do: the spec only requires that these calls fail (dsl-spec §0.7)."""
    return pytest.raises(Exception)


# ---------------------------------------------------------------- registry / signatures

def test_registered_in_spec_order_with_spec_signatures():
    lines = (Path(__file__).parent / "dsl_signatures.txt").read_text().split("\n")[:39]
    names = [line.split("(")[0] for line in lines]
    assert [PRIMITIVES[n].signature() for n in names] == lines
    assert all(PRIMITIVES[n].function is getattr(A, n) for n in names)
    # the module defines them in the spec's order
    defined = [n for n in vars(A) if n in set(names)]
    assert defined == names


# ---------------------------------------------------------------- arithmetic

def test_identity_returns_the_same_object():
    x = FS({(1, (2, 3))})
    assert identity(x) is x


@pytest.mark.parametrize("f, a, b, expected", [
    (add, 2, 3, 5),
    (add, (1, 2), (10, 20), (11, 22)),
    (add, 1, (10, 20), (11, 21)),
    (add, (10, 20), 1, (11, 21)),
    (add, True, True, 2),
    (add, True, (1, 2), (2, 3)),
    (subtract, 2, (1, 5), (1, -3)),
    (subtract, (1, 5), 2, (-1, 3)),
    (subtract, (1, 5), (2, 2), (-1, 3)),
    (subtract, 7, 9, -2),
    (multiply, (2, 3), (4, 5), (8, 15)),
    (multiply, 3, (1, -2), (3, -6)),
    (multiply, (1, -2), 3, (3, -6)),
    (multiply, 4, 5, 20),
    (divide, -7, 2, -4),
    (divide, (7, -7), 2, (3, -4)),
    (divide, 7, (2, 3), (3, 2)),
    (divide, (9, 9), (2, -4), (4, -3)),
])
def test_binary_arithmetic_dispatch(f, a, b, expected):
    result = f(a, b)
    assert result == expected and type(result) is type(expected)


def test_pair_arithmetic_only_indexes_components_0_and_1():
    assert add((1, 2, 99), (3, 4)) == (4, 6)
    # non-int arguments are indexed as pairs: two grids add row-wise (tuple concatenation)
    assert add(((1,), (2,)), ((3,), (4,))) == ((1, 3), (2, 4))
    assert multiply(2, ((1,), (2,))) == ((1, 1), (2, 2))


@pytest.mark.parametrize("f", [add, subtract, multiply, divide])
def test_binary_arithmetic_rejects_non_numbers(f):
    for a, b in [(FS({1, 2}), 1), (1, FS({1, 2})), (None, 1), ((1, 2), FS({1}))]:
        with fails():
            f(a, b)


def test_divide_by_zero_raises():
    for a, b in [(1, 0), ((1, 2), 0), (1, (0, 1)), ((4, 4), (2, 0))]:
        with pytest.raises(ZeroDivisionError):
            divide(a, b)


def test_unary_numerical():
    assert invert(3) == -3 and invert((1, -2)) == (-1, 2) and invert(True) == -1
    assert double(4) == 8 and double((1, -3)) == (2, -6)
    assert halve(-3) == -2 and halve((5, -5)) == (2, -3) and halve(7) == 3
    assert increment(1) == 2 and increment((1, -1)) == (2, 0) and increment(True) == 2
    assert decrement(1) == 0 and decrement((1, -1)) == (0, -2)
    assert crement((3, -1)) == (4, -2) and crement(0) == 0 and crement(5) == 6 and crement(-5) == -6
    assert crement((0, 0)) == (0, 0) and crement(True) == 2
    assert sign(-7) == -1 and sign(0) == 0 and sign(9) == 1 and sign((3, -1)) == (1, -1)
    assert sign((0, 5)) == (0, 1)
    assert toivec(3) == (3, 0) and tojvec(3) == (0, 3)


def test_unary_on_wrong_types_raises():
    for f in (invert, double, halve, increment, decrement, crement, sign):
        with fails():
            f(FS({1, 2}))
        with fails():
            f(None)


def test_even_and_positive():
    assert even(0) is True and even(-3) is False and even(-4) is True and even(7) is False
    assert positive(0) is False and positive(1) is True and positive(-1) is False
    with fails():
        even((1, 2))
    with fails():
        positive((1, 2))


def test_greater():
    assert greater(3, 2) is True and greater(2, 2) is False
    assert greater((1, 5), (1, 4)) is True and greater((0, 9), (1, 0)) is False


# ---------------------------------------------------------------- logic

def test_flip_always_bool():
    assert flip(0) is True and flip(True) is False and flip(5) is False and flip(()) is True


def test_both_either_return_an_operand():
    assert both(0, 5) == 0 and both(True, False) is False and both(3, 5) == 5
    assert either(0, 5) == 5 and either(False, False) is False and either(True, False) is True


def test_equality_is_python_eq():
    assert equality(True, 1) is True
    assert equality((1, 2), FS({1, 2})) is False
    assert equality(FS({(1, 2), (3, 4)}), FS({(3, 4), (1, 2)})) is True
    assert equality(((1,),), ((1,),)) is True


def test_contained():
    assert contained(3, FS({1, 3})) is True
    assert contained(2, (1, 3)) is False
    assert contained((1, 2), ((1, 2), (3, 4))) is True  # a grid: is it one of the rows
    assert contained(1, ((1, 2), (3, 4))) is False
    with fails():
        contained(1, 5)


# ---------------------------------------------------------------- containers

def test_combine_keeps_type_of_first_argument():
    assert combine((1, 2), (2, 3)) == (1, 2, 2, 3)
    r = combine((1, 2), FS({9, 1}))
    assert type(r) is tuple and r == (1, 2) + tuple(FS({9, 1}))
    r = combine(FS({1, 2}), (2, 3, 3))
    assert r == FS({1, 2, 3}) and type(r) is frozenset
    assert combine(FS(), FS()) == FS()
    with fails():
        combine(5, (1,))


@given(frozensets_of(cells), frozensets_of(cells))
def test_combine_frozenset_iteration_order_is_direct(a, b):
    assert tuple(combine(a, b)) == tuple(FS(x for x in (*a, *b)))


def test_intersection_native_and_tuples_raise():
    a, b = FS({1, 2, 3}), FS({2, 3, 4})
    assert intersection(a, b) == FS({2, 3})
    with fails():
        intersection((1, 2), (2, 3))
    with fails():
        intersection((1, 2), FS({2}))


@given(frozensets_of(cells), frozensets_of(cells))
def test_intersection_iteration_order_is_native(a, b):
    assert tuple(intersection(a, b)) == tuple(a & b)


def test_difference_examples():
    assert difference((1, 2, 3, 2), FS({2})) == (1, 3)
    assert difference((1, 2, 3, 2), (3,)) == (1, 2, 2)
    r = difference(FS({1, 2, 3}), (2,))
    assert r == FS({1, 3}) and type(r) is frozenset
    assert difference(FS({1, 2}), FS({1, 2, 3})) == FS()
    # b is only asked for membership when a has elements
    assert difference(FS(), 5) == FS() and difference((), None) == ()
    with fails():
        difference(FS({1}), 5)


@given(frozensets_of(cells, 40), frozensets_of(cells, 12))
def test_difference_iteration_order_is_direct(a, b):
    model = FS(e for e in a if e not in b)
    assert tuple(difference(a, b)) == tuple(model)
    b_tuple = tuple(b)
    assert tuple(difference(a, b_tuple)) == tuple(model)


@given(frozensets_of(small_ints, 30), frozensets_of(small_ints, 30))
def test_difference_iteration_order_is_direct_small_ints(a, b):
    assert tuple(difference(a, b)) == tuple(FS(e for e in a if e not in b))


def test_dedupe():
    assert dedupe((3, 1, 3, 2, 1)) == (3, 1, 2)
    assert dedupe(()) == ()
    r = dedupe((1, True, 2))
    assert r == (1, 2) and type(r[0]) is int  # first occurrence (by equality) kept
    assert dedupe(FS()) == ()  # empty frozenset works, a non-empty one has no .index
    with fails():
        dedupe(FS({1, 2}))


@given(st.lists(st.integers(0, 6), max_size=20))
def test_dedupe_keeps_first_occurrences(xs):
    t = tuple(xs)
    assert dedupe(t) == tuple(e for i, e in enumerate(t) if t.index(e) == i)


def test_order_is_stable_ascending():
    objs = (FS({1}), FS({1, 2}), FS({3}), FS({4, 5, 6}), FS({7}))
    assert order(objs, size) == (FS({1}), FS({3}), FS({7}), FS({1, 2}), FS({4, 5, 6}))
    assert order(objs, lambda s: -len(s))[0] == FS({4, 5, 6})
    assert order(FS(), size) == ()
    s = FS({9, 1, 2, 3})
    assert order(s, lambda _: 0) == tuple(s)  # ties keep set iteration order: 9, 2, 3, 1
    assert order(s, lambda _: 0) == (9, 2, 3, 1)


def test_repeat():
    assert repeat(7, 3) == (7, 7, 7)
    assert repeat((1, 2), 2) == ((1, 2), (1, 2))
    assert repeat(7, 0) == () and repeat(7, -2) == ()


def test_size():
    assert size(FS({1, 2})) == 2 and size(((1, 2), (3, 4), (5, 6))) == 3 and size(()) == 0
    with fails():
        size(5)


def test_merge_type_follows_outer_container():
    assert merge(((1, 2), (2, 3))) == (1, 2, 2, 3)
    r = merge((FS({1, 2}), FS({1, 2})))
    assert type(r) is tuple and sorted(r) == [1, 1, 2, 2]
    r = merge(FS({FS({1, 2}), FS({2, 3})}))
    assert r == FS({1, 2, 3}) and type(r) is frozenset
    r = merge(FS({(1, 2), (2, 3)}))
    assert r == FS({1, 2, 3}) and type(r) is frozenset
    assert merge(()) == () and merge(FS()) == FS()
    with fails():
        merge((1, 2))
    with fails():
        merge(5)


@given(st.lists(frozensets_of(cells, 6), max_size=6))
@settings(max_examples=50)
def test_merge_order_outer_then_inner(inners):
    outer = FS(inners)
    assert tuple(merge(outer)) == tuple(FS(e for c in outer for e in c))
    assert merge(tuple(inners)) == tuple(e for c in inners for e in c)


def test_maximum_minimum_empty_is_zero():
    assert maximum(FS({3, 9, 1})) == 9 and minimum(FS({3, 9, 1})) == 1
    assert maximum(FS()) == 0 and minimum(FS()) == 0 and maximum(()) == 0


def test_valmax_valmin():
    objs = FS({FS({1}), FS({1, 2, 3}), FS({4, 5})})
    assert valmax(objs, size) == 3 and valmin(objs, size) == 1
    assert valmax(FS(), identity) == 0 and valmin((), identity) == 0
    assert valmax(FS(), lambda x: x + 5) == 5  # key applied to 0
    with fails():
        valmax(FS(), size)
    with fails():
        valmin((), size)
    # frozenset keys: max by subset, the first maximal in iteration order
    assert valmax((FS({1, 2}), FS({3, 4, 5})), identity) == FS({1, 2})
    assert valmax((FS({1}), FS({1, 2})), identity) == FS({1, 2})


def test_argmax_argmin():
    objs = (FS({1}), FS({2, 3}), FS({4, 5}), FS({6}))
    assert argmax(objs, size) is objs[1]  # ties: first in iteration order
    assert argmin(objs, size) is objs[0]
    assert argmin(objs[1:], size) is objs[3]
    s = FS({9, 1, 2, 3})  # iterates 9, 2, 3, 1
    assert argmax(s, lambda _: 0) == 9 and argmin(s, lambda _: 0) == 9
    with fails():
        argmax(FS(), size)
    with fails():
        argmin((), size)


def test_argmax_frozenset_keys_compare_by_subset():
    a, b, c = FS({1, 2}), FS({3, 4, 5}), FS({1, 2, 3})
    assert argmax((a, b), identity) is a  # b is not a superset of a
    assert argmax((a, b, c), identity) is c  # c is a proper superset of the candidate a
    assert argmin((c, a), identity) is a


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 100)), min_size=1, max_size=15))
def test_argmax_first_maximal_in_iteration_order(items):
    t = tuple(items)
    key = lambda e: e[0]
    best = max(k for k, _ in t)
    assert argmax(t, key) == next(e for e in t if e[0] == best)
    worst = min(k for k, _ in t)
    assert argmin(t, key) == next(e for e in t if e[0] == worst)
    assert valmax(t, key) == best and valmin(t, key) == worst


def test_mostcommon_leastcommon():
    assert mostcommon((3, 1, 1, 3)) == 1  # tie: set order (ascending small ints), not first occurrence
    assert leastcommon((3, 1, 1, 3, 5)) == 5
    assert mostcommon((9, 1)) == 9 and mostcommon((1, 9)) == 1  # set([9, 1]) iterates 9, 1
    assert leastcommon((9, 1)) == 9 and leastcommon((1, 9)) == 1
    assert mostcommon((9, 1, 2, 3)) == 9  # set order 9, 2, 3, 1
    assert mostcommon((2, 5, 5, 2, 5)) == 5
    assert mostcommon(((1, 2), (3, 4), (1, 2))) == (1, 2)  # works on rows of a grid
    for f in (mostcommon, leastcommon):
        with fails():
            f(FS({1, 2}))
        with fails():
            f(())


@given(st.lists(st.integers(0, 12), min_size=1, max_size=25))
def test_mostcommon_follows_set_order(xs):
    t = tuple(xs)
    counts = [(t.count(v), v) for v in set(t)]
    top = max(c for c, _ in counts)
    bottom = min(c for c, _ in counts)
    assert mostcommon(t) == next(v for c, v in counts if c == top)
    assert leastcommon(t) == next(v for c, v in counts if c == bottom)


def test_initset():
    assert initset(5) == FS({5}) and type(initset(5)) is frozenset
    assert initset((1, 2)) == FS({(1, 2)})
    with fails():
        initset({1})  # unhashable


# ---------------------------------------------------------------- laws

@given(numericals, numericals)
def test_add_subtract_inverse(a, b):
    r = subtract(add(a, b), b)
    if isinstance(a, int) and not isinstance(b, int):
        assert r == (a, a)
    else:
        assert r == a


@given(numericals, numericals)
def test_add_multiply_commute(a, b):
    assert add(a, b) == add(b, a)
    assert multiply(a, b) == multiply(b, a)


@given(ints, ints.filter(bool))
def test_divide_is_floor_division(a, b):
    q = divide(a, b)
    assert q == a // b
    assert divide((a, a), b) == (q, q) and divide(a, (b, b)) == (q, q)


@given(numericals)
def test_unary_laws(x):
    assert double(x) == add(x, x)
    assert halve(double(x)) == x
    assert decrement(increment(x)) == x
    assert invert(invert(x)) == x
    assert crement(x) == add(x, sign(x))
    assert add(x, invert(x)) == (0 if isinstance(x, int) else (0, 0))
    assert multiply(sign(x), x) == (abs(x) if isinstance(x, int) else (abs(x[0]), abs(x[1])))


@given(ints)
def test_even_positive_laws(n):
    assert even(n) == (n % 2 == 0) and even(n) is not even(n + 1)
    assert positive(n) == (sign(n) == 1)
    assert greater(n, n - 1) and not greater(n, n)


@given(frozensets_of(small_ints), frozensets_of(small_ints))
def test_set_algebra_laws(a, b):
    assert difference(a, b) | intersection(a, b) == a
    assert combine(a, b) == a | b
    assert size(combine(a, b)) == size(a) + size(b) - size(intersection(a, b))
    assert contained(max(a, default=0), a) or not a
    assert maximum(a) == max(a, default=0) and minimum(a) == min(a, default=0)


@given(st.lists(small_ints, max_size=10), st.lists(small_ints, max_size=10))
def test_tuple_combine_difference_laws(xs, ys):
    a, b = tuple(xs), tuple(ys)
    assert combine(a, b) == a + b and size(combine(a, b)) == size(a) + size(b)
    assert difference(a, b) == tuple(e for e in a if e not in b)
    assert merge((a, b)) == combine(a, b)

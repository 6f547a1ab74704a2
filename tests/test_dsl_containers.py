"""Primitives 40-66 (dsl-spec §3.2): containers and higher-order functions."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codeit.dsl import NAMESPACE
from codeit.dsl import containers as C
from codeit.dsl.arithmetic import add, identity, increment, invert, size, valmax, valmin
from codeit.dsl.containers import (
    apply,
    astuple,
    branch,
    chain,
    compose,
    extract,
    first,
    fork,
    insert,
    interval,
    last,
    lbind,
    mapply,
    matcher,
    mfilter,
    mpapply,
    other,
    pair,
    papply,
    power,
    prapply,
    product,
    rapply,
    rbind,
    remove,
    sfilter,
    totuple,
)
from codeit.dsl.registry import PRIMITIVES

FS = frozenset
locs = st.tuples(st.integers(-3, 12), st.integers(-3, 12))
cells = st.tuples(st.integers(0, 9), locs)
small_ints = st.integers(0, 40)


@st.composite
def frozensets_of(draw, elements, max_size=20):
    """Frozensets built in several ways, so their tables and iteration orders vary."""
    xs = draw(st.lists(elements, max_size=max_size))
    how = draw(st.integers(0, 3))
    if how == 0:
        return FS(xs)
    if how == 1:
        return FS(set(xs))
    if how == 2:
        return FS(reversed(xs))
    half = FS(xs[::2])
    return FS(xs) - half | half


objects_sets = frozensets_of(frozensets_of(cells, 6), 8)


def arity(f):
    return f.__code__.co_argcount


def two(a, b):
    return (a, b)


def three(a, b, c):
    return (a, b, c)


def four(a, b, c, d):
    return (a, b, c, d)


def fails():
    """Any exception type will do: the spec only requires that these calls fail (dsl-spec §0.7)."""
    return pytest.raises(Exception)


# ---------------------------------------------------------------- registry / signatures

def test_registered_in_spec_order_with_spec_signatures():
    lines = (Path(__file__).parent / "dsl_signatures.txt").read_text().split("\n")[39:66]
    names = [line.split("(")[0] for line in lines]
    assert names[0] == "sfilter" and names[-1] == "prapply"
    assert [PRIMITIVES[n].signature() for n in names] == lines
    assert all(PRIMITIVES[n].function is getattr(C, n) for n in names)
    assert [n for n in vars(C) if n in set(names)] == names


# ---------------------------------------------------------------- filtering and picking

def test_sfilter_keeps_container_type():
    assert sfilter((1, 2, 3, 2, 4), lambda x: x % 2 == 0) == (2, 2, 4)
    r = sfilter(FS({1, 2, 3, 4}), lambda x: x > 2)
    assert r == FS({3, 4}) and type(r) is frozenset
    assert sfilter((), bool) == () and sfilter(FS(), bool) == FS()
    assert sfilter((0, 1, 2), identity) == (1, 2)  # truthiness


@given(frozensets_of(cells, 30))
def test_sfilter_order_is_direct(s):
    cond = lambda c: c[0] % 2 == 0
    assert tuple(sfilter(s, cond)) == tuple(FS(e for e in s if cond(e)))


def test_mfilter_types():
    objs = FS({FS({(1, (0, 0))}), FS({(2, (1, 1)), (2, (1, 2))}), FS({(3, (5, 5))})})
    r = mfilter(objs, lambda o: len(o) == 1)
    assert r == FS({(1, (0, 0)), (3, (5, 5))}) and type(r) is frozenset
    r = mfilter(((1, 2), (3,), (4, 4)), lambda t: len(t) == 2)
    assert r == (1, 2, 4, 4)
    assert mfilter(FS(), bool) == FS() and mfilter((), bool) == ()


@given(objects_sets)
@settings(max_examples=50)
def test_mfilter_walks_the_filtered_frozenset(objs):
    cond = lambda o: len(o) % 2 == 1
    kept = FS(o for o in objs if cond(o))
    assert tuple(mfilter(objs, cond)) == tuple(FS(e for o in kept for e in o))


def test_extract():
    assert extract((1, 4, 6, 8), lambda x: x > 3) == 4
    s = FS({9, 1, 2, 3})  # iterates 9, 2, 3, 1
    assert extract(s, lambda x: x < 5) == 2
    for container in ((1, 2), FS()):
        with fails() as info:
            extract(container, lambda x: x > 5)
        assert not isinstance(info.value, StopIteration)


def test_first_last():
    assert first((4, 5, 6)) == 4 and last((4, 5, 6)) == 6
    assert first((7, 8)) == 7 and last((7, 8)) == 8  # a pair
    grid = ((1, 2), (3, 4))
    assert first(grid) == (1, 2) and last(grid) == (3, 4)
    s = FS({9, 1, 2, 3})
    assert first(s) == 9 and last(s) == 1
    for f in (first, last):
        for empty in ((), FS()):
            with fails() as info:
                f(empty)
            assert not isinstance(info.value, StopIteration)
        with fails():
            f(5)


@given(frozensets_of(cells, 30).filter(bool))
def test_first_last_totuple_follow_iteration_order(s):
    t = totuple(s)
    assert type(t) is tuple and t == tuple(s)
    assert first(s) == t[0] and last(s) == t[-1]


def test_totuple():
    assert totuple((3, 1)) == (3, 1)
    assert totuple(FS()) == ()
    assert totuple(FS({9, 1})) == (9, 1)


def _stop(*args):
    raise StopIteration


@pytest.mark.parametrize("call", [
    lambda: apply(_stop, (1, 2)),
    lambda: apply(_stop, FS({1, 2})),
    lambda: sfilter((1, 2), _stop),
    lambda: sfilter(FS({1, 2}), _stop),
    lambda: mfilter(((1,), (2,)), _stop),
    lambda: mfilter(FS({(1,), (2,)}), _stop),
    lambda: mapply(_stop, ((1,), (2,))),
    lambda: mapply(_stop, FS({(1,), (2,)})),
    lambda: papply(_stop, (1, 2), (3, 4)),
    lambda: mpapply(_stop, (1, 2), (3, 4)),
    lambda: prapply(_stop, (1, 2), (3, 4)),
    lambda: rapply((identity, _stop), 1),
    lambda: rapply(FS({_stop}), 1),
    lambda: extract((1, 2), _stop),
    lambda: valmax((1, 2), _stop),
    lambda: valmin(FS({1, 2}), _stop),
    lambda: compose(_stop, identity)(1),
])
def test_stopiteration_from_a_callback_is_an_error_not_a_truncation(call):
    # map/filter would take it for the end of the input and return a truncated result
    with fails():
        call()


def test_empty_first_inside_higher_order_primitives_fails():
    with fails():
        apply(first, (FS({1}), FS()))
    with fails():
        apply(first, FS({FS(), FS({1})}))
    with fails():
        sfilter((FS({1}), FS()), first)
    with fails():
        mapply(rbind(other, 2), ((1, 2), (2, 2)))
    with fails():
        papply(extract, ((1,), (2,)), (lambda x: x == 1, lambda x: x == 1))
    # other modules' primitives may raise StopIteration themselves (color of an empty object)
    with fails():
        apply(NAMESPACE["color"], (FS({(1, (0, 0))}), FS()))


# ---------------------------------------------------------------- building containers

def test_insert_native_union():
    assert insert(3, FS({1, 2})) == FS({1, 2, 3})
    assert insert(1, FS({1, 2})) == FS({1, 2})
    assert insert((1, 2), FS()) == FS({(1, 2)})
    with fails():
        insert(3, (1, 2))


@given(frozensets_of(cells, 30), cells)
def test_insert_order_is_native_union(s, v):
    assert tuple(insert(v, s)) == tuple(s.union(FS({v})))


def test_remove_every_occurrence_and_keep_type():
    assert remove(2, (1, 2, 3, 2)) == (1, 3)
    assert remove(9, (1, 2)) == (1, 2)
    r = remove(2, FS({1, 2, 3}))
    assert r == FS({1, 3}) and type(r) is frozenset
    assert remove(1, FS()) == FS()


@given(frozensets_of(cells, 30), cells)
def test_remove_order_is_direct(s, v):
    v = next(iter(s), v)
    assert tuple(remove(v, s)) == tuple(FS(e for e in s if e != v))


def test_other_rebuilds_via_remove():
    assert other((3, 5), 3) == 5 and other((3, 5), 5) == 3
    assert other(FS({4, 7}), 4) == 7
    # the rebuilt set can iterate differently from the original
    assert tuple(FS([9, 1, 2])) == (9, 2, 1)
    assert other(FS([9, 1, 2]), 9) == 1
    assert tuple(FS({19, 9, 10, 27})) == (19, 9, 10, 27)
    assert other(FS({19, 9, 10, 27}), 10) == 27
    assert other((2, 2, 3, 2), 2) == 3
    for c, v in (((2, 2), 2), (FS({2}), 2), ((), 1), (FS(), 1)):
        with fails() as info:
            other(c, v)
        assert not isinstance(info.value, StopIteration)


@given(frozensets_of(small_ints, 8).filter(lambda s: len(s) > 1))
def test_other_is_first_of_rebuilt_set(s):
    v = next(iter(s))
    assert other(s, v) == next(iter(FS(e for e in s if e != v)))


def test_interval():
    assert interval(0, 4, 1) == (0, 1, 2, 3)
    assert interval(5, 0, -2) == (5, 3, 1)
    assert interval(3, 3, 1) == () and interval(3, 0, 1) == ()
    with fails():
        interval(0, 5, 0)


def test_astuple_unchecked():
    assert astuple(1, 2) == (1, 2)
    g = ((1,),)
    assert astuple(g, FS()) == (g, FS())


def test_product():
    r = product((1, 2), (3, 4))
    assert r == FS({(1, 3), (1, 4), (2, 3), (2, 4)}) and type(r) is frozenset
    assert product(FS(), (1,)) == FS() and product((1,), ()) == FS()
    # a is iterated only inside the loop over b
    assert product(5, ()) == FS()
    with fails():
        product(5, (1,))


@given(frozensets_of(locs, 10), frozensets_of(small_ints, 10))
@settings(max_examples=50)
def test_product_order_outer_b_inner_a(a, b):
    assert tuple(product(a, b)) == tuple(FS((i, j) for j in b for i in a))


def test_pair():
    assert pair((1, 2, 3), (4, 5)) == ((1, 4), (2, 5))
    assert pair((), (1,)) == ()
    s = FS({9, 1})
    assert pair(s, (7, 8)) == ((9, 7), (1, 8))


def test_branch():
    assert branch(True, 1, 2) == 1 and branch(False, 1, 2) == 2
    assert branch(0, 1, 2) == 2 and branch((0,), 1, 2) == 1


# ---------------------------------------------------------------- function values

def test_compose_chain_matcher_fork_are_unary():
    f = compose(invert, increment)
    assert f(3) == -4 and arity(f) == 1
    g = chain(str, invert, increment)
    assert g(3) == "-4" and arity(g) == 1
    m = matcher(size, 2)
    assert m((1, 2)) is True and m((1,)) is False and arity(m) == 1
    k = fork(add, increment, invert)
    assert k(5) == 6 + -5 and arity(k) == 1
    assert fork(astuple, first, last)((1, 2, 3)) == (1, 3)


def test_rbind_arity_rules():
    f = rbind(two, "F")
    assert arity(f) == 1 and f(1) == (1, "F")
    f = rbind(three, "F")
    assert arity(f) == 2 and f(1, 2) == (1, 2, "F")
    f = rbind(four, "F")
    assert arity(f) == 3 and f(1, 2, 3) == (1, 2, 3, "F")
    f = rbind(identity, "F")  # arity 1 -> a 3-ary function calling identity with 4 arguments
    assert arity(f) == 3
    with pytest.raises(TypeError):
        f(1, 2, 3)
    # binding a bound function: arity 2 -> 1 -> 3
    assert arity(rbind(rbind(three, 1), 2)) == 1
    assert arity(rbind(rbind(two, 1), 2)) == 3


def test_lbind_arity_rules():
    f = lbind(two, "F")
    assert arity(f) == 1 and f(1) == ("F", 1)
    f = lbind(three, "F")
    assert arity(f) == 2 and f(1, 2) == ("F", 1, 2)
    f = lbind(four, "F")
    assert arity(f) == 3 and f(1, 2, 3) == ("F", 1, 2, 3)
    f = lbind(identity, "F")
    assert arity(f) == 3
    with pytest.raises(TypeError):
        f(1, 2, 3)
    with fails():
        lbind(5, 1)


def test_binding_higher_order_primitives():
    # lbind(lbind, add) is y -> lbind(add, y)
    adder = lbind(lbind, add)
    assert arity(adder) == 1 and adder(10)(5) == 15
    # rbind(fork, g) is (o, a) -> fork(o, a, g)
    fk = rbind(fork, invert)
    assert arity(fk) == 2 and fk(add, increment)(5) == 6 + -5
    assert arity(rbind(power, 2)) == 1 and rbind(power, 2)(increment)(0) == 2


def test_power():
    assert power(increment, 1) is increment
    assert power(two, 1) is two  # same function, same arity
    for n in (2, 3, 4, 7):
        f = power(increment, n)
        assert arity(f) == 1 and f(10) == 10 + n
    assert power(invert, True) is invert
    with pytest.raises(TypeError):
        power(two, 2)(1)


@pytest.mark.parametrize("n", [0, -1, -5, False, 5000])
def test_power_failing_n_raises_before_composing_anything(n):
    calls = []

    def counted(x):
        calls.append(x)
        return x

    with pytest.raises(RecursionError):
        power(counted, n)
    assert calls == []


def test_apply():
    assert apply(increment, (1, 1, 2)) == (2, 2, 3)
    objs = FS({FS({1, 2}), FS({3, 4}), FS({5})})
    r = apply(size, objs)
    assert r == FS({1, 2}) and type(r) is frozenset  # the *set* of sizes
    assert apply(size, tuple(sorted(objs, key=len))) == (1, 2, 2)
    assert apply(size, FS()) == FS() and apply(size, ()) == ()
    with fails():
        apply(size, 5)


@given(frozensets_of(cells, 30))
def test_apply_order_is_direct(s):
    f = lambda c: c[1]
    assert tuple(apply(f, s)) == tuple(FS(f(e) for e in s))


def test_rapply():
    assert rapply((increment, invert, identity), 3) == (4, -3, 3)
    r = rapply(FS({increment, identity}), 3)
    assert r == FS({3, 4}) and type(r) is frozenset
    assert rapply((identity, identity), 1) == (1, 1)


def test_mapply():
    objs = FS({FS({(1, (0, 0))}), FS({(2, (1, 1))})})
    r = mapply(lambda o: FS((c, (i + 1, j)) for c, (i, j) in o), objs)
    assert r == FS({(1, (1, 0)), (2, (2, 1))}) and type(r) is frozenset
    r = mapply(lambda t: t + t, ((1,), (2,), (1,)))
    assert r == (1, 1, 2, 2, 1, 1)
    r = mapply(lambda x: FS({x}), (1, 1, 2))
    assert r == (1, 1, 2) and type(r) is tuple
    assert mapply(identity, FS()) == FS() and mapply(identity, ()) == ()


@given(objects_sets)
@settings(max_examples=50)
def test_mapply_walks_the_applied_frozenset(objs):
    f = lambda o: FS((0, loc) for _, loc in o)
    applied = FS(f(o) for o in objs)
    assert tuple(mapply(f, objs)) == tuple(FS(e for o in applied for e in o))


def test_papply_mpapply():
    assert papply(add, (1, 2, 3), (10, 20)) == (11, 22)
    assert papply(add, (), (1,)) == ()
    s = FS({9, 1})
    assert papply(astuple, s, (7, 8)) == ((9, 7), (1, 8))
    r = mpapply(lambda a, b: FS({a, b}), (1, 2), (1, 3))
    assert type(r) is tuple and sorted(r) == [1, 2, 3]  # a tuple even though each result is a set
    r = mpapply(lambda a, b: FS({a}), (1, 1), (0, 0))
    assert r == (1, 1)
    assert mpapply(astuple, (1, 2), (3, 4)) == (1, 3, 2, 4)


def test_prapply():
    r = prapply(add, (1, 2), (10, 20))
    assert r == FS({11, 12, 21, 22}) and type(r) is frozenset
    assert prapply(add, 5, ()) == FS()


@given(frozensets_of(locs, 8), frozensets_of(locs, 8))
@settings(max_examples=50)
def test_prapply_order_outer_b_inner_a(a, b):
    assert tuple(prapply(add, a, b)) == tuple(FS(add(i, j) for j in b for i in a))


# ---------------------------------------------------------------- laws

@given(st.lists(small_ints, max_size=15), st.integers(0, 40))
def test_tuple_laws(xs, v):
    t = tuple(xs)
    assert sfilter(t, lambda x: x != v) == remove(v, t)
    assert apply(identity, t) == t and mapply(lambda x: (x,), t) == t
    assert papply(astuple, t, t) == pair(t, t)
    assert mpapply(astuple, t, t) == tuple(e for x in t for e in (x, x))
    assert rapply((identity,), t) == (t,)
    assert totuple(t) == t


@given(frozensets_of(small_ints, 15), frozensets_of(small_ints, 15))
def test_set_laws(a, b):
    assert len(product(a, b)) == len(a) * len(b)
    assert prapply(astuple, a, b) == product(a, b)
    assert sfilter(a, lambda x: x in b) == a & b
    assert apply(identity, a) == a
    for v in b:
        assert insert(v, a) == a | {v} and remove(v, insert(v, a)) == a - {v}


@given(st.integers(-20, 20), st.integers(-20, 20), st.integers(-5, 5).filter(bool))
def test_interval_is_range(a, b, s):
    assert interval(a, b, s) == tuple(range(a, b, s))


@given(st.integers(1, 12), st.integers(-50, 50))
def test_power_applies_n_times(n, x):
    assert power(increment, n)(x) == x + n
    assert power(lbind(add, 2), n)(x) == x + 2 * n

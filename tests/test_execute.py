"""The executor: validity, limits, in-process runs and the worker pool (order, hostile programs,
crashes, memory cap).  Everything runs the real executor on the real DSL."""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path

import pytest

from codeit.execution.executor import BatchExecutor
from codeit.execution.limits import ExecutionLimits, ExecutionResult
from codeit.execution.runner import compile_program, run_program
from codeit.grids import check_grid
from codeit.program import parse

DATA = Path(os.environ.get("CODEIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "codeit-data")
GRID = ((1, 2), (3, 4))
MIRROR = "O = vmirror(I)"
# 10**8 built from constants (literals are not allowed)
BIG = "x1 = multiply(TEN, TEN)\nx2 = multiply(x1, x1)\nx3 = multiply(x2, x2)\n"
# power(power(power(rot90, 999), 999), 999): ~10**9 Python-level calls, interruptible only by the alarm
SPIN = ("x1 = multiply(TEN, TEN)\nx2 = multiply(x1, TEN)\nx3 = decrement(x2)\nx4 = power(rot90, x3)\n"
        "x5 = power(x4, x3)\nx6 = power(x5, x3)\nO = x6(I)")
FAST = ExecutionLimits(timeout=0.5, memory_mb=1024)


def grid(h: int, w: int, colour: int = 0) -> tuple:
    return tuple((colour,) * w for _ in range(h))


# -- validity ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "reason"), [
    (((10, 1),), "cell (0, 0) is 10, not a colour 0-9"),  # the reference's precedence bug accepts it
    (((-1, 1),), "cell (0, 0) is -1"),
    ((), "a grid with no rows"),
    (((),), "a grid with empty rows"),
    (((), ()), "a grid with empty rows"),
    (((1, 2), (3,)), "ragged rows: row 1 has 1 cells but row 0 has 2"),
    (((1.0, 2),), "cell (0, 0) is a float"),
    (((1, "2"),), "cell (0, 1) is a str"),
    (([1, 2],), "row 0 is a list"),
    ([[1, 2]], "a list, not a grid"),
    (5, "an int, not a grid"),
    (frozenset({(1, (0, 0))}), "a frozenset, not a grid"),
    (None, "a NoneType, not a grid"),
])
def test_invalid_grids(value, reason):
    out, why = check_grid(value)
    assert out is None and why.startswith(reason), why


def test_valid_grids_and_booleans():
    assert check_grid(GRID) == (GRID, None)
    out, reason = check_grid(((True, False), (0, 9)))
    assert reason is None and out == ((1, 0), (0, 9))
    assert all(type(c) is int for row in out for c in row)
    assert check_grid([[1, 2], [3, 4]], sequences=True) == (GRID, None)
    assert check_grid(([1, 2], (3, 4)), sequences=True) == (GRID, None)
    assert check_grid([[1, 2], [3]], sequences=True)[1].startswith("ragged rows")


@pytest.mark.parametrize(("program", "reason"), [
    ("O = asindices(I)", "invalid output: a frozenset, not a grid"),
    ("O = canvas(TEN, UNITY)", "invalid output: cell (0, 0) is 10, not a colour 0-9"),
    ("O = crop(I, ORIGIN, ORIGIN)", "invalid output: a grid with no rows"),
    ("O = crop(I, ORIGIN, DOWN)", "invalid output: a grid with empty rows"),
    ("O = size(I)", "invalid output: an int, not a grid"),
])
def test_invalid_outputs_are_failures_with_the_raw_value_kept(program, reason):
    result = run_program(program, [GRID])
    assert result.outputs == (None,)
    assert result.errors == (reason,)
    assert result.values[0] is not None  # the raw O is available to callers


def test_boolean_output_cells_become_ints():
    result = run_program("x1 = equality(ONE, ONE)\nO = canvas(x1, UNITY)", [GRID])
    assert result.outputs == (((1,),),) and type(result.outputs[0][0][0]) is int
    assert result.values[0][0][0] is True


# -- in-process runs --------------------------------------------------------------------------------

def test_run_program_results_per_input():
    program = parse("x1 = vmirror(I)\nO = hconcat(I, x1)")
    result = run_program(program, [GRID, [[5]], [[1, 2], [3]], [[12]]])
    assert isinstance(result, ExecutionResult)
    assert result.outputs[:2] == (((1, 2, 2, 1), (3, 4, 4, 3)), ((5, 5),))
    assert result.errors[:2] == (None, None)
    assert result.outputs[2:] == (None, None)
    assert result.errors[2] == "invalid input: ragged rows: row 1 has 1 cells but row 0 has 2"
    assert result.errors[3] == "invalid input: cell (0, 0) is 12, not a colour 0-9"
    assert not result.ok and result.n_valid == 2
    assert run_program("x1 = vmirror(I)\nO = hconcat(I, x1)", [GRID]).ok  # text is parsed
    assert compile_program(program).run(GRID) == (((1, 2, 2, 1), (3, 4, 4, 3)), None)


def test_syntax_and_runtime_errors_are_values():
    result = run_program("x1 = vmirror(I)\nx2 = foo(x1)\nO = rot90(x2)", [GRID, GRID])
    assert result.outputs == (None, None)
    assert result.errors == ("syntax: line 2: unknown name 'foo' in 'x2 = foo(x1)'",) * 2
    result = run_program("x1 = vmirror(I)\nO = divide(ONE, ZERO)", [GRID])
    assert result.errors[0].startswith("error: O = divide(ONE, ZERO): ZeroDivisionError")
    result = run_program("x1 = power(rot90, ZERO)\nO = x1(I)", [GRID])
    assert result.errors[0].startswith("error: x1 = power(rot90, ZERO): RecursionError")


def test_state_size_rule():
    # dsl-spec §4.3: a 25x40 asindices has 1,000 locations and is dropped; 24x40 (960) is kept.
    program = "x1 = asindices(I)\nO = fill(I, ONE, x1)"
    dropped = run_program(program, [grid(25, 40)])
    assert dropped.outputs == (None,)
    assert dropped.errors == ("limit: x1 dropped (1,000 elements ≥ 1,000)",)
    assert run_program(program, [grid(24, 40)]).outputs == (grid(24, 40, 1),)
    assert run_program(program, [grid(25, 40)], ExecutionLimits(max_elements=0)).outputs == (grid(25, 40, 1),)
    assert run_program(program, [grid(25, 40)], ExecutionLimits(max_elements=1001)).ok
    # a dropped value nobody uses is harmless; a dropped O means no output
    assert run_program("x1 = asindices(I)\nO = vmirror(I)", [grid(25, 40)]).ok
    no_output = run_program("O = asindices(I)", [grid(25, 40)])
    assert no_output.errors == ("limit: O dropped (1,000 elements ≥ 1,000): no output",)
    assert no_output.values == (None,)
    # grids count rows, not cells: a 30x30 grid has length 30
    assert run_program("O = upscale(I, TEN)", [grid(3, 3)]).ok
    assert run_program("x1 = upscale(I, TEN)\nO = upscale(x1, TEN)", [grid(10, 1)]).errors[0] == (
        "limit: O dropped (1,000 elements ≥ 1,000): no output")


def test_time_limits_in_process():
    squares = "x1 = multiply(TEN, TEN)\n" + "".join(
        f"x{i} = multiply(x{i - 1}, x{i - 1})\n" for i in range(2, 40)) + "O = multiply(x39, x39)"
    slow_line = run_program(squares, [GRID], ExecutionLimits(line_timeout=0.02, timeout=30))
    assert slow_line.errors[0].startswith("timeout: 'x")
    assert "(limit 0.02 s per line)" in slow_line.errors[0]
    slow_total = run_program(squares, [GRID], ExecutionLimits(line_timeout=30, timeout=0.02))
    assert slow_total.errors[0].startswith("timeout: ") and "(limit 0.02 s per input)" in slow_total.errors[0]
    interrupted = run_program(SPIN, [GRID], ExecutionLimits(timeout=0.2), alarm=True)
    assert interrupted.errors[0].startswith("timeout: interrupted after 0.")
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # the previous handler is back


# -- the worker pool --------------------------------------------------------------------------------

def random_jobs(n: int, seed: int = 0) -> list[tuple[str, list]]:
    rng = random.Random(seed)
    programs = ["O = vmirror(I)", "x1 = rot90(I)\nO = hconcat(x1, I)", "x1 = vmirror(I)\nO = hmirror(x1)",
                "O = divide(ONE, ZERO)", "x1 = bad(I)\nO = vmirror(x1)", "O = asindices(I)",
                "x1 = asindices(I)\nO = fill(I, TWO, x1)", "O = upscale(I, THREE)"]
    jobs = []
    for _ in range(n):
        inputs = [[[rng.randrange(10) for _ in range(rng.randint(1, 5))]] * rng.randint(1, 4)
                  for _ in range(rng.randint(0, 3))]
        jobs.append((rng.choice(programs), inputs))
    return jobs


def test_batch_matches_in_process_results_in_order():
    jobs = random_jobs(300)
    expected = [run_program(p, i, keep_values=False) for p, i in jobs]
    seen = []
    with BatchExecutor(workers=2, chunk_size=8) as pool:
        assert pool.run(jobs, progress=lambda done, total: seen.append((done, total))) == expected
        assert pool.run([]) == []
        # an abandoned lazy run leaves no stale results behind
        lazy = pool.imap(jobs)
        assert [next(lazy) for _ in range(3)] == expected[:3]
        lazy.close()
        assert pool.run(jobs[::-1]) == expected[::-1]
        interrupted = pool.imap(jobs)
        next(interrupted)
        assert pool.run(jobs[:5]) == expected[:5]
        with pytest.raises(RuntimeError, match="another run"):
            list(interrupted)
        assert pool.run([(parse(MIRROR), [GRID])])[0].outputs == (((2, 1), (4, 3)),)
        assert pool.restarts == 0
    assert seen[-1] == (300, 300) and [d for d, _ in seen] == list(range(1, 301))


def test_batch_keep_values():
    with BatchExecutor(workers=1, keep_values=True) as pool:
        [indices, function, mirrored] = pool.run([("O = asindices(I)", [GRID]), ("O = rbind(add, ONE)", [GRID]),
                                                  (MIRROR, [GRID])])
    assert indices.values == (frozenset({(0, 0), (0, 1), (1, 0), (1, 1)}),)
    assert function.values == (None,) and function.errors[0].startswith("invalid output")
    assert mirrored.values == (((2, 1), (4, 3)),)


@pytest.mark.slow
def test_hostile_programs_are_contained_and_the_batch_goes_on():
    hostile = {
        "interval": BIG + "O = interval(ZERO, x3, ONE)",  # a 10**8-element tuple, built in C
        "upscale": BIG + "O = upscale(I, x3)",  # a 10**8-fold upscale, built in C
        "spin": SPIN,  # 10**9 Python-level calls
        "squares": "x1 = multiply(TEN, TEN)\n" + "".join(  # 10**(2**40): C-level big-int squaring
            f"x{i} = multiply(x{i - 1}, x{i - 1})\n" for i in range(2, 40)) + "O = multiply(x39, x39)",
    }
    jobs = []
    for text in hostile.values():
        jobs += [(MIRROR, [GRID]), (text, [GRID, GRID])]
    jobs.append((MIRROR, [GRID]))
    with BatchExecutor(workers=2, limits=FAST, grace=0.5, chunk_size=4) as pool:
        results = pool.run(jobs)
        after = pool.run([(MIRROR, [GRID])] * 10)
    for result in results[0::2]:
        assert result == ExecutionResult((((2, 1), (4, 3)),), (None,)), result
    for name, result in zip(hostile, results[1::2]):
        assert result.outputs == (None, None), name
        assert all(e.startswith(("timeout:", "error:")) for e in result.errors), (name, result.errors)
    assert all(r.ok for r in after)
    # Whether a C-level one outlives the in-process interrupt and needs the watchdog's kill depends on
    # the machine's speed (benchmarks/bench_containment.py measures it); either way the pool is whole.


def test_worker_killed_from_outside_is_replaced():
    with BatchExecutor(workers=2, limits=ExecutionLimits(timeout=5)) as pool:
        assert pool.run([(MIRROR, [GRID])] * 4)[0].ok
        victim = pool.pids[0]
        os.kill(victim, signal.SIGKILL)
        assert all(r.ok for r in pool.run([(MIRROR, [GRID])] * 20))
        assert victim not in pool.pids and len(pool.pids) == 2
        # kill a worker while it runs a slow job: that job fails as crashed, the rest succeed
        slow = "x1 = multiply(TEN, TEN)\nx2 = power(rot90, x1)\nx3 = power(x2, x1)\nx4 = power(x3, x1)\nO = x4(I)"
        killer = threading.Timer(0.5, lambda: [os.kill(pid, signal.SIGKILL) for pid in pool.pids])
        killer.start()
        results = pool.run([(slow, [grid(20, 20)])] + [(MIRROR, [GRID])] * 20)
        killer.join()
        assert pool.restarts >= 2
    assert all(r.ok for r in results[1:])
    assert results[0].errors == ("crashed: worker died (signal 9 SIGKILL)",)


def test_memory_cap_turns_a_huge_allocation_into_an_error():
    # an 800 MB tuple: refused at once under a 300 MiB cap instead of filling memory
    with BatchExecutor(workers=1, limits=ExecutionLimits(memory_mb=300)) as pool:
        big, small = pool.run([(BIG + "O = interval(ZERO, x3, ONE)", [GRID]), (MIRROR, [GRID])])
        assert pool.restarts == 0
    assert big.errors[0].startswith("error: O = interval(ZERO, x3, ONE): MemoryError")
    assert small.ok


def test_a_job_that_cannot_be_sent_fails_alone():
    # a list nested 600 deep parses as JSON but cannot be pickled: before, the whole batch died
    deep = [1]
    for _ in range(600):
        deep = [deep]
    with BatchExecutor(workers=2) as pool:
        results = pool.run([(MIRROR, [GRID])] * 50 + [(MIRROR, [GRID, deep])] + [(MIRROR, [GRID])] * 50)
        assert pool.restarts == 0
    assert all(r.ok for r in results[:50] + results[51:]) and len(results) == 101
    assert results[50].outputs == (None, None)
    assert all(e.startswith("invalid input: cannot be passed to a worker (RecursionError") for e in results[50].errors)


@pytest.mark.slow
def test_oversize_grids_are_limits_and_never_sent():
    """A grid of more than MAX_GRID_CELLS cells in or out fails with ``limit:``, in process and in the
    workers alike; an oversize input is not sent (before: a 5000x5000 input was killed as a timeout,
    and took its neighbour with it)."""
    big = [[1] * 1500 for _ in range(1500)]
    wide = "x1 = multiply(TEN, TEN)\nx2 = multiply(x1, x1)\nx3 = multiply(x2, x1)\nx4 = multiply(x3, TWO)\nO = hupscale(I, x4)"
    slow = ExecutionLimits(timeout=10.0, line_timeout=10.0)
    jobs = [("O = downscale(I, TEN)", [GRID, big, GRID]), (MIRROR, [GRID]), (wide, [[[1]]]), ("O = rot90(I)", [big])]
    with BatchExecutor(workers=2, limits=slow) as pool:
        results = pool.run(jobs)
        assert pool.restarts == 0
    assert results == [run_program(p, i, slow, keep_values=False) for p, i in jobs]  # the same in process
    mixed, neighbour, output, alone = results
    assert mixed.outputs == (((1,),), None, ((1,),))
    assert mixed.errors == (None, "limit: input grid of 2,250,000 cells (at most 1,000,000)", None)
    assert neighbour.ok
    assert output.errors == ("limit: output grid of 2,000,000 cells (at most 1,000,000)",)
    assert alone.errors == ("limit: input grid of 2,250,000 cells (at most 1,000,000)",)


@pytest.mark.slow
def test_each_input_has_its_own_time_limit():
    """The time limit is per input: a job of 16 inputs that each take a few tenths of a second in C
    code (beyond a 0.05 s limit, so each fails with ``timeout:``) is not killed by the watchdog,
    which gives each input its limit plus the grace (before: the job's 16 x 0.05 + 2 s in all)."""
    build = "x1 = multiply(TEN, TEN)\nx2 = multiply(x1, x1)\nx3 = multiply(x2, x1)\nx4 = multiply(x3, FIVE)\n"
    program = build + "O = interval(ZERO, x4, ONE)"  # a 5,000,000-element tuple, built in C
    with BatchExecutor(workers=1, limits=ExecutionLimits(timeout=0.05), grace=2.0) as pool:
        slow, after = pool.run([(program, [GRID] * 16), (MIRROR, [GRID])])
        assert pool.restarts == 0
    assert all(e.startswith("timeout:") and "worker killed" not in e for e in slow.errors), slow.errors
    assert after.ok

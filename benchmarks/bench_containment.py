"""How long the executor takes to contain hostile programs (the speed side of the containment tests,
which assert only what happens, never how fast).

Each hostile program runs on two inputs under a 0.5 s limit per input, next to a harmless job, in a
pool of two workers; the time to get its result (``timeout:`` or ``error:``) is printed with whether
the watchdog had to kill its worker.  Expected: about the limit per input, plus the grace (0.5 s)
and a worker restart for the ones stuck in C code.

Usage: ``python benchmarks/bench_containment.py``
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeit.execution.executor import BatchExecutor
from codeit.execution.limits import ExecutionLimits

GRID = ((1, 2), (3, 4))
BIG = "x1 = multiply(TEN, TEN)\nx2 = multiply(x1, x1)\nx3 = multiply(x2, x2)\n"  # 10**8
HOSTILE = {
    "interval 10**8 (C)": BIG + "O = interval(ZERO, x3, ONE)",
    "upscale 10**8 (C)": BIG + "O = upscale(I, x3)",
    "power spin (Python)": ("x1 = multiply(TEN, TEN)\nx2 = multiply(x1, TEN)\nx3 = decrement(x2)\n"
                            "x4 = power(rot90, x3)\nx5 = power(x4, x3)\nx6 = power(x5, x3)\nO = x6(I)"),
    "big-int squares (C)": "x1 = multiply(TEN, TEN)\n" + "".join(
        f"x{i} = multiply(x{i - 1}, x{i - 1})\n" for i in range(2, 40)) + "O = multiply(x39, x39)",
}


def main() -> None:
    limits = ExecutionLimits(timeout=0.5, memory_mb=1024)
    with BatchExecutor(workers=2, limits=limits, grace=0.5) as pool:
        pool.run([("O = vmirror(I)", [GRID])] * 4)  # started
        for name, program in HOSTILE.items():
            restarts, start = pool.restarts, time.perf_counter()
            hostile, harmless = pool.run([(program, [GRID, GRID]), ("O = vmirror(I)", [GRID])])
            took = time.perf_counter() - start
            killed = pool.restarts - restarts
            print(f"{name:>22}: {took:5.2f} s  (limit 2 x 0.5 s; worker killed: {bool(killed)}; "
                  f"harmless neighbour ok: {harmless.ok}; {hostile.errors[0][:60]})")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
